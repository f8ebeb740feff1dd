//! Command-line interface: `resmooth train` with the reference's flags, and the other subcommands.

use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// ReSmooth: train with strong augmentation, detect its out-of-distribution samples with a
/// Gaussian mixture on losses, retrain with sample-wise label smoothing.
#[derive(Debug, Parser)]
#[command(name = "resmooth", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per run; boxing TrainArgs would buy nothing
pub enum Command {
    /// Train (or with --only-eval evaluate) a model; the flags are those of the reference train.py.
    Train(TrainArgs),
    /// Apply one augmentation op to a PNG, or preview augmented views as a PNG grid.
    Augment(crate::augment::tools::AugmentArgs),
    /// Benchmarks (`bench augment`: augmentation pairs per second).
    Bench(crate::augment::tools::BenchArgs),
    /// Fetch, check or describe a dataset (cifar10, cifar100, svhn) without training.
    Data(crate::data::DataArgs),
    /// Score original and augmented views with a pretrained model, fit the GMM, and report which views (and ops) are OOD.
    Detect(crate::workflow::DetectArgs),
    /// The whole method: train the baseline if missing, detect, retrain with these flags, compare the runs.
    Run(TrainArgs),
}

/// Flags of `resmooth train`, named and defaulted as the reference's.
#[derive(Debug, Clone, Args, Serialize, Deserialize, PartialEq)]
pub struct TrainArgs {
    /// Dataset: cifar10, cifar100, svhn or imagefolder (DIR/train/<class>/*, DIR/test/<class>/*).
    #[arg(long, default_value = "cifar10")]
    pub dataset: String,
    /// Folder holding the dataset files.
    #[arg(long, default_value = "data")]
    pub dataroot: PathBuf,
    /// Weights file to write (default <logdir>/<tag>/model.safetensors); with --only-eval, the one to evaluate.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Run name: outputs go to <logdir>/<tag>/ (default: cache-<unix time>).
    #[arg(long, default_value = "")]
    pub tag: String,
    /// Pretrained baseline weights for --gmm and Distillation (default: the tag's baseline).
    #[arg(long)]
    pub pretrained: Option<PathBuf>,
    /// CUDA device index; without a GPU the CPU is used.
    #[arg(long, default_value_t = 0)]
    pub gpu: usize,

    /// Augmentation of the augmented view: ra, aa, rotate, jigsaw or default.
    #[arg(long, default_value = "ra")]
    pub aug: String,
    /// RandAugment: number of ops per image.
    #[arg(long = "N", default_value_t = 3)]
    pub n: usize,
    /// RandAugment: magnitude, 0..=30.
    #[arg(long = "M", default_value_t = 5)]
    pub m: usize,
    /// Cutout square side in pixels (0 = off), applied to the augmented view.
    #[arg(long, default_value_t = 0)]
    pub cutout: usize,
    /// Fraction of each batch taken from original views (the rest are augmented views).
    #[arg(long, default_value_t = 0.2)]
    pub prob: f64,

    /// Model: resnet18 or wresnet28_10.
    #[arg(long, default_value = "resnet18")]
    pub model: String,
    /// Number of epochs.
    #[arg(long, default_value_t = 200)]
    pub epochs: usize,
    /// Base learning rate.
    #[arg(long, visible_alias = "learning-rate", default_value_t = 0.1)]
    pub lr: f64,
    /// Cosine annealing of the learning rate (after warmup). Parsed as the reference's argparse
    /// `type=bool`: any non-empty value, even `False`, means true; only an empty value ('') turns it off.
    #[arg(long, action = clap::ArgAction::Set, value_parser = python_bool, default_value = "True")]
    #[serde(default = "yes")]
    pub cosine: bool,
    /// Linear warmup to lr x --warm-multiplier over --warm-epoch epochs. Parsed as the reference's
    /// argparse `type=bool`: any non-empty value means true; only '' turns it off.
    #[arg(long, action = clap::ArgAction::Set, value_parser = python_bool, default_value = "True")]
    #[serde(default = "yes")]
    pub warm: bool,
    /// Learning-rate multiplier reached at the end of warmup.
    #[arg(long, default_value_t = 2.0)]
    pub warm_multiplier: f64,
    /// Warmup length in epochs.
    #[arg(long, default_value_t = 5)]
    pub warm_epoch: usize,
    /// Mini-batch size (the last partial training batch is dropped).
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// SGD weight decay, applied to every parameter.
    #[arg(long, visible_alias = "wd", default_value_t = 5e-4)]
    pub weight_decay: f64,
    /// Nesterov momentum. Parsed as the reference's argparse `type=bool`: any non-empty value
    /// means true; only '' gives plain momentum.
    #[arg(long, action = clap::ArgAction::Set, value_parser = python_bool, default_value = "True")]
    #[serde(default = "yes")]
    pub nesterov: bool,
    /// Only evaluate the weights given by --save (or the run's model.safetensors) on the test set.
    #[arg(long)]
    pub only_eval: bool,
    /// Also evaluate, every epoch, on the ImageFolder trees --daood and --daid (augmented views
    /// judged OOD and ID, as `resmooth detect --export DIR` writes them).
    #[arg(long = "evalDA")]
    #[serde(default)]
    pub eval_da: bool,
    /// With --evalDA: the tree of OOD augmented views (<class>/*.png), relative to the working directory as in the reference.
    #[arg(long, default_value = "DAOOD")]
    #[serde(default = "daood")]
    pub daood: PathBuf,
    /// With --evalDA: the tree of ID augmented views.
    #[arg(long, default_value = "DAID")]
    #[serde(default = "daid")]
    pub daid: PathBuf,
    /// Train on augmented views only, keeping DAOOD, DAID or mix samples (disable = normal training).
    #[arg(long, default_value = "disable")]
    pub fair_comparison: String,

    /// Fit a Gaussian mixture on the pretrained model's losses and smooth OOD samples more.
    #[arg(long)]
    pub gmm: bool,
    /// How p_ID turns into smoothing: regular, reverse, random or uniform.
    #[arg(long, default_value = "regular")]
    pub weighting: String,
    /// Loss: LabelSmooth, SampleSmooth or Distillation.
    #[arg(long, default_value = "LabelSmooth")]
    pub loss: String,
    /// Label smoothing of original views.
    #[arg(long, default_value_t = 0.0)]
    pub smooth_org: f64,
    /// Label smoothing of augmented views (scaled by 1 - p_ID under SampleSmooth).
    #[arg(long, default_value_t = 0.0)]
    pub smooth_aug: f64,
    /// Deviation from the reference: SampleSmooth as a normalised smoothed label per sample,
    /// confidence 1 - (1 - p_ID) * eps. The reference (the default) keeps confidence 1 - eps and
    /// scales only the smoothing term by 1 - p_ID.
    #[arg(long)]
    #[serde(default)]
    pub normalised_sample_smooth: bool,
    /// Distillation: number of teacher classes distilled (-1 = all).
    #[arg(long = "K", default_value_t = -1, allow_negative_numbers = true)]
    pub k: i64,
    /// Distillation: weight of the distillation term.
    #[arg(long, default_value_t = 0.5)]
    pub lamda: f64,
    /// Distillation: softmax temperature.
    #[arg(long = "T", default_value_t = 5.0)]
    pub t: f64,

    /// Seed of every random draw (shuffling, crops, augmentations, initialisation).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Train on a seeded, class-stratified subset of this many training images.
    #[arg(long)]
    pub train_size: Option<usize>,
    /// Evaluate on a seeded, class-stratified subset of this many test images.
    #[arg(long)]
    pub test_size: Option<usize>,
    /// Folder under which each run writes <tag>/.
    #[arg(long, default_value = "logs")]
    pub logdir: PathBuf,
    /// Start from scratch even if the run's checkpoint exists (it is replaced).
    #[arg(long)]
    pub restart: bool,
    /// Worker threads of the data pipeline (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Download missing datasets from this URL prefix (serving the official file names) instead of the official hosts.
    #[arg(long, env = "RESMOOTH_MIRROR")]
    pub mirror: Option<String>,
    /// Stop this session after epoch N (the run stays resumable: rerun the command to go on).
    #[arg(long)]
    pub stop_after: Option<usize>,
    /// Compute precision of training and evaluation: fp32 (the default, as the reference; cuDNN's
    /// default TF32 convolutions on a GPU) or bf16 (mixed: fp32 weights, bf16 convolutions). The
    /// GMM's scorer always runs in fp32.
    #[arg(long)]
    pub precision: Option<String>,
    /// Memory layout of activations: nchw or channels_last.
    #[arg(long, default_value = "nchw")]
    pub memory_format: String,
}

/// A value of an argparse `type=bool` flag of the reference: Python's `bool(str)`, true for any
/// non-empty string (`--cosine False` is true there too).
fn python_bool(value: &str) -> Result<bool, String> {
    Ok(!value.is_empty())
}

fn yes() -> bool {
    true
}

fn daood() -> PathBuf {
    PathBuf::from("DAOOD")
}

fn daid() -> PathBuf {
    PathBuf::from("DAID")
}

/// Names accepted by each flag with a fixed set of values.
pub const LOSSES: [&str; 3] = ["LabelSmooth", "SampleSmooth", "Distillation"];
pub const WEIGHTINGS: [&str; 4] = ["regular", "reverse", "random", "uniform"];
pub const FAIR_COMPARISONS: [&str; 4] = ["mix", "DAOOD", "DAID", "disable"];

fn one_of(flag: &str, value: &str, allowed: &[&str]) -> Result<(), String> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(format!("{flag} '{value}' is not known; expected one of {}", allowed.join(", ")))
    }
}

impl TrainArgs {
    /// The reference defaults of every flag.
    pub fn defaults() -> Self {
        match Cli::try_parse_from(["resmooth", "train"]).expect("defaults parse").command {
            Command::Train(t) => t,
            _ => unreachable!("parsed a train command"),
        }
    }

    /// Checks every value; the message names the flag and the accepted range.
    pub fn validate(&self) -> Result<(), String> {
        one_of("--dataset", &self.dataset, &crate::data::DATASETS)?;
        one_of("--model", &self.model, &crate::model::MODELS)?;
        one_of("--aug", &self.aug, &crate::augment::AUGMENTATIONS)?;
        one_of("--loss", &self.loss, &LOSSES)?;
        one_of("--weighting", &self.weighting, &WEIGHTINGS)?;
        one_of("--fair-comparison", &self.fair_comparison, &FAIR_COMPARISONS)?;
        if !(0.0..=1.0).contains(&self.prob) {
            return Err(format!("--prob {} is outside [0, 1]", self.prob));
        }
        for (flag, v) in [("--smooth-aug", self.smooth_aug), ("--smooth-org", self.smooth_org)] {
            if !(0.0..1.0).contains(&v) {
                return Err(format!("{flag} {v} is outside [0, 1)"));
            }
        }
        if self.m > 30 {
            return Err(format!("--M {} is outside 0..=30", self.m));
        }
        if self.epochs == 0 {
            return Err("--epochs must be at least 1".into());
        }
        if self.batch_size == 0 {
            return Err("--batch-size must be at least 1".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(format!("--lr {} must be a positive number", self.lr));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(format!("--weight-decay {} must be a non-negative number", self.weight_decay));
        }
        if !(self.warm_multiplier >= 1.0 && self.warm_multiplier.is_finite()) {
            return Err(format!("--warm-multiplier {} must be at least 1", self.warm_multiplier));
        }
        if self.k == 0 || self.k < -1 {
            return Err(format!("--K {} must be -1 (all classes) or a positive count", self.k));
        }
        if !(self.t > 0.0 && self.t.is_finite()) {
            return Err(format!("--T {} must be positive", self.t));
        }
        if let Some(p) = &self.precision {
            one_of("--precision", p, &crate::device::PRECISIONS)?;
        }
        one_of("--memory-format", &self.memory_format, &crate::pipeline::MEMORY_FORMATS)?;
        if self.train_size == Some(0) || self.test_size == Some(0) {
            return Err("--train-size and --test-size must be at least 1".into());
        }
        if self.only_eval && self.save.is_none() && self.tag.is_empty() {
            return Err(
                "--only-eval needs the weights to evaluate: pass --save PATH (or the --tag of a finished run)".into()
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> TrainArgs {
        let mut full = vec!["resmooth", "train"];
        full.extend_from_slice(args);
        match Cli::try_parse_from(full).unwrap().command {
            Command::Train(t) => t,
            other => panic!("not a train command: {other:?}"),
        }
    }

    #[test]
    fn reference_command_line_parses() {
        let a = parse(&[
            "--dataset",
            "cifar10",
            "--prob",
            "0.0",
            "--M",
            "28",
            "--N",
            "2",
            "--smooth-aug",
            "0.4",
            "--gmm",
            "--loss",
            "SampleSmooth",
            "--gpu",
            "0",
            "--tag",
            "cifar10/res18/rs_ra",
            "--wd",
            "1e-4",
            "--K",
            "-1",
            "--T",
            "4",
        ]);
        assert_eq!((a.prob, a.m, a.n, a.smooth_aug, a.gmm), (0.0, 28, 2, 0.4, true));
        assert_eq!(
            (a.loss.as_str(), a.tag.as_str(), a.weight_decay, a.k, a.t),
            ("SampleSmooth", "cifar10/res18/rs_ra", 1e-4, -1, 4.0)
        );
        assert!(a.validate().is_ok());
    }

    #[test]
    fn reference_defaults() {
        let a = parse(&[]);
        assert_eq!(
            (a.dataset.as_str(), a.aug.as_str(), a.n, a.m, a.prob, a.model.as_str()),
            ("cifar10", "ra", 3, 5, 0.2, "resnet18")
        );
        assert_eq!(
            (a.epochs, a.lr, a.batch_size, a.weight_decay, a.warm_epoch, a.warm_multiplier),
            (200, 0.1, 256, 5e-4, 5, 2.0)
        );
        assert_eq!(
            (a.loss.as_str(), a.weighting.as_str(), a.fair_comparison.as_str()),
            ("LabelSmooth", "regular", "disable")
        );
    }

    #[test]
    fn reference_bool_flags_parse_as_python_bool() {
        let a = parse(&["--cosine", "True", "--warm", "False", "--nesterov", "0"]);
        assert!(a.cosine && a.warm && a.nesterov, "any non-empty value is true, as bool(str) in Python");
        let a = parse(&["--cosine", "", "--warm=", "--nesterov", ""]);
        assert!(!a.cosine && !a.warm && !a.nesterov);
        let a = parse(&[]);
        assert!(a.cosine && a.warm && a.nesterov);
        let a = parse(&["--evalDA", "--daood", "x/ood"]);
        assert!(a.eval_da);
        assert_eq!((a.daood.to_str(), a.daid.to_str()), (Some("x/ood"), Some("DAID")));
    }

    #[test]
    fn bad_values_are_named() {
        for (args, needle) in [
            (&["--prob", "1.5"][..], "--prob"),
            (&["--smooth-aug", "1.0"][..], "--smooth-aug"),
            (&["--M", "31"][..], "--M"),
            (&["--epochs", "0"][..], "--epochs"),
            (&["--model", "vgg"][..], "--model"),
            (&["--loss", "Focal"][..], "--loss"),
            (&["--dataset", "mnist"][..], "--dataset"),
            (&["--aug", "mixup"][..], "--aug"),
            (&["--weighting", "x"][..], "--weighting"),
        ] {
            let err = parse(args).validate().unwrap_err();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
        let mut full = vec!["resmooth", "train", "--N", "-1"];
        assert!(Cli::try_parse_from(full.drain(..)).is_err());
    }
}
