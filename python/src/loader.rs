//! `resmooth.Loader`'s engine: resmooth-core's batch pipeline (the one `resmooth train` runs)
//! over an in-memory uint8 dataset, its batches handed to Python as NumPy arrays.

use crate::{images_array, value_error};
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray4, PyUntypedArrayMethods};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use resmooth_core::augment::Augmenter;
use resmooth_core::config::{check_magnitude, AugName, DatasetName};
use resmooth_core::data::{self, ImageSet, Size};
use resmooth_core::pipeline::{self, EpochPlan, Part, Views};
use resmooth_core::progress::Silent;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Loader>()?;
    m.add_function(wrap_pyfunction!(read_folder, m)?)?;
    m.add_function(wrap_pyfunction!(aug_names, m)?)?;
    Ok(())
}

/// The `--aug` names the loader takes, the reference's spelling.
#[pyfunction]
fn aug_names() -> Vec<&'static str> {
    AugName::ALL.iter().map(|a| a.name()).collect()
}

/// Reads split `split` ("train" or "test") of an ImageFolder tree `root/{train,test}/<class>/*`
/// as `resmooth train --dataset imagefolder` does (resized as `--image-size` when given):
/// (images (N, H, W, 3) uint8, labels (N,) int64, class names).
#[pyfunction]
#[pyo3(signature = (root, image_size=None, split="train"))]
fn read_folder<'py>(
    py: Python<'py>,
    root: PathBuf,
    image_size: Option<usize>,
    split: &str,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>, Vec<String>)> {
    if split != "train" && split != "test" {
        return Err(PyValueError::new_err(format!("split '{split}' is not known; expected 'train' or 'test'")));
    }
    let size = Size::from_flag(image_size);
    let dataset = py.detach(|| data::read_imagefolder(&root, size, &mut Silent)).map_err(value_error)?;
    let set = if split == "train" { dataset.train } else { dataset.test };
    let (n, h, w) = (set.len(), set.height, set.width);
    let images = images_array(py, set.pixels, n, h, w)?;
    Ok((images, PyArray1::from_vec(py, set.labels).into_any(), dataset.classes))
}

/// One epoch's batches at a time over an in-memory dataset, made on the loader's own threads.
#[pyclass(module = "resmooth._resmooth")]
pub struct Loader {
    set: Arc<ImageSet>,
    aug: Arc<Augmenter>,
    pool: Arc<rayon::ThreadPool>,
    plan: EpochPlan,
    prefetch: usize,
    /// The epoch in progress, taken out while a batch is awaited without the GIL.
    running: Mutex<Option<pipeline::Loader>>,
}

/// How the views are made, as `resmooth train`'s flags say it.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub struct AugArgs {
    aug: String,
    n: usize,
    m: usize,
    cutout: usize,
    crop_padding: Option<usize>,
    policy: String,
}

impl AugArgs {
    fn augmenter(&self) -> PyResult<Augmenter> {
        let aug: AugName = self.aug.parse().map_err(|_| {
            PyValueError::new_err(format!(
                "aug='{}' is not known; expected one of {}",
                self.aug,
                aug_names().join(", ")
            ))
        })?;
        check_magnitude(aug, self.m).map_err(|e| PyValueError::new_err(e.to_string().replacen("--M ", "m=", 1)))?;
        // AutoAugment's policy comes from the dataset in resmooth train: SVHN's for svhn
        let dataset = match self.policy.as_str() {
            "cifar10" => DatasetName::Cifar10,
            "svhn" => DatasetName::Svhn,
            other => {
                return Err(PyValueError::new_err(format!(
                    "policy '{other}' is not known; expected 'cifar10' or 'svhn' (AutoAugment's policy)"
                )))
            }
        };
        Ok(Augmenter::new(aug, self.n, self.m, self.cutout, dataset).with_crop_padding(self.crop_padding))
    }
}

#[pymethods]
impl Loader {
    /// A loader over `images` (N, H, W, 3) uint8 and `labels` (N,) int64.
    #[new]
    #[pyo3(signature = (images, labels, batch_size, aug, two_views, prob, seed, epoch, shuffle, drop_last, threads, prefetch))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        images: PyReadonlyArray4<'_, u8>,
        labels: PyReadonlyArray1<'_, i64>,
        batch_size: usize,
        aug: AugArgs,
        two_views: bool,
        prob: f64,
        seed: u64,
        epoch: u64,
        shuffle: bool,
        drop_last: bool,
        threads: usize,
        prefetch: usize,
    ) -> PyResult<Loader> {
        let shape = images.shape().to_vec();
        if shape[3] != 3 {
            return Err(PyValueError::new_err(format!(
                "images must have shape (N, H, W, 3), uint8 RGB; got shape {shape:?}"
            )));
        }
        if labels.len() != shape[0] {
            return Err(PyValueError::new_err(format!("{} labels for {} images", labels.len(), shape[0])));
        }
        if shape[0] == 0 || shape[1] == 0 || shape[2] == 0 {
            return Err(PyValueError::new_err(format!("the dataset is empty: images of shape {shape:?}")));
        }
        if batch_size == 0 {
            return Err(PyValueError::new_err("batch_size must be at least 1"));
        }
        if !(0.0..=1.0).contains(&prob) {
            return Err(PyValueError::new_err(format!("prob={prob} must be within [0, 1]")));
        }
        let pixels = images
            .as_slice()
            .map_err(|_| PyValueError::new_err("images are not C-contiguous; pass np.ascontiguousarray(images)"))?;
        let labels = labels
            .as_slice()
            .map_err(|_| PyValueError::new_err("labels are not contiguous; pass np.ascontiguousarray(labels)"))?;
        let set = py.detach(|| ImageSet {
            pixels: pixels.to_vec(),
            labels: labels.to_vec(),
            height: shape[1],
            width: shape[2],
        });
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("resmooth-loader-{i}"))
            .build()
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start the loader's {threads} threads: {e}")))?;
        let views = if two_views { Views::Both } else { Views::Mixed { prob } };
        Ok(Loader {
            set: Arc::new(set),
            aug: Arc::new(aug.augmenter()?),
            pool: Arc::new(pool),
            plan: EpochPlan { seed, epoch, batch_size, shuffle, drop_last, views, part: Part::WHOLE },
            prefetch: prefetch.max(1),
            running: Mutex::new(None),
        })
    }

    /// The epoch whose batches the next `start` makes.
    #[getter]
    fn epoch(&self) -> u64 {
        self.plan.epoch
    }

    /// Sets the epoch of the next `start` (its shuffle and every view depend on it).
    fn set_epoch(&mut self, epoch: u64) {
        self.plan.epoch = epoch;
    }

    /// Batches per epoch.
    fn __len__(&self) -> usize {
        let (n, b) = (self.set.len(), self.plan.batch_size);
        if self.plan.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// Starts making the batches of the current epoch on the loader's threads (an epoch in
    /// progress is dropped).
    fn start(&self, py: Python<'_>) {
        let loader = pipeline::Loader::start(
            self.set.clone(),
            self.plan.clone(),
            self.aug.clone(),
            self.pool.clone(),
            self.prefetch,
        );
        let previous = self.running.lock().map(|mut r| r.replace(loader)).ok().flatten();
        // joining the old epoch's producer thread waits for its batch in progress
        py.detach(move || drop(previous));
    }

    /// The next batch of the epoch, or None at its end: (images (B', H, W, 3) uint8, labels,
    /// sample indices, number of original views first, ops applied to each augmented view,
    /// cutout boxes (y0, y1, x0, x1) of the augmented views, -1 where none).
    #[allow(clippy::type_complexity)]
    fn next_batch<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<
        Option<(
            Bound<'py, PyAny>,
            Bound<'py, PyAny>,
            Bound<'py, PyAny>,
            usize,
            Vec<Vec<(&'static str, f64)>>,
            Bound<'py, PyAny>,
        )>,
    > {
        let taken = self.running.lock().map_err(|_| PyRuntimeError::new_err("the loader's state is poisoned"))?.take();
        let Some(mut loader) = taken else {
            return Err(PyRuntimeError::new_err("no epoch in progress: call start() first"));
        };
        let batch = py.detach(|| loader.next_batch());
        let Some(mut batch) = batch else {
            return Ok(None);
        };
        if let Ok(mut r) = self.running.lock() {
            r.replace(loader);
        }
        let (n, h, w) = (batch.len(), batch.height, batch.width);
        let ops: Vec<Vec<(&'static str, f64)>> =
            batch.applied.iter().map(|a| a.ops.iter().map(|o| (o.name.name(), o.value as f64)).collect()).collect();
        let boxes: Vec<i32> =
            batch.applied.iter().flat_map(|a| a.cutout.map_or([-1; 4], |b| b.map(i32::from))).collect();
        let n_aug = batch.applied.len();
        let images = images_array(py, std::mem::take(&mut batch.images), n, h, w)?;
        let labels = PyArray1::from_vec(py, std::mem::take(&mut batch.labels)).into_any();
        let indices: Vec<i64> = batch.indices.iter().map(|&i| i as i64).collect();
        let indices = PyArray1::from_vec(py, indices).into_any();
        let boxes = PyArray1::from_vec(py, boxes).reshape([n_aug, 4])?.into_any();
        Ok(Some((images, labels, indices, batch.n_ori, ops, boxes)))
    }
}
