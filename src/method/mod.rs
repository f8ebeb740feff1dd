//! The ReSmooth method proper, on top of the model and the losses: the GMM on log-losses, the
//! pretrained scorer that gives p_ID, the detection pass that fits the GMM, and one training
//! step of the method (criteria, p_ID, `--weighting`, `--fair-comparison`), eager or replayed
//! as a CUDA graph (`--cuda-graphs`).

pub mod detection;
pub mod diagnosis;
pub use resmooth_core::gmm;
pub mod graphed;
pub mod scorer;
pub mod step;

pub use detection::{
    detect, diagnose, export_views, ood_by_op, ops_text, Detection, Shared, ViewRecord, ViewSource, DETECTION_EPOCH,
};
pub use diagnosis::{Collapsed, FitDiagnosis};
pub use gmm::{Gmm, GmmError};
pub use graphed::{NoGraph, StepError, Stepper};
pub use scorer::{baseline_command, load_pretrained, p_id_tensor, score};
pub use step::{Method, Net, Step, StepBatch, StepOutputs, StepPhase, StepSums, StepTimer, Stepped, SumsState};

use crate::io::FileError;
use crate::model::ModelError;
use std::path::PathBuf;

/// What can go wrong loading the baseline, running the detection pass or writing its results.
#[derive(Debug, thiserror::Error)]
pub enum MethodError {
    /// The pretrained baseline's file is missing; `make` says how to make it.
    #[error("the pretrained baseline {} does not exist; {make}", path.display())]
    MissingBaseline { path: PathBuf, make: String },
    /// The baseline's file is not weights of this model and class count.
    #[error("loading the pretrained baseline; {make}")]
    Baseline {
        make: String,
        #[source]
        source: ModelError,
    },
    /// The detection pass's losses cannot be fitted.
    #[error("fitting the GMM on the detection pass's log-losses")]
    Fit(#[source] GmmError),
    /// A scored loss could not be read back from the device.
    #[error("reading the scorer's losses: {0}")]
    Tensor(#[from] tch::TchError),
    #[error(transparent)]
    File(#[from] FileError),
    /// A `losses.csv` line that is not what `resmooth detect` writes.
    #[error("{}, line {line}: {reason}; write it again with resmooth detect", path.display())]
    Csv { path: PathBuf, line: usize, reason: String },
    /// The user stopped the detection pass (Ctrl-C, SIGTERM).
    #[error("interrupted during the detection pass, which is not kept: rerun the same command to run it again")]
    Interrupted,
    /// Sharing the detection pass among the processes of a distributed run failed.
    #[error("the detection pass across the ranks: {0}")]
    Dist(#[from] crate::dist::DistError),
    /// A view of the detection pass could not be made (an image file that cannot be read).
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// An exported view could not be written.
    #[error("cannot write {}", path.display())]
    Image {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
}
