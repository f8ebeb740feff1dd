//! Running the method: what every command that runs a model shares (device, data, workers), the
//! evaluation, the resumable checkpoint, the epoch loop of `resmooth train` with its logs, the
//! benchmarks, and the reference's files: `--save` read on start (`warm_start`), weights written
//! as its torch.save checkpoint (`checkpoint`), and a run folder exported as one (`pth_files`).
//! The files of a run folder are
//! `run_folder`'s; the sequences built on these runs (`resmooth run`, the report of run folders)
//! are `workflow`'s.

pub mod bench;
pub mod checkpoint;
mod evaluate;
mod logged;
mod preflight;
pub mod pth_files;
mod ranks;
mod setup;
mod train;
pub mod warm_start;

pub use evaluate::{evaluate, evaluate_split, evaluate_weights, EvalReport};
pub use ranks::join;
pub use setup::{data_pool, load_dataset, open_splits, subsets, Setup};
pub use train::{augmenter, train, train_in, TrainObserver};

use crate::config::ConfigError;
use crate::data::DataError;
use crate::device::DeviceError;
use crate::dist::DistError;
use crate::io::{FileError, LockError};
use crate::method::{GmmError, MethodError, StepError};
use crate::model::ModelError;
use crate::report::ReportError;
use std::path::PathBuf;

/// What can stop a run, naming the file, flag or value at fault and what to do.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error(transparent)]
    Data(#[from] DataError),
    /// A subset flag asks for more images than a split has.
    #[error("{flag}")]
    Subset {
        flag: &'static str,
        #[source]
        source: DataError,
    },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Method(#[from] MethodError),
    /// `--cuda-graphs on` with no graph, or a graph that failed to replay.
    #[error(transparent)]
    Step(#[from] StepError),
    #[error(transparent)]
    Gmm(#[from] GmmError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error(transparent)]
    File(#[from] FileError),
    /// The data workers could not start.
    #[error("starting the data workers")]
    Workers(#[source] rayon::ThreadPoolBuildError),
    /// `--evalDA` trees that cannot be used.
    #[error("--evalDA: {0}")]
    EvalDa(String),
    /// `--evalDA` trees that cannot be read.
    #[error("--evalDA: reading {flag}")]
    EvalDaRead {
        flag: &'static str,
        #[source]
        source: DataError,
    },
    /// `--only-eval` weights that cannot be loaded.
    #[error("--only-eval: loading {}", path.display())]
    OnlyEval {
        path: PathBuf,
        #[source]
        source: ModelError,
    },
    /// The run folder is in use by another process.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// A folder the run writes to cannot be written.
    #[error("{flag} {}: files cannot be written there; pass a {flag} you can write to, with free space", dir.display())]
    Unwritable {
        flag: &'static str,
        dir: PathBuf,
        #[source]
        source: FileError,
    },
    /// Too little free space for the run's files.
    #[error(
        "{} has {} MB free, but this run's weights and checkpoints need about {} MB there; free some space or pass another {flag}",
        dir.display(), free / 1_000_000, need / 1_000_000
    )]
    NoSpace { flag: &'static str, dir: PathBuf, free: u64, need: u64 },
    /// `--save` names a file the run cannot write.
    #[error("--save {}: {why}", path.display())]
    Save { path: PathBuf, why: String },
    /// `--pretrained` (or the baseline found by the tag) is not a baseline of this dataset.
    #[error("the pretrained baseline {} {why}; pass the {} of a baseline run (`resmooth train --dataset {dataset} --prob 1.0`) with --pretrained", path.display(), crate::run_folder::BEST_WEIGHTS)]
    NotABaseline { path: PathBuf, dataset: String, why: String },
    /// The run's checkpoint cannot be read back.
    #[error(
        "{} cannot be resumed: it is damaged or cut short. Move it away (or pass --restart) to start the run over; the weights of its last finished epoch are in {}",
        path.display(), weights.display()
    )]
    BadCheckpoint {
        path: PathBuf,
        weights: PathBuf,
        #[source]
        source: Box<ModelError>,
    },
    /// Writing an epoch's files failed (a full disk): the run stopped, its last complete
    /// checkpoint kept.
    #[error(
        "writing the files of epoch {epoch} failed, so the run stopped; {} still holds the last complete checkpoint: make room (or fix the cause below) and rerun the same command to resume",
        checkpoint.display()
    )]
    Record {
        epoch: usize,
        checkpoint: PathBuf,
        #[source]
        source: Box<EngineError>,
    },
    /// The user stopped the run (Ctrl-C, SIGTERM); what was saved and how to go on.
    #[error("interrupted {0}")]
    Interrupted(String),
    /// The checkpoint in the run folder was made with other flags.
    #[error(
        "{} belongs to a run with other flags; rerun with the same flags to resume it, pass --restart to start over, or use another --tag",
        path.display()
    )]
    OtherRun { path: PathBuf },
    /// The training split is smaller than one batch.
    #[error("the training split has {images} images, fewer than one batch of {batch_size}: batches drop their last partial one (as the reference's loader does), so there is no batch to train on or to score; pass --batch-size {images} or less (or use more training images)")]
    TooFewImages { images: usize, batch_size: usize },
    /// A folder that `resmooth export` cannot write as the reference's checkpoint.
    #[error("{} cannot be exported: {reason}", dir.display())]
    NotExportable { dir: PathBuf, reason: String },
    /// A collective across the processes of a distributed run failed, or joining them did.
    #[error(transparent)]
    Dist(#[from] DistError),
    /// A rank of a distributed run would resume from elsewhere than rank 0.
    #[error(
        "rank {rank} would resume {rank_at} but rank 0 {primary_at}: every rank reads {} to resume, so --logdir \
         must be on a filesystem every machine sees (rank 0 alone writes it)",
        checkpoint.display()
    )]
    RanksDisagree { rank: usize, rank_at: String, primary_at: String, checkpoint: PathBuf },
    /// The loss diverged.
    #[error("the training loss became NaN in epoch {epoch}{}; lower --lr or check the data", step.map(|s| format!(" (step {s})")).unwrap_or_default())]
    NotANumber { epoch: usize, step: Option<usize> },
}
