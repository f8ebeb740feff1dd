//! The commands around training: `detect`, `augment apply|preview`, `bench augment|train` and
//! `data fetch|check|info`.

use super::flags::{AugFlags, ComputeFlags, DataFlags, DeviceFlags, ModelFlags};
use clap::{Args, Subcommand};
use resmooth::config::{DatasetName, SgdKernel};
use std::path::PathBuf;

/// Flags of `resmooth detect`.
#[derive(Debug, Clone, Args)]
pub struct DetectArgs {
    /// Pretrained weights (default: the baseline of --tag, <logdir>/<parent of tag>/baseline/best.safetensors).
    #[arg(long)]
    pub pretrained: Option<PathBuf>,
    /// Where gmm.json and losses.csv go: <logdir>/<tag>/.
    #[arg(long, default_value = "detect")]
    pub tag: String,
    /// Folder of the runs.
    #[arg(long, default_value = "logs")]
    pub logdir: PathBuf,
    /// Seed of the views' random draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Batch size of the scoring pass.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Also write the scored augmented views as PNG trees DIR/DAOOD/<class>/ (p_ID < 0.5) and
    /// DIR/DAID/<class>/, the test sets of `resmooth train --evalDA --daood DIR/DAOOD --daid DIR/DAID`.
    #[arg(long, value_name = "DIR")]
    pub export: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataFlags,
    #[command(flatten)]
    pub aug: AugFlags,
    #[command(flatten)]
    pub model: ModelFlags,
    #[command(flatten)]
    pub device: DeviceFlags,
}

/// Flags of `resmooth report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Run folders (<logdir>/<tag>/ of train, run or detect); several are compared on one page.
    #[arg(required = true, value_name = "RUN_DIR")]
    pub dirs: Vec<PathBuf>,
    /// Folder to write report.html into (default: the run folder, or the folder holding the runs).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Where the training images are, when not at the --dataroot the runs recorded (the grids of
    /// scored views are made again from them; without them the page says so).
    #[arg(long, value_name = "DIR")]
    pub dataroot: Option<PathBuf>,
    /// Augmented views in each grid (most OOD, most ID); 0 leaves the grids out.
    #[arg(long, default_value_t = 24)]
    pub views: usize,
}

/// Flags of `resmooth export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// The run folder (<logdir>/<tag>/ of resmooth train), whose checkpoint.safetensors is exported.
    #[arg(value_name = "RUN")]
    pub run: PathBuf,
    /// The file to write: the reference's checkpoint {'epoch', 'log', 'optimizer', 'model'} as
    /// torch.save writes it (torch.load(FILE)['model'] loads with load_state_dict(strict=True)).
    #[arg(long, value_name = "FILE")]
    pub pth: PathBuf,
}

/// `resmooth augment ...`.
#[derive(Debug, Args)]
pub struct AugmentArgs {
    #[command(subcommand)]
    pub command: AugmentCommand,
}

/// The `augment` subcommands.
#[derive(Debug, Subcommand)]
pub enum AugmentCommand {
    /// Apply one op with an explicit signed value (no random sign) to a PNG: the pixels Pillow gives
    /// for the reference's op function with that value.
    Apply(ApplyArgs),
    /// Write a PNG grid of original and augmented training views, labelled with the ops applied.
    Preview(PreviewArgs),
    /// Write the original and augmented view of chosen training samples in one epoch, exactly as
    /// `resmooth train` makes them (before normalisation; the cutout box is printed, not
    /// painted), as PNGs, and print what was applied as JSON lines.
    Views(ViewsArgs),
}

/// Flags of `resmooth augment apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Op: Identity, ShearX, ShearY, TranslateX, TranslateY, Rotate, AutoContrast, Invert, Equalize,
    /// Solarize, Posterize, Color, Brightness, Sharpness or Contrast (with --value); or the
    /// ImageNet ones: random-resized-crop (--box, --size), color-jitter (--factors, --order),
    /// imagenet-eval (--resize, --size) or lighting (--alphas; writes its offset as JSON).
    #[arg(long)]
    pub op: String,
    /// The op's value as the reference passes it (default 0): shear coefficient, translation as a
    /// fraction of the size, degrees, solarize threshold, posterize bits, or enhancement factor.
    #[arg(long, allow_negative_numbers = true)]
    pub value: Option<f64>,
    /// random-resized-crop: the crop box in the input, as torchvision's get_params returns it.
    #[arg(long = "box", value_name = "TOP,LEFT,HEIGHT,WIDTH", value_delimiter = ',')]
    pub crop_box: Option<Vec<usize>>,
    /// random-resized-crop: side of the output (default 224); imagenet-eval: side of the centre
    /// crop (default 224).
    #[arg(long)]
    pub size: Option<usize>,
    /// imagenet-eval: the shorter side after the bicubic resize (default 256).
    #[arg(long)]
    pub resize: Option<usize>,
    /// color-jitter: the brightness, contrast and saturation factors.
    #[arg(long, value_name = "B,C,S", value_delimiter = ',')]
    pub factors: Option<Vec<f32>>,
    /// color-jitter: the order the enhancements are applied in, torchvision's numbers
    /// (0 brightness, 1 contrast, 2 saturation; default 0,1,2).
    #[arg(long, value_name = "I,J,K", value_delimiter = ',')]
    pub order: Option<Vec<usize>>,
    /// lighting: the three alphas (the reference draws them from N(0, 0.1)).
    #[arg(long, value_name = "A,B,C", value_delimiter = ',', allow_hyphen_values = true)]
    pub alphas: Option<Vec<f32>>,
    /// Input image (any format the image crate reads; converted to RGB).
    pub input: PathBuf,
    /// Output PNG (lighting: a JSON file of its alphas and the RGB offset it adds to the [0, 1]
    /// floats, since it changes no uint8 pixel).
    pub output: PathBuf,
}

/// Which images the preview and the augmentation benchmark use, and how they are augmented
/// (RandAugment(2, 28) unless told otherwise).
#[derive(Debug, Clone, Args)]
#[command(mut_arg("n", |a| a.default_value("2")), mut_arg("m", |a| a.default_value("28")))]
pub struct Source {
    /// Dataset (as `resmooth train --dataset`), or `synthetic` for generated 32x32 images.
    #[arg(long, default_value = "synthetic")]
    pub dataset: String,
    /// Folder holding the dataset files.
    #[arg(long, default_value = "data")]
    pub dataroot: PathBuf,
    /// imagefolder and tiny: resize every image to S x S at load time (as `resmooth train --image-size`).
    #[arg(long, value_name = "S")]
    pub image_size: Option<usize>,
    /// Seed of the views.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub aug: AugFlags,
}

impl Source {
    /// The dataset named by `--dataset`; `None` for `synthetic`.
    pub fn dataset(&self) -> Result<Option<DatasetName>, resmooth::config::ConfigError> {
        if self.dataset == "synthetic" {
            Ok(None)
        } else {
            self.dataset.parse().map(Some)
        }
    }
}

/// Flags of `resmooth augment preview`.
#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// Number of training images shown.
    #[arg(long, default_value_t = 32)]
    pub count: usize,
    /// Output PNG.
    #[arg(long, default_value = "grid.png")]
    pub out: PathBuf,
    #[command(flatten)]
    pub source: Source,
}

/// Flags of `resmooth augment views`.
#[derive(Debug, Args)]
pub struct ViewsArgs {
    /// Training sample index, as the dataset is read (before any shuffle); repeat the flag or
    /// separate indices with commas.
    #[arg(long = "index", required = true, value_delimiter = ',')]
    pub indices: Vec<usize>,
    /// Epoch whose views are made (`resmooth train` counts from 1).
    #[arg(long, default_value_t = 1)]
    pub epoch: u64,
    /// Output folder: INDEX_original.png and INDEX_augmented.png for each index.
    #[arg(long, default_value = "views")]
    pub out: PathBuf,
    #[command(flatten)]
    pub source: Source,
}

/// `resmooth bench ...`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Original + augmented view pairs per second, made in parallel on `--threads` threads into
    /// the uint8 batch buffer, as training makes them.
    Augment(BenchAugmentArgs),
    /// The input pipeline's training images per second and the process's peak resident memory:
    /// an ImageFolder / ImageNet-layout folder (`--dataset imagenet` or `imagefolder`) streamed
    /// with the reference's ImageNet training view; an in-memory dataset (cifar10, cifar100, svhn,
    /// tiny, synthetic) with both views of `--aug`.
    Data(BenchDataArgs),
    /// Training images per second of the model step alone and of the whole loop (data pipeline,
    /// upload, scorer, step, optimizer, then an evaluation and a checkpoint), with the share of
    /// time in each phase.
    Train(BenchTrainArgs),
}

/// Flags of `resmooth bench augment`.
#[derive(Debug, Args)]
pub struct BenchAugmentArgs {
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Seconds to measure (after one warm-up batch).
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Pairs per batch.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    #[command(flatten)]
    pub source: Source,
}

/// Flags of `resmooth bench data`.
#[derive(Debug, Args)]
pub struct BenchDataArgs {
    /// Worker threads that read, decode and augment.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Seconds to measure (after one warm-up batch).
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Samples per batch.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Streamed folders: decode JPEGs at a reduced DCT scale when the crop is shrunk anyway
    /// (faster; its pixels are not Pillow's).
    #[arg(long)]
    pub reduced_dct: bool,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub source: Source,
}

/// Flags of `resmooth bench train`.
#[derive(Debug, Clone, Args)]
#[command(mut_arg("n", |a| a.default_value("2")), mut_arg("m", |a| a.default_value("28")))]
pub struct BenchTrainArgs {
    /// Use generated 32x32 images instead of a dataset (the pipeline still augments them).
    #[arg(long)]
    pub synthetic: bool,
    /// Mini-batch size.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Timed steps of each measurement (after --warmup untimed ones).
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// Untimed steps before each measurement (cuDNN autotuning, allocator warm-up).
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// Fraction of original views per batch (0 = all augmented, as the ReSmooth CIFAR-10 run).
    #[arg(long, default_value_t = 1.0)]
    pub prob: f64,
    /// Also run a scorer model (fp32) on the augmented views, a GMM posterior and SampleSmooth, as
    /// ReSmooth retraining does.
    #[arg(long)]
    pub gmm: bool,
    /// How SGD updates the parameters: fused (one `_fused_sgd_` call for all parameters, as
    /// training does) or per-parameter (five tensor ops per parameter tensor, the reference
    /// implementation), to compare the two.
    #[arg(long, default_value = "fused", value_parser = super::choice::<SgdKernel>())]
    pub optimizer: SgdKernel,
    /// Test images evaluated at the end of the loop: with --synthetic, that many generated ones
    /// (default 10000); with a dataset, a class-stratified subset of its test split (default: all).
    #[arg(long)]
    pub eval_images: Option<usize>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelFlags,
    #[command(flatten)]
    pub compute: ComputeFlags,
    #[command(flatten)]
    pub data: DataFlags,
    #[command(flatten)]
    pub aug: AugFlags,
    #[command(flatten)]
    pub device: DeviceFlags,
}

/// Flags of `resmooth data`.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    #[command(subcommand)]
    pub action: DataAction,
}

/// The `resmooth data` actions.
#[derive(Debug, Clone, Subcommand)]
pub enum DataAction {
    /// Download (when missing), verify and extract a dataset (cifar10, cifar100, svhn or tiny) into --dataroot.
    Fetch {
        /// cifar10, cifar100, svhn or tiny.
        #[arg(value_parser = super::choice::<DatasetName>())]
        name: DatasetName,
        /// Folder holding the dataset files.
        #[arg(long, default_value = "data")]
        dataroot: PathBuf,
        /// Download from this URL prefix instead of the official host (serving the official file names).
        #[arg(long, env = resmooth::data::MIRROR_ENV)]
        mirror: Option<String>,
        /// SVHN: also fetch the extra split (extra_32x32.mat, 1.3 GB).
        #[arg(long)]
        extra: bool,
    },
    /// Check a dataset in --dataroot (formats and record counts, MD5 of an archive) without the network.
    Check {
        /// cifar10, cifar100, svhn or tiny.
        #[arg(value_parser = super::choice::<DatasetName>())]
        name: DatasetName,
        /// Folder holding the dataset files.
        #[arg(long, default_value = "data")]
        dataroot: PathBuf,
        /// SVHN: also check the extra split.
        #[arg(long)]
        extra: bool,
    },
    /// Print counts per split and per class, the image size and the normalisation of a dataset.
    Info {
        /// A dataset name (read from --dataroot), or a folder: an ImageFolder tree or a dataroot
        /// holding official files.
        target: String,
        /// Folder holding the dataset files (for a dataset name).
        #[arg(long, default_value = "data")]
        dataroot: PathBuf,
        /// imagefolder and tiny: describe the images resized to S x S (as `resmooth train --image-size`).
        #[arg(long, value_name = "S")]
        image_size: Option<usize>,
    },
}
