//! Datasets held in memory as uint8 HWC images: CIFAR-10, CIFAR-100 (official binary layouts, or
//! torchvision's pickled folders),
//! SVHN (official .mat files), Tiny-ImageNet (the official zip), downloaded and verified on
//! demand, and ImageFolder trees of any image size; each with its normalisation.

mod cifar;
mod cifar_format;
mod cifar_py;
mod decode;
mod demo;
mod download;
mod fetch;
mod imagefolder;
mod info;
pub mod jpeg;
pub mod mat;
pub mod resize;
pub mod sources;
mod stats;
pub mod stream;
mod svhn;
mod synthetic;
mod tiny;

pub use cifar::{read_cifar10, read_cifar100, read_cifar_records};
pub use cifar_format::{Cifar100Labels, CIFAR100_COARSE_CLASSES, CIFAR100_FINE_CLASSES, CIFAR10_CLASSES};
pub(crate) use decode::decode_into;
pub use decode::{decode_bytes, decode_part, decode_rgb, image_size, is_jpeg, Size};
pub use demo::{demo, demo_classes, demo_sized, DEMO_SEED, DEMO_TEST, DEMO_TRAIN};
pub use download::{download, md5_file};
pub use fetch::{
    check, check_folder, extract, fetch, fetch_archive, fetch_file, layout, FetchOptions, Layout, MIRROR_ENV,
};
pub(crate) use imagefolder::read_listed_folder;
pub use imagefolder::{read_imagefolder, read_labelled_folder};
pub use info::info;
pub(crate) use stats::streamed_normalisation;
pub use stats::{pixel_statistics, STATS_FILE};
pub use svhn::{read_svhn, read_svhn_split, write_svhn_split, SVHN_CLASSES};
pub use synthetic::synthetic_set;
pub use tiny::read_tiny;

use crate::config::{DataConfig, DatasetName};
use crate::progress::Progress;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};

/// How a dataset's images are normalised: `(x / 255 - mean) / std` per channel.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalisation {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalisation {
    /// The reference's `_CIFAR_MEAN`, `_CIFAR_STD`: CIFAR-10, CIFAR-100 and SVHN.
    pub const CIFAR: Normalisation = Normalisation { mean: [0.4914, 0.4822, 0.4465], std: [0.2023, 0.1994, 0.2010] };
    /// The reference's `_TINY_MEAN`, `_TINY_STD`: Tiny-ImageNet.
    pub const TINY: Normalisation = Normalisation { mean: [0.4802, 0.4481, 0.3975], std: [0.2302, 0.2265, 0.2262] };
    /// The reference's ImageNet `Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])`.
    pub const IMAGENET: Normalisation = Normalisation { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

    /// This normalisation with `--mean` and `--std` put in where given.
    pub fn with_overrides(self, mean: Option<[f32; 3]>, std: Option<[f32; 3]>) -> Normalisation {
        Normalisation { mean: mean.unwrap_or(self.mean), std: std.unwrap_or(self.std) }
    }

    /// The mean as a uint8 colour: what a box zeroed after normalisation looks like.
    pub fn mean_colour(&self) -> [u8; 3] {
        self.mean.map(|m| (m * 255.0).round().clamp(0.0, 255.0) as u8)
    }
}

/// Errors of the dataset readers; each names the file or folder at fault.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is malformed: {what}")]
    Malformed { path: PathBuf, what: String },
    #[error("{path} not found: {hint}")]
    Missing { path: PathBuf, hint: String },
    #[error("{0}")]
    Invalid(String),
    #[error("cannot download {url}: {what}\n  {hint}")]
    Download { url: String, what: String, hint: String },
    #[error("{path} has MD5 {got}, not the official {want}: {what}")]
    Checksum { path: PathBuf, got: String, want: String, what: String },
}

impl DataError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io { path: path.to_path_buf(), source }
    }
    pub(crate) fn malformed(path: &Path, what: impl Into<String>) -> Self {
        DataError::Malformed { path: path.to_path_buf(), what: what.into() }
    }
}

/// A split of images of one size, stored as `len * height * width * 3` uint8 bytes (HWC, RGB).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    pub pixels: Vec<u8>,
    pub labels: Vec<i64>,
    pub height: usize,
    pub width: usize,
}

impl ImageSet {
    /// An empty set of images of the given size.
    pub fn new(height: usize, width: usize) -> Self {
        ImageSet { pixels: Vec::new(), labels: Vec::new(), height, width }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes of one image.
    pub fn image_bytes(&self) -> usize {
        self.height * self.width * 3
    }

    /// The HWC bytes of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_bytes();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// Appends one HWC image with its label.
    pub fn push(&mut self, hwc: &[u8], label: i64) {
        debug_assert_eq!(hwc.len(), self.image_bytes());
        self.pixels.extend_from_slice(hwc);
        self.labels.push(label);
    }

    /// The images at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> ImageSet {
        let mut out = ImageSet::new(self.height, self.width);
        out.pixels.reserve(indices.len() * self.image_bytes());
        for &i in indices {
            out.push(self.image(i), self.labels[i]);
        }
        out
    }

    /// Number of images per class, for `num_classes` classes.
    pub fn class_counts(&self, num_classes: usize) -> Vec<usize> {
        let mut counts = vec![0; num_classes];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// A seeded, class-stratified subset of `n` images (original order kept): each class keeps
    /// its share of `n`, the remainder going to the classes with the largest fractional shares.
    pub fn stratified_subset(&self, n: usize, num_classes: usize, seed: u64) -> Result<ImageSet, DataError> {
        Ok(self.select(&stratified_keep(&self.labels, num_classes, n, seed)?))
    }
}

/// The positions (in order) of a seeded, class-stratified subset of `n` of the samples labelled
/// `labels`: each class keeps its share of `n`, the remainder going to the classes with the
/// largest fractional shares.
pub fn stratified_keep(labels: &[i64], num_classes: usize, n: usize, seed: u64) -> Result<Vec<usize>, DataError> {
    if n > labels.len() {
        return Err(DataError::Invalid(format!(
            "asked for a subset of {n} images but the split has only {}",
            labels.len()
        )));
    }
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); num_classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l as usize].push(i);
    }
    let total = labels.len() as f64;
    let shares: Vec<f64> = by_class.iter().map(|c| c.len() as f64 * n as f64 / total).collect();
    let mut quota: Vec<usize> = shares.iter().map(|s| s.floor() as usize).collect();
    let mut order: Vec<usize> = (0..num_classes).collect();
    order.sort_by(|&a, &b| (shares[b] - shares[b].floor()).total_cmp(&(shares[a] - shares[a].floor())).then(a.cmp(&b)));
    let mut left = n - quota.iter().sum::<usize>();
    for &c in order.iter().cycle() {
        if left == 0 {
            break;
        }
        if quota[c] < by_class[c].len() {
            quota[c] += 1;
            left -= 1;
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut keep = Vec::with_capacity(n);
    for (c, idx) in by_class.iter_mut().enumerate() {
        idx.shuffle(&mut rng);
        keep.extend_from_slice(&idx[..quota[c]]);
    }
    keep.sort_unstable();
    Ok(keep)
}

/// A dataset: named classes, a train and a test split, and how its images are normalised.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub name: String,
    pub classes: Vec<String>,
    pub train: ImageSet,
    pub test: ImageSet,
    pub normalisation: Normalisation,
}

impl Dataset {
    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }
}

/// Number of classes of a named dataset (`None` for an ImageFolder, known only once read).
pub fn num_classes(name: DatasetName) -> Option<usize> {
    match name {
        DatasetName::Cifar10 | DatasetName::Svhn | DatasetName::Demo => Some(10),
        DatasetName::Cifar100 => Some(100),
        DatasetName::Tiny => Some(200),
        DatasetName::ImageFolder | DatasetName::ImageNet => None,
    }
}

/// Reads the dataset `name` from `root` as it is on disk (no download), its folder images at
/// `size`, with its own normalisation; CIFAR-100 with its fine labels; the demo generated in
/// memory (`root` unused). Reading image files reports to `progress`.
pub fn load(name: DatasetName, root: &Path, size: Size, progress: &mut dyn Progress) -> Result<Dataset, DataError> {
    match name {
        DatasetName::Cifar10 => read_cifar10(root),
        DatasetName::Cifar100 => read_cifar100(root, Cifar100Labels::Fine),
        DatasetName::Svhn => read_svhn(root),
        DatasetName::Tiny => read_tiny(root, size, progress),
        DatasetName::ImageFolder => read_imagefolder(root, size, progress),
        DatasetName::ImageNet => Err(DataError::Invalid(
            "--dataset imagenet is read by `resmooth train`, `evaluate` and `detect` (its images have many sizes, \
             streamed or held at their own size); this command needs images of one size: pass --dataset imagefolder \
             --image-size S with --dataroot the folder holding train/ and test/"
                .into(),
        )),
        DatasetName::Demo => Ok(demo()),
    }
}

/// Reads the dataset of `config` (its folder images at `--image-size`, normalised with
/// `--mean`/`--std` where given, else its own statistics), first downloading (from the mirror
/// when given, else the official host), verifying and extracting its official files if they
/// are missing; downloads and image reading report to `progress`.
pub fn load_or_fetch(config: &DataConfig, progress: &mut dyn Progress) -> Result<Dataset, DataError> {
    let (name, root) = (config.dataset, config.dataroot.as_path());
    if layout(name, false).is_some() {
        fetch(name, root, &FetchOptions { mirror: config.mirror.clone(), extra: false }, progress)?;
    }
    load_configured(config, progress)
}

/// Reads the dataset of `config` as it is on disk (no download): its folder images at
/// `--image-size`, normalised with `--mean`/`--std` where given, else its own statistics.
pub fn load_configured(config: &DataConfig, progress: &mut dyn Progress) -> Result<Dataset, DataError> {
    let mut ds = load(config.dataset, &config.dataroot, Size::from_flag(config.image_size), progress)?;
    ds.normalisation = ds.normalisation.with_overrides(config.mean, config.std);
    Ok(ds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(labels: &[i64]) -> ImageSet {
        let mut s = ImageSet::new(2, 2);
        for (i, &l) in labels.iter().enumerate() {
            s.push(&[i as u8; 12], l);
        }
        s
    }

    #[test]
    fn stratified_subset_keeps_class_shares_and_is_seeded() {
        let labels: Vec<i64> = (0..100).map(|i| if i < 70 { 0 } else { 1 }).collect();
        let s = toy(&labels);
        let a = s.stratified_subset(10, 2, 7).unwrap();
        assert_eq!(a.class_counts(2), vec![7, 3]);
        assert_eq!(a, s.stratified_subset(10, 2, 7).unwrap());
        assert_ne!(a, s.stratified_subset(10, 2, 8).unwrap());
        // every kept image keeps its own label
        for i in 0..a.len() {
            let orig = a.image(i)[0] as usize;
            assert_eq!(labels[orig], a.labels[i]);
        }
    }

    #[test]
    fn stratified_subset_distributes_the_remainder() {
        let labels: Vec<i64> = (0..30).map(|i| i % 3).collect();
        let s = toy(&labels);
        let a = s.stratified_subset(4, 3, 1).unwrap();
        assert_eq!(a.len(), 4);
        let counts = a.class_counts(3);
        assert!(counts.iter().all(|&c| c == 1 || c == 2), "{counts:?}");
        assert!(s.stratified_subset(31, 3, 1).is_err());
    }
}
