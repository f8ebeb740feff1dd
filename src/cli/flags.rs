//! Flag groups shared by the commands (`#[command(flatten)]`), with the reference's names and
//! defaults; a command with other defaults changes them where it flattens the group. The name of
//! each flag that sets a field of the configuration comes from the library's flag table
//! (`resmooth::config::flags`), which the reproduce command line is written from.

use clap::{ArgAction, Args};
use resmooth::config::flags as flag;
use resmooth::config::{
    AugConfig, AugName, CudaGraphs, DataConfig, DataInMemory, DatasetName, FairComparison, LossName, MemoryFormat,
    ModelConfig, ModelSpec, OnBadImage, Precision, SaveFormat, Weighting, DEFAULT_DIST_TIMEOUT,
};
use std::path::PathBuf;

/// A value of an argparse `type=bool` flag of the reference: Python's `bool(str)`, true for any
/// non-empty string (`--cosine False` is true there too).
fn python_bool(value: &str) -> Result<bool, String> {
    Ok(!value.is_empty())
}

/// Three comma-separated numbers, one per channel (R,G,B).
fn per_channel(value: &str) -> Result<[f32; 3], String> {
    let parts: Vec<&str> = value.split(',').map(str::trim).collect();
    let numbers: Result<Vec<f32>, _> = parts.iter().map(|p| p.parse::<f32>()).collect();
    match numbers {
        Ok(v) if v.len() == 3 => Ok([v[0], v[1], v[2]]),
        _ => Err(format!("'{value}' is not three comma-separated numbers (R,G,B), e.g. 0.5,0.5,0.5")),
    }
}

/// Where the images come from.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Data")]
pub struct DataFlags {
    /// Dataset: cifar10, cifar100, svhn, tiny (Tiny-ImageNet-200 in DATAROOT/tiny-imagenet-200, downloaded
    /// if missing), imagefolder (DIR/train/<class>/*, DIR/test/<class>/*, JPEG or PNG), imagenet
    /// (DIR/imagenet-pytorch/{train,val}/<class>/* or DIR/{train,val}/<class>/*, the reference's
    /// ImageNet transforms) or demo (generated, no download).
    #[arg(long = flag::DATASET.long(), default_value = "cifar10", value_parser = super::choice::<DatasetName>())]
    pub dataset: DatasetName,
    /// Folder holding the dataset files.
    #[arg(long = flag::DATAROOT.long(), default_value = "data")]
    pub dataroot: PathBuf,
    /// Download missing datasets from this URL prefix (serving the official file names) instead of the official hosts.
    #[arg(long, env = resmooth::data::MIRROR_ENV)]
    pub mirror: Option<String>,
    /// Use a seeded, class-stratified subset of this many training images.
    #[arg(long = flag::TRAIN_SIZE.long())]
    pub train_size: Option<usize>,
    /// imagefolder and tiny: resize every image once at load time to S x S (torchvision's
    /// Resize(S) + CenterCrop(S): the shorter side to S with Pillow's antialiased bilinear
    /// resampling, then the centre square). Default: the images' own size, when they all agree.
    /// imagenet: the side of the views (RandomResizedCrop(S); test Resize(S·256/224) +
    /// CenterCrop(S)); default the reference's 224.
    #[arg(long = flag::IMAGE_SIZE.long(), value_name = "S")]
    pub image_size: Option<usize>,
    /// Normalisation mean per channel, R,G,B on [0, 1] (default: the dataset's: the reference's for
    /// cifar10/cifar100/svhn, tiny and imagenet, an imagefolder's own training images').
    #[arg(long = flag::MEAN.long(), value_name = "R,G,B", value_parser = per_channel, allow_hyphen_values = true)]
    pub mean: Option<[f32; 3]>,
    /// Normalisation standard deviation per channel, R,G,B (default: the dataset's, as --mean).
    #[arg(long = flag::STD.long(), value_name = "R,G,B", value_parser = per_channel)]
    pub std: Option<[f32; 3]>,
    /// imagefolder and imagenet: yes decodes the images once into memory, no streams them from
    /// disk for every batch (memory bounded whatever the dataset's size), auto holds them in
    /// memory when they take at most half the memory available and says which it chose. The
    /// batches are the same either way.
    #[arg(long = flag::DATA_IN_MEMORY.long(), default_value = "auto", value_parser = super::choice::<DataInMemory>())]
    pub data_in_memory: DataInMemory,
    /// imagenet, streamed: decode JPEGs at a reduced DCT scale (1/2, 1/4, 1/8) when the crop is
    /// shrunk at least that much anyway; faster, but its pixels are not Pillow's.
    #[arg(long = flag::REDUCED_DCT.long())]
    pub reduced_dct: bool,
    /// imagefolder and imagenet: an image file that cannot be read stops the run with its name
    /// (fail), or is left out of its batches and reported by name (skip; one process only).
    #[arg(long = flag::ON_BAD_IMAGE.long(), default_value = "fail", value_parser = super::choice::<OnBadImage>())]
    pub on_bad_image: OnBadImage,
}

impl DataFlags {
    /// The data configuration of these flags, with `test_size` for commands that evaluate.
    pub fn config(&self, test_size: Option<usize>) -> DataConfig {
        DataConfig {
            dataset: self.dataset,
            dataroot: self.dataroot.clone(),
            mirror: self.mirror.clone(),
            train_size: self.train_size,
            test_size,
            image_size: self.image_size,
            mean: self.mean,
            std: self.std,
            data_in_memory: self.data_in_memory,
            reduced_dct: self.reduced_dct,
            on_bad_image: self.on_bad_image,
        }
    }
}

/// How the augmented view is made.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Augmentation")]
pub struct AugFlags {
    /// Augmentation of the augmented view: ra, aa, rotate, jigsaw, default, or the reference's
    /// others: severe (SevereAugment(N, M), M in 0..=10), vertical (flip after the crop), blur
    /// (Gaussian, sigma in 0.6..2) and sobel (edge magnitude).
    #[arg(long = flag::AUG.long(), default_value = "ra", value_parser = super::choice::<AugName>())]
    pub aug: AugName,
    /// RandAugment: number of ops per image.
    #[arg(long = flag::N.long(), default_value_t = 3)]
    pub n: usize,
    /// RandAugment: magnitude, 0..=30.
    #[arg(long = flag::M.long(), default_value_t = 5)]
    pub m: usize,
    /// Cutout square side in pixels (0 = off), applied to the augmented view.
    #[arg(long = flag::CUTOUT.long(), default_value_t = 0)]
    pub cutout: usize,
    /// Zero padding of the random crop of both views, in pixels (default: an eighth of the image
    /// side, the reference's 4 at 32 px and 8 at 64 px).
    #[arg(long = flag::CROP_PADDING.long(), value_name = "PIXELS")]
    pub crop_padding: Option<usize>,
}

impl AugFlags {
    /// The augmentation configuration of these flags, with `prob` original views per batch.
    pub fn config(&self, prob: f64) -> AugConfig {
        AugConfig { aug: self.aug, n: self.n, m: self.m, cutout: self.cutout, prob, crop_padding: self.crop_padding }
    }
}

/// How the model computes.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Model")]
pub struct ComputeFlags {
    /// Compute precision of training and evaluation: fp32 (the default, as the reference; cuDNN's
    /// default TF32 convolutions on a GPU) or bf16 (mixed: fp32 weights, bf16 convolutions). The
    /// GMM's scorer always runs in fp32.
    #[arg(long = flag::PRECISION.long(), default_value = "fp32", value_parser = super::choice::<Precision>())]
    pub precision: Precision,
    /// Memory layout of activations: nchw or channels_last.
    #[arg(long = flag::MEMORY_FORMAT.long(), default_value = "nchw", value_parser = super::choice::<MemoryFormat>())]
    pub memory_format: MemoryFormat,
    /// Under torchrun (several processes): BatchNorm normalises each training batch with the
    /// statistics of the whole global batch, as torch.nn.SyncBatchNorm (one all-gather per layer
    /// forward, one all-reduce backward). Off by default, as DistributedDataParallel: each
    /// process normalises its own --batch-size / N images. No effect in one process.
    #[arg(long = flag::SYNC_BN.long())]
    pub sync_bn: bool,
}

impl ComputeFlags {
    /// The configuration of `model` computing as these flags say.
    pub fn config(&self, model: ModelSpec) -> ModelConfig {
        ModelConfig { model, precision: self.precision, memory_format: self.memory_format, sync_bn: self.sync_bn }
    }
}

/// The device and the data workers.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Device")]
pub struct DeviceFlags {
    /// CUDA device index; without a GPU the CPU is used.
    #[arg(long = flag::GPU.long(), default_value_t = 0)]
    pub gpu: usize,
    /// Worker threads of the data pipeline (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Capture the training step as a CUDA graph after a few eager steps and replay it (one
    /// launch a step instead of hundreds): off, auto (on a GPU where the step allows it,
    /// checked against an eager step on the same batch; eager otherwise, saying why) or on (a
    /// graph or an error). Not under --fair-comparison, whose shapes change each step. The
    /// metrics record the mode that ran (step_mode).
    #[arg(long = flag::CUDA_GRAPHS.long(), default_value = "off", value_parser = super::choice::<CudaGraphs>())]
    pub cuda_graphs: CudaGraphs,
    /// Under torchrun (several processes): seconds a process waits for the others, to join and
    /// in each collective, before it stops with an error (a rank that died or hangs).
    #[arg(long = flag::DIST_TIMEOUT.long(), value_name = "SECONDS", default_value_t = DEFAULT_DIST_TIMEOUT)]
    pub dist_timeout: u64,
}

/// SGD and its schedule.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Optimisation")]
pub struct OptimFlags {
    /// Number of epochs.
    #[arg(long = flag::EPOCHS.long(), default_value_t = 200)]
    pub epochs: usize,
    /// Base learning rate.
    #[arg(long = flag::LR.long(), visible_alias = "learning-rate", default_value_t = 0.1)]
    pub lr: f64,
    /// Cosine annealing of the learning rate (after warmup). Parsed as the reference's argparse
    /// `type=bool`: any non-empty value, even `False`, means true; only an empty value ('') turns it off.
    #[arg(long = flag::COSINE.long(), action = ArgAction::Set, value_parser = python_bool, default_value = "True")]
    pub cosine: bool,
    /// Linear warmup to lr x --warm-multiplier over --warm-epoch epochs. Parsed as the reference's
    /// argparse `type=bool`: any non-empty value means true; only '' turns it off.
    #[arg(long = flag::WARM.long(), action = ArgAction::Set, value_parser = python_bool, default_value = "True")]
    pub warm: bool,
    /// Learning-rate multiplier reached at the end of warmup: a whole number, as the reference's
    /// `type=int` (1 ramps from 0, as its GradualWarmupScheduler does).
    #[arg(long = flag::WARM_MULTIPLIER.long(), default_value_t = 2)]
    pub warm_multiplier: u32,
    /// Warmup length in epochs.
    #[arg(long = flag::WARM_EPOCH.long(), default_value_t = 5)]
    pub warm_epoch: usize,
    /// Mini-batch size (the last partial training batch is dropped).
    #[arg(long = flag::BATCH_SIZE.long(), default_value_t = 256)]
    pub batch_size: usize,
    /// SGD weight decay, applied to every parameter.
    #[arg(long = flag::WEIGHT_DECAY.long(), visible_alias = "wd", default_value_t = 5e-4)]
    pub weight_decay: f64,
    /// Nesterov momentum. Parsed as the reference's argparse `type=bool`: any non-empty value
    /// means true; only '' gives plain momentum.
    #[arg(long = flag::NESTEROV.long(), action = ArgAction::Set, value_parser = python_bool, default_value = "True")]
    pub nesterov: bool,
}

/// The ReSmooth method: batches of original and augmented views, the GMM, the criteria.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Method")]
pub struct MethodFlags {
    /// Fraction of each batch taken from original views (the rest are augmented views).
    #[arg(long = flag::PROB.long(), default_value_t = 0.2)]
    pub prob: f64,
    /// Fit a Gaussian mixture on the pretrained model's losses and smooth OOD samples more.
    #[arg(long = flag::GMM.long())]
    pub gmm: bool,
    /// How p_ID turns into smoothing: regular, reverse, random or uniform.
    #[arg(long = flag::WEIGHTING.long(), default_value = "regular", value_parser = super::choice::<Weighting>())]
    pub weighting: Weighting,
    /// Loss: LabelSmooth, SampleSmooth or Distillation.
    #[arg(long = flag::LOSS.long(), default_value = "LabelSmooth", value_parser = super::choice::<LossName>())]
    pub loss: LossName,
    /// Label smoothing of original views.
    #[arg(long = flag::SMOOTH_ORG.long(), default_value_t = 0.0)]
    pub smooth_org: f64,
    /// Label smoothing of augmented views (its smoothing term scaled by 1 - p_ID under SampleSmooth).
    #[arg(long = flag::SMOOTH_AUG.long(), default_value_t = 0.0)]
    pub smooth_aug: f64,
    /// Deviation from the reference: SampleSmooth as a normalised smoothed label per sample,
    /// confidence 1 - (1 - p_ID) * eps. The reference (the default) keeps confidence 1 - eps and
    /// scales only the smoothing term by 1 - p_ID.
    #[arg(long = flag::NORMALISED_SAMPLE_SMOOTH.long())]
    pub normalised_sample_smooth: bool,
    /// Distillation: number of teacher classes distilled (-1 = all).
    #[arg(long = flag::K.long(), default_value_t = -1, allow_negative_numbers = true)]
    pub k: i64,
    /// Distillation: weight of the distillation term.
    #[arg(long = flag::LAMDA.long(), default_value_t = 0.5)]
    pub lamda: f64,
    /// Distillation: softmax temperature.
    #[arg(long = flag::T.long(), default_value_t = 5.0)]
    pub t: f64,
    /// Train on augmented views only, keeping DAOOD, DAID or mix samples (disable = normal training).
    #[arg(long = flag::FAIR_COMPARISON.long(), default_value = "disable", value_parser = super::choice::<FairComparison>())]
    pub fair_comparison: FairComparison,
    /// Pretrained baseline weights for --gmm and Distillation (default: the tag's baseline, its best epoch).
    #[arg(long = flag::PRETRAINED.long())]
    pub pretrained: Option<PathBuf>,
}

/// Where a run writes and how this session of it runs.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Run")]
pub struct RunFlags {
    /// Run name: outputs go to <logdir>/<tag>/ (default: cache-<unix time>).
    #[arg(long = flag::TAG.long(), default_value = "")]
    pub tag: String,
    /// Folder under which each run writes <tag>/.
    #[arg(long = flag::LOGDIR.long(), default_value = "logs")]
    pub logdir: PathBuf,
    /// Weights file to write (default <logdir>/<tag>/model.safetensors); with --only-eval, the one to
    /// evaluate. As in the reference, an existing file is read on start when the run folder holds
    /// no checkpoint of its own: a checkpoint (a dict with 'model' or 'state_dict', e.g. the
    /// reference's model.pth) restores the weights, SGD momentum and epoch, or is only evaluated
    /// when its epoch is not below --epochs; a bare state_dict gives the starting weights.
    #[arg(long = flag::SAVE.long())]
    pub save: Option<PathBuf>,
    /// Format of the weights files: safetensors (the state_dict) or pth (the reference's
    /// torch.save checkpoint {'epoch', 'log', 'optimizer', 'model'}: model.pth, best.pth).
    /// Default: pth when --save ends in .pth or .pt, safetensors otherwise.
    #[arg(long = flag::SAVE_FORMAT.long(), value_parser = super::choice::<SaveFormat>())]
    pub save_format: Option<SaveFormat>,
    /// Seed of every random draw (shuffling, crops, augmentations, initialisation).
    #[arg(long = flag::SEED.long(), default_value_t = 0)]
    pub seed: u64,
    /// Start from scratch even if the run's checkpoint exists (it is replaced).
    #[arg(long)]
    pub restart: bool,
    /// Stop this session after epoch N (the run stays resumable: rerun the command to go on).
    #[arg(long)]
    pub stop_after: Option<usize>,
    /// On a GPU, compute the same numbers on every run: only deterministic algorithms (cuDNN's
    /// and libtorch's; an op without one stops the run, naming itself), no cuDNN autotuning, a
    /// fixed cuBLAS workspace. Slower. CPU runs are reproducible without it.
    #[arg(long = flag::DETERMINISTIC.long())]
    pub deterministic: bool,
}

/// What a run evaluates on.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Evaluation")]
pub struct EvalFlags {
    /// Evaluate on a seeded, class-stratified subset of this many test images.
    #[arg(long = flag::TEST_SIZE.long())]
    pub test_size: Option<usize>,
    /// Only evaluate the weights given by --save (or the run's model.safetensors) on the test set.
    #[arg(long = flag::ONLY_EVAL.long())]
    pub only_eval: bool,
    /// Also evaluate, every epoch, on the ImageFolder trees --daood and --daid (augmented views
    /// judged OOD and ID, as `resmooth detect --export DIR` writes them).
    #[arg(long = flag::EVAL_DA.long())]
    pub eval_da: bool,
    /// With --evalDA: the tree of OOD augmented views (<class>/*.png), relative to the working directory as in the reference.
    #[arg(long = flag::DAOOD.long(), default_value = "DAOOD")]
    pub daood: PathBuf,
    /// With --evalDA: the tree of ID augmented views.
    #[arg(long = flag::DAID.long(), default_value = "DAID")]
    pub daid: PathBuf,
}

/// The model flag of commands that load or train one.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Model")]
pub struct ModelFlags {
    /// Model: one of the reference's (resnet18, resnet50, resnet200, wresnet40_2, wresnet28_10,
    /// shakeshake26_2x32d, shakeshake26_2x64d, shakeshake26_2x96d, shakeshake26_2x112d,
    /// shakeshake26_2x96d_next), or torchscript:PATH, a module saved by
    /// torch.jit.save(torch.jit.script(model), PATH) that maps normalised NCHW images to logits
    /// (trained in fp32; its BatchNorm statistics are saved with the weights).
    #[arg(long = flag::MODEL.long(), default_value = "resnet18", value_parser = |s: &str| s.parse::<ModelSpec>())]
    pub model: ModelSpec,
}
