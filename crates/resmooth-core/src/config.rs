//! The configuration of a run, grouped by concern (data, augmentation, model, optimisation, the
//! method, the run itself), with an enum for every closed choice under the reference's spellings.
//!
//! `TrainConfig` is what the library takes; the command line is converted into it once, in
//! `cli`. It is also what `summary.json` records and, with the fields that do not change what is
//! computed blanked ([`TrainConfig::identity`]), a checkpoint's resume identity. Both are written
//! flat, one key per reference flag, in the shape earlier versions wrote. The flag of each field
//! (its spelling, and whether the reference has it) is in [`flags`].

pub mod flags;
pub mod preset;

use serde::{Deserialize, Deserializer, Serialize};
use std::path::PathBuf;

/// A value outside what a flag accepts, or flags that mean nothing together; the message names
/// the flag, the value and what is accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// A closed choice of a flag: every value and its spelling (the reference's).
pub trait Choice: Copy + Send + Sync + 'static {
    /// Every value, in the order `--help` lists them.
    fn all() -> &'static [Self];
    /// The spelling on the command line and in files.
    fn name(self) -> &'static str;
}

/// Declares an enum for a closed choice: its spellings (the reference's), parsing, display and
/// serde as those strings.
macro_rules! choice {
    ($(#[$doc:meta])* $name:ident, $flag:expr, { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in the order `--help` lists them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The flag that sets it.
            pub const FLAG: &'static str = $flag;

            /// The spelling on the command line and in files.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl Choice for $name {
            fn all() -> &'static [Self] {
                Self::ALL
            }

            fn name(self) -> &'static str {
                $name::name(self)
            }
        }

        impl std::str::FromStr for $name {
            type Err = ConfigError;

            fn from_str(s: &str) -> Result<Self, ConfigError> {
                Self::ALL.iter().copied().find(|v| v.name() == s).ok_or_else(|| {
                    let names: Vec<&str> = Self::ALL.iter().map(|v| v.name()).collect();
                    ConfigError(format!("{} '{s}' is not known; expected one of {}", $flag, names.join(", ")))
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

choice!(
    /// `--dataset`: the official datasets, an ImageFolder tree, or the built-in demo.
    DatasetName, flags::DATASET.spelling, {
        Cifar10 = "cifar10",
        Cifar100 = "cifar100",
        Svhn = "svhn",
        /// DIR/train/<class>/* and DIR/test/<class>/*, JPEG or PNG.
        ImageFolder = "imagefolder",
        /// Tiny-ImageNet-200 (the reference's `tiny`): 200 classes of 64x64 images, its val split as the test split.
        Tiny = "tiny",
        /// ImageNet's layout (DIR/imagenet-pytorch/{train,val}, or DIR/{train,val}) with the reference's
        /// transforms: RandomResizedCrop, flip, ColorJitter, Lighting; Resize + CenterCrop to test.
        ImageNet = "imagenet",
        /// Ours, not the reference's: 10 classes of 32x32 textures generated in memory (no download), for a first run.
        Demo = "demo",
    }
);

choice!(
    /// `--aug`: how the augmented view is made.
    AugName, flags::AUG.spelling, {
        /// The reference's RandAugment(N, M) before the crop.
        RandAugment = "ra",
        /// torchvision's AutoAugment (CIFAR-10 policy; SVHN's for svhn) before the crop.
        AutoAugment = "aa",
        /// A rotation by 90, 180 or 270 degrees before the crop.
        Rotate = "rotate",
        /// The 2x2 patches shuffled after the crop and flip.
        Jigsaw = "jigsaw",
        /// No extra op: an independent crop and flip.
        Default = "default",
        /// The reference's SevereAugment(N, M): N of large shears, translations and a grey cutout before the crop.
        Severe = "severe",
        /// A vertical flip after the crop and flip.
        Vertical = "vertical",
        /// Pillow's Gaussian blur, sigma drawn from U(0.6, 2.0), before the crop.
        Blur = "blur",
        /// scikit-image's Sobel edge magnitude before the crop.
        Sobel = "sobel",
    }
);

choice!(
    /// `--model`: the reference's architectures (its `get_model` names), with its state_dict keys,
    /// and our small network for the demo.
    ModelName, flags::MODEL.spelling, {
        /// torchvision's ResNet-18 with a 3x3 stride-1 stem and no max-pool.
        ResNet18 = "resnet18",
        /// ImageNet-style bottleneck ResNet-50 (7x7 stem, max-pool).
        ResNet50 = "resnet50",
        /// ImageNet-style bottleneck ResNet-200.
        ResNet200 = "resnet200",
        /// Pre-activation WideResNet-40-2.
        WResNet40x2 = "wresnet40_2",
        /// Pre-activation WideResNet-28-10.
        WResNet28x10 = "wresnet28_10",
        /// Shake-shake ResNet-26, 2 branches of width 32.
        ShakeShake26x2x32d = "shakeshake26_2x32d",
        /// Shake-shake ResNet-26, 2 branches of width 64.
        ShakeShake26x2x64d = "shakeshake26_2x64d",
        /// Shake-shake ResNet-26, 2 branches of width 96.
        ShakeShake26x2x96d = "shakeshake26_2x96d",
        /// Shake-shake ResNet-26, 2 branches of width 112.
        ShakeShake26x2x112d = "shakeshake26_2x112d",
        /// Shake-shake ResNeXt-26, 2 branches, cardinality 4.
        ShakeShake26x2x96dNext = "shakeshake26_2x96d_next",
        /// Ours, not the reference's: three conv-BN-ReLU-pool stages (16, 32, 64 channels), for the demo on a CPU.
        SmallCnn = "small_cnn",
    }
);

/// `--model` as given: one of the reference's architectures, or `torchscript:PATH`, a scripted or
/// traced PyTorch module file. Written in files as that same string (`"resnet18"`,
/// `"torchscript:net.pt"`), so configurations of earlier versions still parse.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ModelSpec {
    Builtin(ModelName),
    TorchScript(PathBuf),
}

impl ModelSpec {
    /// The prefix of a TorchScript module file on the command line and in files.
    pub const TORCHSCRIPT: &'static str = "torchscript:";
}

impl From<ModelName> for ModelSpec {
    fn from(name: ModelName) -> Self {
        ModelSpec::Builtin(name)
    }
}

impl std::str::FromStr for ModelSpec {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s.strip_prefix(Self::TORCHSCRIPT) {
            Some("") => bad(format!(
                "--model {s} names no file; pass torchscript:PATH with the file of torch.jit.script(model).save(PATH)"
            )),
            Some(path) => Ok(ModelSpec::TorchScript(PathBuf::from(path))),
            None => s.parse().map(ModelSpec::Builtin).map_err(|e: ConfigError| {
                ConfigError(format!("{}, or torchscript:PATH (a scripted or traced PyTorch module)", e.0))
            }),
        }
    }
}

impl std::fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelSpec::Builtin(name) => f.write_str(name.name()),
            ModelSpec::TorchScript(path) => write!(f, "{}{}", Self::TORCHSCRIPT, path.display()),
        }
    }
}

impl Serialize for ModelSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ModelSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

choice!(
    /// `--loss`: the criteria of the original and augmented parts.
    LossName, flags::LOSS.spelling, {
        LabelSmooth = "LabelSmooth",
        /// The reference's sample-wise smoothing by `1 - p_ID` (needs `--gmm`).
        SampleSmooth = "SampleSmooth",
        /// Distillation from the pretrained baseline on the augmented views.
        Distillation = "Distillation",
    }
);

choice!(
    /// `--weighting`: how p_ID turns into smoothing.
    Weighting, flags::WEIGHTING.spelling, {
        Regular = "regular",
        /// 1 - p_ID.
        Reverse = "reverse",
        /// p_ID permuted across the batch.
        Random = "random",
        /// p drawn from U(0, 1).
        Uniform = "uniform",
    }
);

choice!(
    /// `--fair-comparison`: train on augmented views only, keeping some of them.
    FairComparison, flags::FAIR_COMPARISON.spelling, {
        Mix = "mix",
        /// The views judged OOD.
        Daood = "DAOOD",
        /// The views judged ID.
        Daid = "DAID",
        /// Normal training.
        Disable = "disable",
    }
);

choice!(
    /// `--precision` of training and evaluation (the GMM's scorer is always fp32).
    Precision, flags::PRECISION.spelling, {
        Fp32 = "fp32",
        /// Mixed: fp32 weights and statistics, bf16 convolutions and matrix products.
        Bf16 = "bf16",
    }
);

choice!(
    /// `--memory-format` of activations.
    MemoryFormat, flags::MEMORY_FORMAT.spelling, {
        Nchw = "nchw",
        ChannelsLast = "channels_last",
    }
);

choice!(
    /// `--cuda-graphs`: whether the training step is captured as a CUDA graph and replayed.
    CudaGraphs, flags::CUDA_GRAPHS.spelling, {
        /// Every step eager (one launch per op).
        Off = "off",
        /// A graph on a GPU where the step allows one, checked against an eager step; eager otherwise.
        Auto = "auto",
        /// A graph, or an error saying why not.
        On = "on",
    }
);

choice!(
    /// `--save-format`: the format of a run's weights files.
    SaveFormat, flags::SAVE_FORMAT.spelling, {
        /// `model.safetensors`, `best.safetensors`: the state_dict alone.
        Safetensors = "safetensors",
        /// `model.pth`, `best.pth`: the reference's torch.save checkpoint
        /// `{'epoch', 'log', 'optimizer', 'model'}`.
        Pth = "pth",
    }
);

impl SaveFormat {
    /// The extension of its files.
    pub fn extension(self) -> &'static str {
        match self {
            SaveFormat::Safetensors => "safetensors",
            SaveFormat::Pth => "pth",
        }
    }

    /// The format a weights file's name says: `.pth` or `.pt` is torch.save's, anything else safetensors.
    pub fn of_path(path: &std::path::Path) -> SaveFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some("pth" | "pt") => SaveFormat::Pth,
            _ => SaveFormat::Safetensors,
        }
    }
}

choice!(
    /// `--data-in-memory`: whether a folder dataset is decoded once into memory or read from
    /// disk as the batches are made. The batches are the same either way.
    DataInMemory, flags::DATA_IN_MEMORY.spelling, {
        /// In memory when the decoded images take at most half the memory available, else streamed.
        Auto = "auto",
        /// Decoded once into memory.
        Yes = "yes",
        /// Streamed: files read and decoded for every batch, memory bounded whatever the dataset's size.
        No = "no",
    }
);

#[allow(clippy::derivable_impls)] // the enum comes from `choice!`, which derives no Default
impl Default for DataInMemory {
    fn default() -> Self {
        DataInMemory::Auto
    }
}

choice!(
    /// `--on-bad-image`: what training does with an image file that cannot be read or decoded.
    OnBadImage, flags::ON_BAD_IMAGE.spelling, {
        /// Stop with an error naming the file.
        Fail = "fail",
        /// Leave the image out of its batch and report it by name.
        Skip = "skip",
    }
);

#[allow(clippy::derivable_impls)] // the enum comes from `choice!`, which derives no Default
impl Default for OnBadImage {
    fn default() -> Self {
        OnBadImage::Fail
    }
}

choice!(
    /// `--optimizer` of `bench train`: how an SGD step updates the parameters (training always
    /// uses the fused step).
    SgdKernel, "--optimizer", {
        /// One `_fused_sgd_` call for all parameters, the learning rate on the device.
        Fused = "fused",
        /// Five tensor ops per parameter tensor: the reference implementation.
        PerParameter = "per-parameter",
    }
);

/// Where the images come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataConfig {
    pub dataset: DatasetName,
    /// Folder holding the dataset files.
    pub dataroot: PathBuf,
    /// URL prefix serving the official file names, instead of the official hosts.
    pub mirror: Option<String>,
    /// A seeded, class-stratified subset of this many training images.
    pub train_size: Option<usize>,
    /// A seeded, class-stratified subset of this many test images.
    pub test_size: Option<usize>,
    /// Folder datasets: every image resized (shorter side) and centre-cropped to this square size at load time.
    #[serde(default)]
    pub image_size: Option<usize>,
    /// Per-channel normalisation mean (default: the dataset's own).
    #[serde(default)]
    pub mean: Option<[f32; 3]>,
    /// Per-channel normalisation standard deviation (default: the dataset's own).
    #[serde(default)]
    pub std: Option<[f32; 3]>,
    /// Folder datasets: decoded into memory, streamed from disk, or decided from their size.
    #[serde(default)]
    pub data_in_memory: DataInMemory,
    /// Streamed ImageNet: JPEGs decoded at a reduced DCT scale when the crop is shrunk anyway.
    #[serde(default)]
    pub reduced_dct: bool,
    /// Folder datasets: what to do with an image file that cannot be read.
    #[serde(default)]
    pub on_bad_image: OnBadImage,
}

/// How the augmented views are made and how many of a batch they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AugConfig {
    pub aug: AugName,
    /// RandAugment: ops per image (`--N`).
    pub n: usize,
    /// RandAugment: magnitude, 0..=30 (`--M`).
    pub m: usize,
    /// Cutout square side in pixels (0 = off), on the augmented view.
    pub cutout: usize,
    /// Fraction of each batch taken from original views.
    pub prob: f64,
    /// Zero padding of the random crop (default: an eighth of the image side, the reference's 4 at 32 px).
    #[serde(default)]
    pub crop_padding: Option<usize>,
}

/// The network and how it computes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub model: ModelSpec,
    #[serde(deserialize_with = "null_as_default", default)]
    pub precision: Precision,
    pub memory_format: MemoryFormat,
    /// `--sync-bn`: BatchNorm with the statistics of the whole global batch when several
    /// processes train together (torch.nn.SyncBatchNorm); one process is unchanged by it.
    #[serde(default)]
    pub sync_bn: bool,
}

/// SGD and its learning-rate schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimConfig {
    pub epochs: usize,
    pub lr: f64,
    /// Cosine annealing after warmup (`--cosine`).
    #[serde(default = "yes")]
    pub cosine: bool,
    /// Warmup to `lr * warm_multiplier` over `warm_epoch` epochs (`--warm`).
    #[serde(default = "yes")]
    pub warm: bool,
    /// A whole number on the command line (the reference's `type=int`); kept as a float, the type
    /// earlier versions wrote (`2.0`), so that their run folders resume.
    pub warm_multiplier: f64,
    pub warm_epoch: usize,
    /// Mini-batch size; the last partial training batch is dropped.
    pub batch_size: usize,
    pub weight_decay: f64,
    #[serde(default = "yes")]
    pub nesterov: bool,
}

/// The ReSmooth method: the GMM, the criteria and the pretrained baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodConfig {
    /// Fit the GMM on the baseline's losses and give the criteria p_ID.
    pub gmm: bool,
    pub weighting: Weighting,
    pub loss: LossName,
    pub smooth_org: f64,
    pub smooth_aug: f64,
    /// Deviation from the reference: SampleSmooth as a normalised smoothed label.
    #[serde(default)]
    pub normalised_sample_smooth: bool,
    /// Distillation: teacher classes distilled (-1 = all; `--K`).
    pub k: i64,
    /// Distillation: weight of the distillation term.
    pub lamda: f64,
    /// Distillation: softmax temperature (`--T`).
    pub t: f64,
    pub fair_comparison: FairComparison,
    /// The baseline's weights (default: the tag's sibling `baseline`, its best epoch).
    pub pretrained: Option<PathBuf>,
}

/// Where a run writes, on which device, and how this session of it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// Run name: outputs go to `<logdir>/<tag>/`.
    pub tag: String,
    pub logdir: PathBuf,
    /// Weights file (default `<logdir>/<tag>/model.safetensors`, or `model.pth`).
    pub save: Option<PathBuf>,
    /// `--save-format`, when given (see [`TrainConfig::save_format`]).
    #[serde(default)]
    pub save_format: Option<SaveFormat>,
    /// CUDA device index.
    pub gpu: usize,
    /// Seed of every random draw.
    pub seed: u64,
    /// Data pipeline threads (0 = one per core).
    pub workers: usize,
    /// On a GPU: deterministic algorithms only (cuDNN's and libtorch's), no cuDNN autotuning.
    #[serde(default)]
    pub deterministic: bool,
    /// Whether training steps are replays of a CUDA graph (same numbers, fewer launches).
    #[serde(default)]
    pub cuda_graphs: CudaGraphs,
    /// `--dist-timeout`: seconds the processes of a distributed run wait for each other (to
    /// join, and in each collective) before failing.
    #[serde(default = "dist_timeout")]
    pub dist_timeout: u64,
    /// Start over even if a checkpoint exists.
    pub restart: bool,
    /// End this session after epoch N (resumable).
    pub stop_after: Option<usize>,
    /// Only evaluate the weights of `save`.
    pub only_eval: bool,
    /// Also evaluate on the DAOOD and DAID trees every epoch.
    #[serde(default)]
    pub eval_da: bool,
    #[serde(default = "daood")]
    pub daood: PathBuf,
    #[serde(default = "daid")]
    pub daid: PathBuf,
}

/// Everything a training run needs, as `resmooth train` resolves it from the reference's flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    #[serde(flatten)]
    pub data: DataConfig,
    #[serde(flatten)]
    pub aug: AugConfig,
    #[serde(flatten)]
    pub model: ModelConfig,
    #[serde(flatten)]
    pub optim: OptimConfig,
    #[serde(flatten)]
    pub method: MethodConfig,
    #[serde(flatten)]
    pub run: RunConfig,
}

fn yes() -> bool {
    true
}

fn dist_timeout() -> u64 {
    DEFAULT_DIST_TIMEOUT
}

/// `--dist-timeout`'s default in seconds: DistributedDataParallel's 10 minutes.
pub const DEFAULT_DIST_TIMEOUT: u64 = 600;

/// The largest `--dist-timeout` libtorch holds: 2^31 - 1 milliseconds.
pub const MAX_DIST_TIMEOUT: u64 = i32::MAX as u64 / 1000;

fn daood() -> PathBuf {
    PathBuf::from("DAOOD")
}

fn daid() -> PathBuf {
    PathBuf::from("DAID")
}

/// Reads `null` (how earlier versions wrote "not given") as the default.
fn null_as_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[allow(clippy::derivable_impls)] // the enum comes from `choice!`, which derives no Default
impl Default for CudaGraphs {
    /// Off until the graph path is measured on a GPU (docs/BENCHMARKS.md).
    fn default() -> Self {
        CudaGraphs::Off
    }
}

#[allow(clippy::derivable_impls)] // the enum comes from `choice!`, which derives no Default
impl Default for Precision {
    fn default() -> Self {
        Precision::Fp32
    }
}

impl Default for TrainConfig {
    /// The reference's defaults for every flag.
    fn default() -> Self {
        TrainConfig {
            data: DataConfig {
                dataset: DatasetName::Cifar10,
                dataroot: PathBuf::from("data"),
                mirror: None,
                train_size: None,
                test_size: None,
                image_size: None,
                mean: None,
                std: None,
                data_in_memory: DataInMemory::Auto,
                reduced_dct: false,
                on_bad_image: OnBadImage::Fail,
            },
            aug: AugConfig { aug: AugName::RandAugment, n: 3, m: 5, cutout: 0, prob: 0.2, crop_padding: None },
            model: ModelConfig {
                model: ModelSpec::Builtin(ModelName::ResNet18),
                precision: Precision::Fp32,
                memory_format: MemoryFormat::Nchw,
                sync_bn: false,
            },
            optim: OptimConfig {
                epochs: 200,
                lr: 0.1,
                cosine: true,
                warm: true,
                warm_multiplier: 2.0,
                warm_epoch: 5,
                batch_size: 256,
                weight_decay: 5e-4,
                nesterov: true,
            },
            method: MethodConfig {
                gmm: false,
                weighting: Weighting::Regular,
                loss: LossName::LabelSmooth,
                smooth_org: 0.0,
                smooth_aug: 0.0,
                normalised_sample_smooth: false,
                k: -1,
                lamda: 0.5,
                t: 5.0,
                fair_comparison: FairComparison::Disable,
                pretrained: None,
            },
            run: RunConfig {
                tag: String::new(),
                logdir: PathBuf::from("logs"),
                save: None,
                save_format: None,
                gpu: 0,
                seed: 0,
                workers: 0,
                deterministic: false,
                cuda_graphs: CudaGraphs::Off,
                dist_timeout: DEFAULT_DIST_TIMEOUT,
                restart: false,
                stop_after: None,
                only_eval: false,
                eval_da: false,
                daood: daood(),
                daid: daid(),
            },
        }
    }
}

fn bad<T>(message: String) -> Result<T, ConfigError> {
    Err(ConfigError(message))
}

/// Checks `--M` for `--aug`: 0..=30 (RandAugment's scale), 0..=10 for severe (the scale of the
/// reference's SevereAugment).
pub fn check_magnitude(aug: AugName, m: usize) -> Result<(), ConfigError> {
    let max = if aug == AugName::Severe { 10 } else { 30 };
    if m > max {
        let what = if aug == AugName::Severe { ", the scale of --aug severe" } else { "" };
        return bad(format!("--M {m} is outside 0..={max}{what}"));
    }
    Ok(())
}

/// The smallest `--image-size`: the models halve the side three times.
pub const MIN_IMAGE_SIZE: usize = 8;

impl DataConfig {
    /// Checks `--image-size`, `--mean` and `--std`; the message names the flag.
    pub fn check(&self) -> Result<(), ConfigError> {
        let folder = matches!(self.dataset, DatasetName::ImageFolder | DatasetName::ImageNet);
        if self.data_in_memory == DataInMemory::No && !folder {
            return bad(format!(
                "--data-in-memory no streams folder datasets (imagefolder, imagenet) from disk; {} is always read into memory; leave the flag out",
                self.dataset
            ));
        }
        if self.reduced_dct {
            if self.dataset != DatasetName::ImageNet {
                return bad(format!(
                    "--reduced-dct decodes ImageNet's JPEGs at a reduced scale before its crop; it does not apply to --dataset {}",
                    self.dataset
                ));
            }
            if self.data_in_memory == DataInMemory::Yes {
                return bad("--reduced-dct decodes each file as it is streamed, but --data-in-memory yes decodes every image once at full size; pass --data-in-memory no (or leave one flag out)".to_string());
            }
        }
        if self.on_bad_image == OnBadImage::Skip && !folder {
            return bad(format!(
                "--on-bad-image skip applies to image folders (imagefolder, imagenet); {} is read from its own files, which are checked whole",
                self.dataset
            ));
        }
        if let Some(s) = self.image_size {
            if !matches!(self.dataset, DatasetName::ImageFolder | DatasetName::Tiny | DatasetName::ImageNet) {
                return bad(format!(
                    "--image-size resizes the images of folder datasets (imagefolder, tiny, imagenet); {} images are used at their size",
                    self.dataset
                ));
            }
            if s < MIN_IMAGE_SIZE {
                return bad(format!("--image-size {s} is too small; it must be at least {MIN_IMAGE_SIZE}"));
            }
        }
        if let Some(m) = self.mean {
            if !m.iter().all(|v| v.is_finite()) {
                return bad(format!("--mean {m:?} must be three finite numbers"));
            }
        }
        if let Some(s) = self.std {
            if !s.iter().all(|v| v.is_finite() && *v > 0.0) {
                return bad(format!("--std {s:?} must be three positive numbers"));
            }
        }
        Ok(())
    }
}

impl TrainConfig {
    /// Whether the run needs the pretrained baseline (the GMM's scorer or the teacher).
    pub fn needs_pretrained(&self) -> bool {
        self.method.gmm || self.method.loss == LossName::Distillation
    }

    /// Checks every value and every combination of flags; the message names the flag.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_values()?;
        self.check_combinations()
    }

    fn check_values(&self) -> Result<(), ConfigError> {
        let (a, o, m) = (&self.aug, &self.optim, &self.method);
        if !(0.0..=1.0).contains(&a.prob) {
            return bad(format!("--prob {} is outside [0, 1]", a.prob));
        }
        for (flag, v) in [("--smooth-aug", m.smooth_aug), ("--smooth-org", m.smooth_org)] {
            if !(0.0..1.0).contains(&v) {
                return bad(format!("{flag} {v} is outside [0, 1)"));
            }
        }
        check_magnitude(a.aug, a.m)?;
        if o.epochs == 0 {
            return bad("--epochs must be at least 1".into());
        }
        if o.batch_size == 0 {
            return bad("--batch-size must be at least 1".into());
        }
        if !(o.lr > 0.0 && o.lr.is_finite()) {
            return bad(format!("--lr {} must be a positive number", o.lr));
        }
        if !(o.weight_decay >= 0.0 && o.weight_decay.is_finite()) {
            return bad(format!("--weight-decay {} must be a non-negative number", o.weight_decay));
        }
        if !(o.warm_multiplier >= 1.0 && o.warm_multiplier.is_finite()) {
            return bad(format!("--warm-multiplier {} must be at least 1", o.warm_multiplier));
        }
        if m.k == 0 || m.k < -1 {
            return bad(format!("--K {} must be -1 (all classes) or a positive count", m.k));
        }
        if !(m.t > 0.0 && m.t.is_finite()) {
            return bad(format!("--T {} must be positive", m.t));
        }
        if self.data.train_size == Some(0) || self.data.test_size == Some(0) {
            return bad("--train-size and --test-size must be at least 1".into());
        }
        self.data.check()?;
        let r = &self.run;
        if let (Some(format), Some(save)) = (r.save_format, &r.save) {
            if format != SaveFormat::of_path(save) {
                return bad(format!(
                    "--save {} names a {} file but --save-format is {format}; name it *.{} or drop --save-format",
                    save.display(),
                    SaveFormat::of_path(save),
                    format.extension()
                ));
            }
        }
        if !(1..=MAX_DIST_TIMEOUT).contains(&r.dist_timeout) {
            return bad(format!("--dist-timeout {} must be from 1 to {MAX_DIST_TIMEOUT} seconds", r.dist_timeout));
        }
        if r.only_eval && r.save.is_none() && r.tag.is_empty() {
            return bad(
                "--only-eval needs the weights to evaluate: pass --save PATH (or the --tag of a finished run)".into()
            );
        }
        Ok(())
    }

    /// Flag combinations that have no meaning (the reference would crash or silently ignore them).
    fn check_combinations(&self) -> Result<(), ConfigError> {
        let m = &self.method;
        if m.loss == LossName::SampleSmooth && !m.gmm {
            return bad("--loss SampleSmooth needs --gmm (p_ID comes from the GMM)".into());
        }
        if m.fair_comparison != FairComparison::Disable {
            if !m.gmm {
                return bad(format!(
                    "--fair-comparison {} needs --gmm (it selects samples by p_ID)",
                    m.fair_comparison
                ));
            }
            if m.loss == LossName::Distillation {
                return bad("--fair-comparison cannot be combined with --loss Distillation".into());
            }
            if self.aug.prob >= 1.0 {
                return bad("--fair-comparison trains on augmented views only; it needs --prob below 1".into());
            }
            if self.run.cuda_graphs == CudaGraphs::On {
                return bad(format!(
                    "--cuda-graphs on cannot capture --fair-comparison {}, whose kept views change the step's shapes \
                     every batch; pass --cuda-graphs auto or off",
                    m.fair_comparison
                ));
            }
        }
        if m.normalised_sample_smooth && m.loss != LossName::SampleSmooth {
            return bad(format!(
                "--normalised-sample-smooth changes --loss SampleSmooth; it has no effect with --loss {}",
                m.loss
            ));
        }
        if m.weighting != Weighting::Regular && !m.gmm {
            return bad(format!("--weighting {} only acts with --gmm", m.weighting));
        }
        if let (ModelSpec::TorchScript(_), true) = (&self.model.model, self.model.sync_bn) {
            return bad(format!(
                "--sync-bn needs a built-in model (its BatchNorm layers are resmooth's); --model {}'s layers are the module's own",
                self.model.model
            ));
        }
        if let (ModelSpec::TorchScript(_), Precision::Bf16) = (&self.model.model, self.model.precision) {
            return bad(format!(
                "--precision bf16 needs a built-in model (their layers cast fp32 weights to bf16); --model {} runs in fp32",
                self.model.model
            ));
        }
        if m.pretrained.is_some() && !self.needs_pretrained() {
            return bad("--pretrained is only used by --gmm or --loss Distillation".into());
        }
        Ok(())
    }

    /// The fields that decide what a run computes: where it reads and writes, on which device,
    /// with how many threads, whether GPU algorithms are deterministic, how this session ends,
    /// how long its processes wait for each other and the extra `--evalDA` evaluations are
    /// blanked. Two runs with equal identities compute the same thing. The number of processes
    /// is no field: `--batch-size` is the global batch, so a run resumes on another number of
    /// GPUs; `--sync-bn` stays in it (on several processes it changes what BatchNorm computes).
    pub fn identity(&self) -> TrainConfig {
        let mut c = self.clone();
        let blank = TrainConfig::default();
        c.data.dataroot = PathBuf::new();
        c.data.mirror = None;
        c.data.data_in_memory = DataInMemory::default();
        c.run = RunConfig {
            tag: c.run.tag,
            seed: c.run.seed,
            logdir: PathBuf::new(),
            daood: PathBuf::new(),
            daid: PathBuf::new(),
            ..blank.run
        };
        c
    }

    /// The format of the run's weights files: `--save-format`, else the one `--save`'s name
    /// says (`.pth`/`.pt`: torch.save's), else safetensors.
    pub fn save_format(&self) -> SaveFormat {
        let r = &self.run;
        r.save_format.unwrap_or_else(|| r.save.as_deref().map_or(SaveFormat::Safetensors, SaveFormat::of_path))
    }

    /// The identity as checkpoints store it (the flat JSON of [`TrainConfig::identity`]).
    pub fn identity_json(&self) -> serde_json::Value {
        serde_json::to_value(self.identity()).expect("a configuration serialises")
    }

    /// Whether a checkpoint's stored identity is this configuration's. Identities written by
    /// earlier versions (without the fields added since, `null` for the default precision) are
    /// read with today's defaults for what they lack.
    pub fn same_identity(&self, stored: &serde_json::Value) -> bool {
        match serde_json::from_value::<TrainConfig>(stored.clone()) {
            Ok(old) => old.identity() == self.identity(),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse_their_reference_spellings_and_name_the_flag_otherwise() {
        for (text, want) in [("ra", AugName::RandAugment), ("jigsaw", AugName::Jigsaw)] {
            assert_eq!(text.parse::<AugName>().unwrap(), want);
            assert_eq!(want.to_string(), text);
        }
        assert_eq!("DAOOD".parse::<FairComparison>().unwrap(), FairComparison::Daood);
        assert_eq!(serde_json::to_string(&ModelName::WResNet28x10).unwrap(), "\"wresnet28_10\"");
        let err = "vgg".parse::<ModelName>().unwrap_err().to_string();
        assert!(err.contains("--model") && err.contains("vgg") && err.contains("wresnet28_10"), "{err}");
    }

    #[test]
    fn model_is_a_reference_name_or_a_torchscript_file_and_serialises_as_given() {
        for name in ["resnet18", "resnet200", "wresnet40_2", "shakeshake26_2x96d_next"] {
            let spec: ModelSpec = name.parse().unwrap();
            assert!(matches!(spec, ModelSpec::Builtin(_)), "{name}");
            assert_eq!(serde_json::to_string(&spec).unwrap(), format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<ModelSpec>(&format!("\"{name}\"")).unwrap(), spec);
        }
        let ts: ModelSpec = "torchscript:nets/res:1.pt".parse().unwrap();
        assert_eq!(ts, ModelSpec::TorchScript(PathBuf::from("nets/res:1.pt")));
        assert_eq!(serde_json::to_value(&ts).unwrap(), "torchscript:nets/res:1.pt");
        assert_eq!(serde_json::from_value::<ModelSpec>(serde_json::to_value(&ts).unwrap()).unwrap(), ts);
        let err = "torchscript:".parse::<ModelSpec>().unwrap_err().to_string();
        assert!(err.contains("--model") && err.contains("PATH"), "{err}");
        let err = "vgg".parse::<ModelSpec>().unwrap_err().to_string();
        assert!(
            err.contains("vgg") && err.contains("shakeshake26_2x112d") && err.contains("torchscript:PATH"),
            "{err}"
        );
        let mut c = TrainConfig::default();
        c.model.model = ts;
        assert!(c.validate().is_ok());
        c.model.precision = Precision::Bf16;
        assert!(c.validate().unwrap_err().to_string().contains("--precision bf16"));
    }

    #[test]
    fn validation_names_the_flag() {
        let with = |f: &dyn Fn(&mut TrainConfig)| {
            let mut c = TrainConfig::default();
            f(&mut c);
            c.validate().unwrap_err().to_string()
        };
        assert!(with(&|c| c.aug.prob = 1.5).contains("--prob"));
        assert!(with(&|c| c.method.smooth_aug = 1.0).contains("--smooth-aug"));
        assert!(with(&|c| c.aug.m = 31).contains("--M"));
        assert!(with(&|c| c.optim.epochs = 0).contains("--epochs"));
        assert!(with(&|c| c.method.loss = LossName::SampleSmooth).contains("--gmm"));
        assert!(with(&|c| c.method.weighting = Weighting::Reverse).contains("--weighting"));
        assert!(with(&|c| c.run.dist_timeout = 0).contains("--dist-timeout 0"));
        let ts_sync = with(&|c| (c.model.model, c.model.sync_bn) = (ModelSpec::TorchScript("n.pt".into()), true));
        assert!(ts_sync.contains("--sync-bn needs a built-in model"), "{ts_sync}");
        let fair_on_graphs = with(&|c| {
            (c.method.gmm, c.method.fair_comparison, c.aug.prob) = (true, FairComparison::Daood, 0.0);
            c.run.cuda_graphs = CudaGraphs::On;
        });
        assert!(fair_on_graphs.contains("--cuda-graphs on") && fair_on_graphs.contains("DAOOD"), "{fair_on_graphs}");
        assert!(TrainConfig::default().validate().is_ok());
    }

    #[test]
    fn identity_ignores_where_and_how_fast() {
        let a = TrainConfig::default();
        let mut b = a.clone();
        b.run.gpu = 3;
        b.run.workers = 7;
        b.data.dataroot = "elsewhere".into();
        b.run.eval_da = true;
        b.run.deterministic = true;
        b.run.cuda_graphs = CudaGraphs::Auto;
        b.run.dist_timeout = 30;
        b.data.data_in_memory = DataInMemory::No;
        assert!(a.same_identity(&b.identity_json()));
        let mut synced = a.clone();
        synced.model.sync_bn = true;
        assert!(!a.same_identity(&synced.identity_json()), "--sync-bn changes what several processes compute");
        b.method.smooth_aug = 0.3;
        assert!(!a.same_identity(&b.identity_json()));
    }

    #[test]
    fn json_is_flat_with_one_key_per_flag() {
        let v = serde_json::to_value(TrainConfig::default()).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        for k in ["dataset", "aug", "n", "m", "prob", "model", "precision", "epochs", "gmm", "k", "t", "tag", "seed"] {
            assert!(keys.iter().any(|x| *x == k), "{k} missing from {keys:?}");
        }
        assert_eq!(v["precision"], "fp32");
        assert_eq!(v["fair_comparison"], "disable");
        let back: TrainConfig = serde_json::from_value(v).unwrap();
        assert_eq!(back, TrainConfig::default());
    }
}
