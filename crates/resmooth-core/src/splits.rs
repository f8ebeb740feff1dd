//! A folder dataset's splits as a run reads them (`--data-in-memory auto|yes|no`): decoded once
//! into memory, or streamed from disk as the batches are made ([`crate::streaming`]). The
//! batches are the same either way; `auto` holds the images in memory when their decoded size
//! is at most half the memory available (to each process, when torchrun starts several on one
//! machine: `LOCAL_WORLD_SIZE`), and says which it chose.
//!
//! An `imagefolder` held in memory is the [`ImageSet`] it always was. ImageNet's images have
//! many sizes, so held in memory they are decoded once at their own size inside the training
//! split's [`StreamSource`], and its test views (deterministic) are made once into an
//! [`ImageSet`].

use crate::augment::imagenet::ImageNetTrain;
use crate::augment::Augmenter;
use crate::config::{DataConfig, DataInMemory, DatasetName};
use crate::data::read_listed_folder;
use crate::data::stream::{BadImage, FileList};
use crate::data::{image_size, stratified_keep, DataError, Dataset, ImageSet, Normalisation, Size};
use crate::pipeline::EpochPlan;
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

/// ImageNet's training folder under `root`: the reference's `imagenet-pytorch/train`, else a
/// plain `train`.
pub fn imagenet_train(root: &Path) -> Result<PathBuf, DataError> {
    let candidates = [root.join("imagenet-pytorch").join("train"), root.join("train")];
    candidates.iter().find(|p| p.is_dir()).cloned().ok_or_else(|| DataError::Missing {
        path: candidates[1].clone(),
        hint: format!(
            "no {} or {} folder; give --dataroot the folder holding train/<class>/ (and, to train, val/<class>/) image folders",
            candidates[0].display(),
            candidates[1].display()
        ),
    })
}

/// ImageNet's training and test folders under `root`: the reference's
/// `imagenet-pytorch/{train,val}`, else `train` and `val` (or `test`).
pub fn imagenet_folders(root: &Path) -> Result<(PathBuf, PathBuf), DataError> {
    let train = imagenet_train(root)?;
    let base = train.parent().unwrap_or(root);
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
    let subsets = |train, test| -> Result<(FileList, FileList), DataError> {
        Ok((
            subset(train, config.train_size, seed, "--train-size")?,
            subset(test, config.test_size, seed.wrapping_add(1), "--test-size")?,
        ))
    };
    if !imagenet {
        // in memory, the whole folder is read, as it always was (its subsets are cut by the caller)
        if hold(config, (&train, &test), size, progress) {
            return read_listed_folder(&config.dataroot, &train, &test, size, progress).map(Err);
        }
        // the statistics of the whole training split, as in memory
        let normalisation = folder_normalisation(config, &train, size, progress)?;
        let dataset = meta("imagefolder", &train, normalisation, config);
        let (train, test) = subsets(train, test)?;
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
    let (train, test) = subsets(train, test)?;
    let in_memory = hold(config, (&train, &test), size, progress);
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

/// Whether the splits `files` (what would be decoded) are held in memory: `--data-in-memory yes`
/// or `no`, or with `auto` when they take at most half the memory available (to each process of
/// the machine), saying which it chose.
fn hold(config: &DataConfig, files: (&FileList, &FileList), size: Size, progress: &mut dyn Progress) -> bool {
    match config.data_in_memory {
        DataInMemory::Yes => return true,
        DataInMemory::No => return false,
        DataInMemory::Auto => {}
    }
    let need = decoded_bytes(files, config.dataset == DatasetName::ImageNet, size);
    // each process of a machine holds its own copy (torchrun says how many there are)
    let local = std::env::var("LOCAL_WORLD_SIZE").ok().and_then(|v| v.parse::<u64>().ok()).unwrap_or(1).max(1);
    let available = available_memory().map(|a| a / local);
    let fits = available.is_some_and(|a| need.saturating_mul(2) <= a);
    let share = if local > 1 { format!(" to each of this machine's {local} processes") } else { String::new() };
    let memory = available.map_or("an unknown amount of memory is available".into(), |a| {
        format!("{} of memory is available{share}", gigabytes(a))
    });
    progress.note(&format!(
        "--data-in-memory auto: the images decode to about {} and {memory}: {}",
        gigabytes(need),
        match (fits, config.reduced_dct) {
            (true, false) => "decoding them into memory once (--data-in-memory no streams them from disk)",
            (true, true) => "streaming them from disk all the same, as --reduced-dct decodes each file as it is read",
            (false, _) => "streaming them from disk (--data-in-memory yes decodes them into memory once)",
        }
    ));
    fits && !config.reduced_dct
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
    let plan = EpochPlan::in_order(256);
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
fn decoded_bytes((train, test): (&FileList, &FileList), imagenet: bool, size: Size) -> u64 {
    let native = |files: &FileList| -> u64 {
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
        sum / seen.max(1) * files.len() as u64
    };
    let square = |files: &FileList, s: usize| (files.len() * s * s * 3) as u64;
    match (imagenet, size) {
        (true, _) => native(train) + square(test, size.side().unwrap_or(crate::augment::imagenet::IMAGENET_SIZE)),
        (false, Size::Square(s)) => square(train, s) + square(test, s),
        (false, Size::Native) => native(train) + native(test),
    }
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
    crate::data::streamed_normalisation(&config.dataroot, &train.labelled(), size, progress)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::STATS_FILE;
    use crate::progress::Silent;

    /// Keeps the notes.
    #[derive(Default)]
    struct Notes(Vec<String>);

    impl Progress for Notes {
        fn note(&mut self, text: &str) {
            self.0.push(text.to_string());
        }
        fn start(&mut self, _: &str, _: Option<u64>, _: u64, _: Unit) {}
        fn advance(&mut self, _: u64, _: &str) {}
        fn finish(&mut self) {}
    }

    /// `n` images per class in `root/<split>/<class>/`, of side `10 + i` by `12`, JPEG.
    fn folder(root: &Path, split: &str, n: usize) {
        for (c, class) in ["ant", "bee", "cow"].iter().enumerate() {
            let dir = root.join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..n {
                let img = image::RgbImage::from_fn(12, 10 + i as u32, |x, y| {
                    image::Rgb([(x * 20) as u8, (y * 9 + c as u32 * 60) as u8, (i * 40) as u8])
                });
                img.save(dir.join(format!("{i}.jpg"))).unwrap();
            }
        }
    }

    fn config(dataset: DatasetName, root: &Path, data_in_memory: DataInMemory) -> DataConfig {
        DataConfig {
            dataset,
            dataroot: root.to_path_buf(),
            data_in_memory,
            ..crate::config::TrainConfig::default().data
        }
    }

    #[test]
    fn the_split_is_found_in_either_layout() {
        let dir = tempfile::tempdir().unwrap();
        let err = imagenet_train(dir.path()).unwrap_err().to_string();
        assert!(err.contains("train") && err.contains("--dataroot"), "{err}");
        std::fs::create_dir_all(dir.path().join("train")).unwrap();
        assert_eq!(imagenet_train(dir.path()).unwrap(), dir.path().join("train"));
        std::fs::create_dir_all(dir.path().join("imagenet-pytorch/train")).unwrap();
        assert_eq!(imagenet_train(dir.path()).unwrap(), dir.path().join("imagenet-pytorch/train"));
    }

    #[test]
    fn imagenet_folders_take_the_reference_layout_or_plain_folders() {
        let dir = tempfile::tempdir().unwrap();
        let err = imagenet_folders(dir.path()).unwrap_err().to_string();
        assert!(err.contains("imagenet-pytorch/train") && err.contains("--dataroot"), "{err}");
        std::fs::create_dir_all(dir.path().join("train")).unwrap();
        let err = imagenet_folders(dir.path()).unwrap_err().to_string();
        assert!(err.contains("val/<class>"), "{err}");
        std::fs::create_dir_all(dir.path().join("test")).unwrap();
        assert_eq!(imagenet_folders(dir.path()).unwrap().1, dir.path().join("test"));
        std::fs::create_dir_all(dir.path().join("val")).unwrap();
        assert_eq!(imagenet_folders(dir.path()).unwrap(), (dir.path().join("train"), dir.path().join("val")));
        let nested = dir.path().join("imagenet-pytorch");
        std::fs::create_dir_all(nested.join("train")).unwrap();
        std::fs::create_dir_all(nested.join("val")).unwrap();
        assert_eq!(imagenet_folders(dir.path()).unwrap(), (nested.join("train"), nested.join("val")));
    }

    #[test]
    fn a_streamed_folder_has_the_in_memory_normalisation_and_subsets() {
        let dir = tempfile::tempdir().unwrap();
        folder(dir.path(), "train", 4);
        folder(dir.path(), "test", 2);
        let sized = |c: DataConfig| DataConfig { image_size: Some(8), ..c };
        let mut notes = Notes::default();
        let auto = open_folder(&sized(config(DatasetName::ImageFolder, dir.path(), DataInMemory::Auto)), 1, &mut notes);
        let Err(whole) = auto.unwrap() else { panic!("a few kilobytes fit in memory") };
        assert!(
            notes.0[0].contains("--data-in-memory auto") && notes.0[0].contains("into memory once"),
            "{notes:?}",
            notes = notes.0
        );
        std::fs::remove_file(dir.path().join(STATS_FILE)).unwrap();
        let no = sized(config(DatasetName::ImageFolder, dir.path(), DataInMemory::No));
        let Ok(streamed) = open_folder(&no, 1, &mut Silent).unwrap() else { panic!("streamed") };
        assert_eq!(streamed.dataset.classes, whole.classes);
        let (a, b) = (streamed.dataset.normalisation, whole.normalisation);
        for c in 0..3 {
            assert!((a.mean[c] - b.mean[c]).abs() < 1e-6 && (a.std[c] - b.std[c]).abs() < 1e-6, "{a:?} {b:?}");
        }
        assert_eq!((streamed.train.len(), streamed.test.len(), streamed.train.view_size()), (12, 6, (8, 8)));
        // --mean and --std replace the statistics; --train-size is a stratified subset
        let given = DataConfig { mean: Some([0.5; 3]), std: Some([0.25; 3]), train_size: Some(6), ..no.clone() };
        let Ok(cut) = open_folder(&given, 1, &mut Silent).unwrap() else { panic!("streamed") };
        assert_eq!(cut.dataset.normalisation, Normalisation { mean: [0.5; 3], std: [0.25; 3] });
        let labels: Vec<i64> = (0..cut.train.len()).map(|i| cut.train.label(i)).collect();
        assert_eq!(labels, vec![0, 0, 1, 1, 2, 2]);
        // a subset's normalisation is the whole training split's, as in memory
        let Ok(cut) = open_folder(&DataConfig { train_size: Some(6), ..no.clone() }, 1, &mut Silent).unwrap() else {
            panic!("streamed")
        };
        assert_eq!(cut.dataset.normalisation, streamed.dataset.normalisation);
        let too_many = DataConfig { test_size: Some(7), ..no };
        let err = open_folder(&too_many, 1, &mut Silent).err().unwrap().to_string();
        assert!(err.contains("--test-size") && err.contains("only 6"), "{err}");
    }

    #[test]
    fn imagenet_in_memory_holds_the_training_images_and_the_test_views() {
        let dir = tempfile::tempdir().unwrap();
        folder(dir.path(), "train", 3);
        folder(dir.path(), "val", 2);
        let yes = DataConfig { image_size: Some(8), ..config(DatasetName::ImageNet, dir.path(), DataInMemory::Yes) };
        let Ok(held) = open_folder(&yes, 1, &mut Silent).unwrap() else { panic!("imagenet keeps its splits") };
        assert_eq!(held.dataset.normalisation, Normalisation::IMAGENET);
        let Split::Stream(train) = &held.train else { panic!("held in its source") };
        assert!(train.is_held());
        let Split::Memory(test) = &held.test else { panic!("test views in memory") };
        let no = DataConfig { data_in_memory: DataInMemory::No, ..yes.clone() };
        let Ok(streamed) = open_folder(&no, 1, &mut Silent).unwrap() else { panic!("streamed") };
        let Split::Stream(test_files) = &streamed.test else { panic!("streamed") };
        assert!(!test_files.is_held());
        // the same test views either way
        let views = Streamed { source: test_files.clone(), aug: Arc::new(Augmenter::none()) };
        let plan = EpochPlan::in_order(6);
        let mut batch = crate::pipeline::Batch::default();
        crate::pipeline::BatchSource::fill(&views, &[0, 1, 2, 3, 4, 5], &plan, &mut batch).unwrap();
        assert_eq!(
            (batch.images.as_slice(), batch.labels.as_slice()),
            (test.pixels.as_slice(), test.labels.as_slice())
        );
        assert_eq!((test.height, test.width, test.len()), (8, 8, 6));
        // reduced-DCT decoding streams: auto does not hold the images then
        let reduced = DataConfig { reduced_dct: true, data_in_memory: DataInMemory::Auto, ..yes };
        let Ok(r) = open_folder(&reduced, 1, &mut Silent).unwrap() else { panic!("streamed") };
        assert!(matches!(&r.train, Split::Stream(s) if !s.is_held()));
    }
}
