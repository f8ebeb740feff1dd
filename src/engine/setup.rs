//! What every command that runs a model shares: the device, the dataset with its subsets, the
//! data workers, and the batches made from them.

use super::EngineError;
use crate::augment::Augmenter;
use crate::config::{DataConfig, DatasetName};
use crate::data::{self, Dataset};
use crate::dist::Dist;
use crate::method::{detect, Detection, Shared};
use crate::model::Model;
use crate::pipeline::{EpochPlan, Loader, Part, Placement};
use crate::progress::Progress;
use crate::splits::{self, Splits};
use crate::streaming::Split;
use std::sync::Arc;
use tch::Device;

/// Batches the data workers make ahead of the training step.
const QUEUE_DEPTH: usize = 3;

/// The device, the dataset and the data workers of one command.
pub struct Setup {
    pub device: Device,
    /// The dataset's name, classes and normalisation (its splits are `train` and `test`).
    pub dataset: Dataset,
    /// The training split, shared with the data workers: in memory or streamed.
    pub train: Split,
    /// The test split.
    pub test: Split,
    pub pool: Arc<rayon::ThreadPool>,
}

impl Setup {
    /// Picks CUDA device `gpu` (or the CPU), loads (downloading if needed) the dataset of `data`
    /// with its subsets drawn with `seed`, and starts `workers` data threads (0: one per core).
    pub fn new(
        data: &DataConfig,
        seed: u64,
        gpu: usize,
        workers: usize,
        progress: &mut dyn Progress,
    ) -> Result<Self, EngineError> {
        let device = select_device(gpu, progress)?;
        let splits = open_splits(data, seed, progress)?;
        let held = match &splits.train {
            Split::Stream(s) if !s.is_held() => ", streamed from disk",
            _ => "",
        };
        progress.note(&format!(
            "{}: {} training images, {} test images, {} classes{held}",
            data.dataset,
            splits.train.len(),
            splits.test.len(),
            splits.dataset.num_classes()
        ));
        Setup::on(device, splits, workers)
    }

    /// Picks CUDA device `gpu` (or the CPU) and starts `workers` data threads for `dataset`
    /// (generated images: the benchmark's).
    pub fn with_dataset(
        dataset: Dataset,
        gpu: usize,
        workers: usize,
        progress: &mut dyn Progress,
    ) -> Result<Self, EngineError> {
        Setup::on(select_device(gpu, progress)?, Splits::in_memory(dataset), workers)
    }

    fn on(device: Device, splits: Splits, workers: usize) -> Result<Self, EngineError> {
        let Splits { dataset, train, test } = splits;
        Ok(Setup { device, dataset, train, test, pool: Arc::new(data_pool(workers)?) })
    }

    /// The [height, width] of the model's input: the training views'.
    pub fn image_size(&self) -> [usize; 2] {
        let (h, w) = self.train.view_size();
        [h, w]
    }

    /// Says which images were left out since the last call (`--on-bad-image skip`).
    pub fn report_skipped(&self, progress: &mut dyn Progress) {
        splits::report_skipped("training", &self.train.take_skipped(), progress);
        splits::report_skipped("test", &self.test.take_skipped(), progress);
    }

    /// Number of classes of the dataset.
    pub fn num_classes(&self) -> i64 {
        self.dataset.num_classes() as i64
    }

    /// Starts making the batches of `plan` over the training split.
    pub fn loader(&self, plan: EpochPlan, aug: &Arc<Augmenter>) -> Loader {
        self.loader_from(plan, aug, 0)
    }

    /// Starts making the batches of `plan` over the training split from batch `first` on.
    pub fn loader_from(&self, plan: EpochPlan, aug: &Arc<Augmenter>, first: usize) -> Loader {
        Loader::start_source(self.train.source(aug), plan, self.pool.clone(), QUEUE_DEPTH, first)
    }

    /// The detection pass of `scorer` over both views (augmented by `aug`) of the training
    /// split, in batches of `batch_size` drawn with `seed`; with several processes (`dist`),
    /// each scores its part of every batch and every one gets all the views.
    pub fn detect(
        &self,
        scorer: &Model,
        aug: &Arc<Augmenter>,
        seed: u64,
        batch_size: usize,
        dist: Option<&Dist>,
        progress: &mut dyn Progress,
    ) -> Result<Detection, EngineError> {
        self.check_one_batch(batch_size)?;
        let part = dist.map_or(Part::WHOLE, |d| Part { rank: d.rank(), world_size: d.world_size() });
        let plan = Detection::plan(seed, batch_size, part);
        let batches = plan.batches(self.train.len());
        let loader = self.loader(plan, aug);
        let shared = dist.map(|dist| Shared { dist, batches: &batches });
        let detection = detect(scorer, loader, self.placement(false), shared, progress);
        self.report_skipped(progress);
        Ok(detection?)
    }

    /// Refuses a batch size larger than the training split: batches drop their last partial
    /// one, so there would be none.
    pub fn check_one_batch(&self, batch_size: usize) -> Result<(), EngineError> {
        match self.train.len() < batch_size {
            true => Err(EngineError::TooFewImages { images: self.train.len(), batch_size }),
            false => Ok(()),
        }
    }

    /// Where batches go: the device, in NCHW order or (`channels_last`) NHWC, normalised with
    /// the dataset's normalisation.
    pub fn placement(&self, channels_last: bool) -> Placement {
        Placement { device: self.device, channels_last, norm: self.dataset.normalisation }
    }
}

/// CUDA device `gpu`, or the CPU (saying so) when there is no GPU.
fn select_device(gpu: usize, progress: &mut dyn Progress) -> Result<Device, EngineError> {
    let device = crate::device::select(gpu)?;
    if device == Device::Cpu {
        let threads = match crate::device::set_cpu_threads() {
            Some(n) => format!(
                " with {n} libtorch thread{} (OMP_NUM_THREADS sets another count)",
                if n == 1 { "" } else { "s" }
            ),
            None => String::new(),
        };
        progress.note(&format!("no CUDA GPU found; running on the CPU{threads}"));
    }
    Ok(device)
}

/// The splits of the dataset of `data`: a folder dataset in memory or streamed
/// (`--data-in-memory`), any other loaded (downloaded if needed) into memory; with the
/// `--train-size` / `--test-size` subsets drawn with `seed`.
pub fn open_splits(data: &DataConfig, seed: u64, progress: &mut dyn Progress) -> Result<Splits, EngineError> {
    if !matches!(data.dataset, DatasetName::ImageFolder | DatasetName::ImageNet) {
        return Ok(Splits::in_memory(load_dataset(data, seed, progress)?));
    }
    match splits::open_folder(data, seed, progress)? {
        Ok(splits) => Ok(splits),
        Err(mut whole) => {
            whole.normalisation = whole.normalisation.with_overrides(data.mean, data.std);
            Ok(Splits::in_memory(subsets(whole, data, seed)?))
        }
    }
}

/// Loads the dataset of `data` (downloading it if needed; folder images at `--image-size`,
/// normalised with `--mean`/`--std` or the dataset's own statistics) with the `--train-size` /
/// `--test-size` subsets applied, drawn with `seed`.
pub fn load_dataset(data: &DataConfig, seed: u64, progress: &mut dyn Progress) -> Result<Dataset, EngineError> {
    let ds = data::load_or_fetch(data, progress)?;
    subsets(ds, data, seed)
}

/// `ds` cut to the `--train-size` / `--test-size` subsets of `data`, drawn with `seed`.
pub fn subsets(mut ds: Dataset, data: &DataConfig, seed: u64) -> Result<Dataset, EngineError> {
    let k = ds.num_classes();
    if let Some(n) = data.train_size {
        ds.train = ds
            .train
            .stratified_subset(n, k, seed)
            .map_err(|source| EngineError::Subset { flag: "--train-size", source })?;
    }
    if let Some(n) = data.test_size {
        ds.test = ds
            .test
            .stratified_subset(n, k, seed.wrapping_add(1))
            .map_err(|source| EngineError::Subset { flag: "--test-size", source })?;
    }
    Ok(ds)
}

/// The data pipeline's thread pool: `workers` threads, or one per core for 0.
pub fn data_pool(workers: usize) -> Result<rayon::ThreadPool, EngineError> {
    let n = if workers == 0 { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) } else { workers };
    rayon::ThreadPoolBuilder::new().num_threads(n).build().map_err(EngineError::Workers)
}
