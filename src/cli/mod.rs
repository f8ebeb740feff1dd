//! The command line: clap only. Each command's flags (flag groups shared through
//! `#[command(flatten)]`), `--help` as documentation, and the conversion of the flags into the
//! library's configuration; nothing else in the crate knows clap.

mod flags;
mod prefixes;
mod tools;
mod train;

pub use prefixes::expand_long_prefixes;
pub use tools::{
    ApplyArgs, AugmentArgs, AugmentCommand, BenchArgs, BenchAugmentArgs, BenchCommand, BenchDataArgs, BenchTrainArgs,
    DataAction, DataArgs, DetectArgs, ExportArgs, PreviewArgs, ReportArgs, Source, ViewsArgs,
};
pub use train::TrainArgs;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, Parser, Subcommand};
use resmooth::config::flags::{Flag, FLAGS};
use resmooth::config::Choice;

/// ReSmooth: train with strong augmentation, detect its out-of-distribution samples with a
/// Gaussian mixture on losses, retrain with sample-wise label smoothing.
///
/// As with the reference's argparse, a long flag may be shortened to any unambiguous prefix
/// (see [`expand_long_prefixes`]) and a flag given twice takes its last value.
#[derive(Debug, Parser)]
#[command(name = "resmooth", version, about, long_about = None, args_override_self = true)]
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
    Augment(AugmentArgs),
    /// Benchmarks (`bench augment`: augmentation pairs per second; `bench data`: the input pipeline's
    /// images per second and peak memory; `bench train`: training throughput).
    Bench(BenchArgs),
    /// Fetch, check or describe a dataset (cifar10, cifar100, svhn) without training.
    Data(DataArgs),
    /// Score original and augmented views with a pretrained model, fit the GMM, and report which views (and ops) are OOD.
    Detect(DetectArgs),
    /// The whole method: train the baseline if missing, detect, retrain with these flags, compare the runs.
    /// With --dataset demo, the flags not given take the demo preset's values (a small model, 15 epochs, Table 1's method).
    Run(TrainArgs),
    /// Write an HTML page of run folders: configuration, curves, the detection pass and its OOD views, a comparison.
    Report(ReportArgs),
    /// Write a run's last finished epoch as the reference's torch.save checkpoint (model.pth).
    Export(ExportArgs),
}

/// The flags of the configuration (the library's flag table) given on the command line of the
/// subcommand `matches` holds, by their long names; a value from a default or the environment
/// is not given.
pub fn given_flags(matches: &ArgMatches) -> Vec<Flag> {
    let Some((name, sub)) = matches.subcommand() else { return Vec::new() };
    let root = Cli::command();
    let Some(cmd) = root.find_subcommand(name) else { return Vec::new() };
    cmd.get_arguments()
        .filter(|arg| sub.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine))
        .filter_map(|arg| arg.get_long())
        .filter_map(|long| FLAGS.iter().find(|f| f.long() == long).copied())
        .collect()
}

/// The value parser of a closed choice: clap lists its spellings in `--help` and names them
/// when a value is not one of them.
pub fn choice<T: Choice>() -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(T::all().iter().map(|v| v.name()))
        .map(|s| *T::all().iter().find(|v| v.name() == s).expect("clap accepted only listed values"))
}
