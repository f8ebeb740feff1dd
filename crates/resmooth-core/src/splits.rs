//! A folder dataset's splits as a run reads them (`--data-in-memory auto|yes|no`): decoded once
//! into memory, or streamed from disk as the batches are made ([`crate::streaming`]). The
//! batches are the same either way; `auto` holds the images in memory when their decoded size
//! is at most half the memory available, and says which it chose.
//!
//! An `imagefolder` held in memory is the [`ImageSet`] it always was. ImageNet's images have
//! many sizes, so held in memory they are decoded once at their own size inside the training
//! split's [`StreamSource`], and its test views (deterministic) are made once into an
//! [`ImageSet`].

use crate::augment::imagenet::ImageNetTrain;
use crate::augment::Augmenter;
use crate::config::{DataConfig, DataInMemory, DatasetName};
use crate::data::stream::{BadImage, FileList};
use crate::data::{image_size, read_imagefolder, stratified_keep, DataError, Dataset, ImageSet, Normalisation, Size};
use crate::pipeline::{EpochPlan, Part, Views};
use crate::progress::{Progress, Unit};
use crate::streaming::{Split, StreamSource, StreamViews, Streamed};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Header reads the decoded size is estimated from.
const SIZE_SAMPLE: usize = 256;

/// A dataset's classes and normalisation with its two splits, however they are held.
pub struct Splits {
    /// The name, classes and normalisation; its image sets are empty (the splits hold them).
    pub dataset: Dataset,
    pub train: Split,
    pub test: Split,
}

impl Splits {
    /// The splits of a dataset held whole in memory.
    pub fn in_memory(mut dataset: Dataset) -> Splits {
        let train = Split::Memory(Arc::new(std::mem::replace(&mut dataset.train, ImageSet::new(0, 0))));
        let test = Split::Memory(Arc::new(std::mem::replace(&mut dataset.test, ImageSet::new(0, 0))));
        Splits { dataset, train, test }
    }
}

/// ImageNet's training and test folders under `root`: the reference's
/// `imagenet-pytorch/{train,val}`, else `train` and `val` (or `test`).
pub fn imagenet_folders(root: &Path) -> Result<(PathBuf, PathBuf), DataError> {
    let nested = root.join("imagenet-pytorch");
    let base = if nested.join("train").is_dir() { nested } else { root.to_path_buf() };
    let train = base.join("train");
    if !train.is_dir() {
        return Err(DataError::Missing {
            path: train,
            hint: format!(
                "no {} or {} folder; give --dataroot the folder holding train/<class>/ and val/<class>/ image folders",
                root.join("imagenet-pytorch/train").display(),
                root.join("train").display()
            ),
        });
    }
    let test =
        ["val", "test"].map(|s| base.join(s)).into_iter().find(|p| p.is_dir()).ok_or_else(|| DataError::Missing {
            path: base.join("val"),
            hint: "ImageNet's test split is val/<class>/ beside train/ (test/<class>/ works too)".into(),
        })?;
    Ok((train, test))
}

/// Opens the splits of the folder dataset of `config` (`imagefolder` or `imagenet`), in memory
/// or streamed as `--data-in-memory` says, with the `--train-size` / `--test-size` subsets
/// drawn with `seed`. The caller cuts the subsets of a dataset returned whole in memory
/// (`Ok(Err(dataset))`), as it does for the other datasets.
pub fn open_folder(
    config: &DataConfig,
    seed: u64,
    progress: &mut dyn Progress,
) -> Result<Result<Splits, Dataset>, DataError> {
    let imagenet = config.dataset == DatasetName::ImageNet;
    let (train_dir, test_dir) = match imagenet {
        true => imagenet_folders(&config.dataroot)?,
        false => (config.dataroot.join("train"), config.dataroot.join("test")),
    };
    let size = Size::from_flag(config.image_size);
    let train = FileList::list(&train_dir)?;
    let test = FileList::list_with_classes(&test_dir, train.classes.clone())?;
    let (train, test) = (
        subset(train, config.train_size, seed, "--train-size")?,
        subset(test, config.test_size, seed.wrapping_add(1), "--test-size")?,
    );
    let in_memory = match config.data_in_memory {
        DataInMemory::Yes => true,
        DataInMemory::No => false,
        DataInMemory::Auto => {
            let need = decoded_bytes(&train, &test, imagenet, size)?;
            let available = available_memory();
            let fits = available.is_some_and(|a| need.saturating_mul(2) <= a);
            let memory = available.map_or("an unknown amount of".into(), |a| format!("{} of", gigabytes(a)));
            progress.note(&format!(
                "--data-in-memory auto: the images decode to about {} and {memory} memory is available: {}",
                gigabytes(need),
                match fits {
                    true => "decoding them into memory once (--data-in-memory no streams them from disk)",
                    false => "streaming them from disk (--data-in-memory yes decodes them into memory once)",
                }
            ));
            fits && !config.reduced_dct
        }
    };
    if !imagenet {
        if in_memory {
            // the whole folder, read as it always was (its subsets are cut by the caller)
            return read_imagefolder(&config.dataroot, size, progress).map(Err);
        }
        let normalisation = folder_normalisation(config, &train, size, progress)?;
        let dataset = meta("imagefolder", &train, normalisation, config);
        let views = StreamViews::Fixed { size };
        let stream = |files| StreamSource::new(files, views.clone(), config.on_bad_image).map(Arc::new);
        let (train, test) = (stream(train)?, stream(test)?);
        if train.view_size() != test.view_size() {
            let ((h, w), (th, tw)) = (train.view_size(), test.view_size());
            return Err(DataError::malformed(
                &config.dataroot,
                format!("the training images are {w}x{h} but the test images {tw}x{th}: pass --image-size S"),
            ));
        }
        return Ok(Ok(Splits { dataset, train: Split::Stream(train), test: Split::Stream(test) }));
    }
    let side = config.image_size.unwrap_or(crate::augment::imagenet::IMAGENET_SIZE);
    let dataset = meta("imagenet", &train, Normalisation::IMAGENET, config);
    let views = StreamViews::ImageNetTrain { transform: ImageNetTrain::at(side), reduced_dct: config.reduced_dct };
    let mut train = StreamSource::new(train, views, config.on_bad_image)?;
    let test = StreamSource::new(test, StreamViews::ImageNetEval { size: side }, config.on_bad_image)?;
    if !in_memory {
        return Ok(Ok(Splits { dataset, train: Split::Stream(Arc::new(train)), test: Split::Stream(Arc::new(test)) }));
    }
    train.hold_in_memory(progress)?;
    report_skipped("training", &train.take_skipped(), progress);
    let test = views_in_memory(Arc::new(test), progress)?;
    Ok(Ok(Splits { dataset, train: Split::Stream(Arc::new(train)), test: Split::Memory(Arc::new(test)) }))
}

/// The dataset's name, classes and normalisation (`--mean`/`--std` put in), without images.
fn meta(name: &str, train: &FileList, normalisation: Normalisation, config: &DataConfig) -> Dataset {
    Dataset {
        name: name.into(),
        classes: train.classes.clone(),
        train: ImageSet::new(0, 0),
        test: ImageSet::new(0, 0),
        normalisation: normalisation.with_overrides(config.mean, config.std),
    }
}

/// `files` cut to a seeded, class-stratified subset of `n` (`flag`'s value), when given.
fn subset(files: FileList, n: Option<usize>, seed: u64, flag: &str) -> Result<FileList, DataError> {
    let Some(n) = n else { return Ok(files) };
    let labels: Vec<i64> = (0..files.len()).map(|i| files.label(i)).collect();
    let keep = stratified_keep(&labels, files.classes.len(), n, seed)
        .map_err(|e| DataError::Invalid(format!("{flag}: {e}")))?;
    Ok(files.select(&keep))
}

/// The deterministic views of `source` (ImageNet's test views) made once, in order, into
/// memory; unreadable files stop here or are left out and reported, as `--on-bad-image` says.
fn views_in_memory(source: Arc<StreamSource>, progress: &mut dyn Progress) -> Result<ImageSet, DataError> {
    let (h, w) = source.view_size();
    let n = source.files().len();
    let streamed = Streamed { source: source.clone(), aug: Arc::new(Augmenter::none()) };
    let plan = EpochPlan {
        seed: 0,
        epoch: 0,
        batch_size: 256,
        shuffle: false,
        drop_last: false,
        views: Views::Mixed { prob: 1.0 },
        part: Part::WHOLE,
    };
    let mut set = ImageSet::new(h, w);
    let mut batch = crate::pipeline::Batch::default();
    progress.start("making the test views", Some(n as u64), 0, Unit::Steps);
    for indices in plan.batches(n) {
        crate::pipeline::BatchSource::fill(&streamed, &indices, &plan, &mut batch)?;
        set.pixels.extend_from_slice(&batch.images);
        set.labels.extend_from_slice(&batch.labels);
        progress.advance(indices.last().map_or(0, |&i| i as u64 + 1), "");
    }
    progress.finish();
    report_skipped("test", &source.take_skipped(), progress);
    Ok(set)
}

/// Says which images of `split` were left out (`--on-bad-image skip`), the first ten by name.
pub fn report_skipped(split: &str, skipped: &[BadImage], progress: &mut dyn Progress) {
    if skipped.is_empty() {
        return;
    }
    let mut text = format!("--on-bad-image skip: left out {} {split} image(s) that cannot be read:", skipped.len());
    for b in skipped.iter().take(10) {
        text.push_str(&format!("\n  {}: {}", b.path.display(), b.reason));
    }
    if skipped.len() > 10 {
        text.push_str(&format!("\n  and {} more", skipped.len() - 10));
    }
    progress.note(&text);
}

/// About how many bytes both splits take decoded: ImageNet's training images at their own
/// sizes and its test views; a folder's images at `--image-size` or their own size. The sizes
/// come from the headers of up to [`SIZE_SAMPLE`] files spread over each split.
fn decoded_bytes(train: &FileList, test: &FileList, imagenet: bool, size: Size) -> Result<u64, DataError> {
    let native = |files: &FileList| -> Result<u64, DataError> {
        let step = files.len().div_ceil(SIZE_SAMPLE).max(1);
        let (mut sum, mut seen) = (0u64, 0u64);
        for i in (0..files.len()).step_by(step) {
            let path = files.path(i);
            let Ok(bytes) = std::fs::read(&path) else { continue };
            if let Ok((h, w)) = image_size(&path, &bytes) {
                sum += (h * w * 3) as u64;
                seen += 1;
            }
        }
        Ok(sum / seen.max(1) * files.len() as u64)
    };
    let square = |files: &FileList, s: usize| (files.len() * s * s * 3) as u64;
    Ok(match (imagenet, size) {
        (true, _) => native(train)? + square(test, size.side().unwrap_or(crate::augment::imagenet::IMAGENET_SIZE)),
        (false, Size::Square(s)) => square(train, s) + square(test, s),
        (false, Size::Native) => native(train)? + native(test)?,
    })
}

/// The memory available to new allocations (Linux's MemAvailable), if known.
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn gigabytes(bytes: u64) -> String {
    format!("{:.2} GB", bytes as f64 / 1e9)
}

/// The normalisation of a streamed folder: `--mean` and `--std` when both are given, else its
/// training images' statistics (cached beside them, computed by one pass over the files).
fn folder_normalisation(
    config: &DataConfig,
    train: &FileList,
    size: Size,
    progress: &mut dyn Progress,
) -> Result<Normalisation, DataError> {
    if let (Some(mean), Some(std)) = (config.mean, config.std) {
        return Ok(Normalisation { mean, std });
    }
    crate::data::streamed_normalisation(&config.dataroot, train, size, progress)
}
