//! `detect.json`: what `resmooth detect` scored, beside its `gmm.json` and `losses.csv`, so that
//! the report can remake the views it scored, and the diagnosis of the pass's fit.

use super::ReportError;
use crate::config::TrainConfig;
use crate::io::{write_atomic, FileError};
use crate::method::FitDiagnosis;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The outcome of a detection pass and what it ran with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DetectSummary {
    /// The weights that scored the views.
    pub pretrained: PathBuf,
    /// Views scored (original and augmented).
    pub views: usize,
    pub seconds: f64,
    pub device: String,
    /// The data, augmentation, model and seed of the pass, as a training run's configuration
    /// (the other fields at their defaults).
    pub config: TrainConfig,
    /// Whether the fit is degenerate, and why (absent in files of earlier versions).
    #[serde(default)]
    pub diagnosis: Option<FitDiagnosis>,
    /// The diagnosis's warning, as the terminal showed it; null when the fit is sound.
    #[serde(default)]
    pub warning: Option<String>,
}

/// Writes `detect.json` atomically.
pub fn write_detect_summary(path: &Path, s: &DetectSummary) -> Result<(), ReportError> {
    Ok(write_atomic(path, serde_json::to_string_pretty(s).expect("a summary serialises").as_bytes())?)
}

/// Reads `detect.json`.
pub fn read_detect_summary(path: &Path) -> Result<DetectSummary, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|e| FileError::new("read", path, e))?;
    serde_json::from_str(&text).map_err(|source| ReportError::Parse { path: path.to_path_buf(), source })
}
