//! What is built on runs of the engine: `resmooth run`'s whole method (the baseline, then the
//! method run, then the runs beside it compared) in `run`, and the HTML report of run folders in
//! `review`. Above `engine`, below the commands; it prints nothing.

pub mod review;
pub mod run;

use crate::engine::EngineError;
use crate::io::FileError;
use std::path::PathBuf;

/// What can stop a workflow, naming the folder, flag or value at fault and what to do.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    File(#[from] FileError),
    /// A folder given to the report that holds no run.
    #[error("{} is not a run folder: {reason}", dir.display())]
    NotARun { dir: PathBuf, reason: String },
    /// `resmooth run` without a tag: its baseline's place comes from the tag.
    #[error("resmooth run needs --tag (e.g. cifar10/res18/rs_ra): the baseline goes beside it")]
    Untagged,
}
