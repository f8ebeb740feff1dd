//! What a run reports, as types and files: the metrics of each epoch (`metrics.jsonl`, one JSON
//! object per line) and the outcome of the run (`summary.json`); in submodules, the per-sample
//! statistics of an epoch (`epoch`), the TensorBoard event files (`tensorboard`, with the
//! reference's loss histogram `figure`), the plain-text `train.log` (`train_log`) and the HTML
//! report of run folders (`html`, its plots in `svg`).

pub mod detect_summary;
pub mod epoch;
pub mod figure;
pub mod font;
pub mod html;
pub mod reproduce;
pub mod svg;
pub mod tensorboard;
pub mod train_log;

pub use epoch::{EpochRecord, EpochStats, PartStats, RgbImage, SampleViews};

use crate::config::TrainConfig;
use crate::io::{append_line, write_atomic, FileError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A report file that cannot be written or read back.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    File(#[from] FileError),
    /// The file is not what resmooth writes.
    #[error("{} is malformed", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Events(#[from] tensorboard::EventFileError),
}

/// Loss and accuracies (fractions) on an evaluation set.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct EvalMetrics {
    pub loss: f64,
    pub top1: f64,
    pub top5: f64,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub train_top1: f64,
    pub train_top5: f64,
    pub test_loss: f64,
    pub test_top1: f64,
    pub test_top5: f64,
    /// Wall time of the epoch, training and evaluation.
    pub seconds: f64,
    /// Training images per second.
    pub images_per_sec: f64,
    pub train_seconds: f64,
    /// Time the training loop waited for the data pipeline.
    pub data_wait_seconds: f64,
    pub eval_seconds: f64,
    /// With --gmm: accuracy on ID and OOD views, the OOD share of augmented views, the mean smoothing.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub gmm: Option<GmmMetrics>,
    /// With --evalDA: loss and accuracies on the DAOOD and DAID trees.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub da: Option<DaMetrics>,
}

/// The per-epoch evaluation of `--evalDA` on the trees of augmented views judged OOD and ID.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct DaMetrics {
    pub daood_loss: f64,
    pub daood_top1: f64,
    pub daood_top5: f64,
    pub daid_loss: f64,
    pub daid_top1: f64,
    pub daid_top5: f64,
}

impl DaMetrics {
    /// The metrics of the DAOOD and DAID evaluations.
    pub fn new(ood: &EvalMetrics, id: &EvalMetrics) -> Self {
        DaMetrics {
            daood_loss: ood.loss,
            daood_top1: ood.top1,
            daood_top5: ood.top5,
            daid_loss: id.loss,
            daid_top1: id.top1,
            daid_top5: id.top5,
        }
    }
}

/// The per-epoch metrics of a run with a GMM.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct GmmMetrics {
    /// Training top-1 on views judged ID (originals included); null when there was none.
    pub train_top1_id: Option<f64>,
    /// Training top-1 on views judged OOD; null when there was none.
    pub train_top1_ood: Option<f64>,
    /// Fraction of augmented views with p_ID < 0.5.
    pub ood_fraction: f64,
    /// Mean label smoothing of the augmented views.
    pub mean_smooth: f64,
}

impl EpochMetrics {
    /// The one-line console report of the epoch.
    pub fn line(&self, epochs: usize) -> String {
        let gmm = self.gmm.map(|g| {
            let pct = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into());
            format!(
                " | ID top1 {} OOD top1 {} OOD {:.1}% smooth {:.3}",
                pct(g.train_top1_id),
                pct(g.train_top1_ood),
                100.0 * g.ood_fraction,
                g.mean_smooth
            )
        });
        let base = format!(
            "epoch {}/{epochs} lr {:.6} | train loss {:.4} top1 {:.4} | test loss {:.4} top1 {:.4} top5 {:.4} | {:.1}s, {:.0} img/s, data wait {:.1}s",
            self.epoch,
            self.lr,
            self.train_loss,
            self.train_top1,
            self.test_loss,
            self.test_top1,
            self.test_top5,
            self.seconds,
            self.images_per_sec,
            self.data_wait_seconds
        );
        let da = self.da.map(|d| format!(" | DAOOD top1 {:.4} DAID top1 {:.4}", d.daood_top1, d.daid_top1));
        base + gmm.as_deref().unwrap_or("") + da.as_deref().unwrap_or("")
    }
}

/// `summary.json`: the run's outcome and its full configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub last_test_top1: f64,
    pub best_test_top1: f64,
    pub best_epoch: usize,
    pub epochs: usize,
    pub total_seconds: f64,
    pub parameters: i64,
    pub device: String,
    /// The pretrained baseline loaded by --gmm or Distillation (its scorer and teacher).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrained: Option<PathBuf>,
    pub config: TrainConfig,
}

fn read(path: &Path) -> Result<String, ReportError> {
    Ok(std::fs::read_to_string(path).map_err(|e| FileError::new("read", path, e))?)
}

fn parse<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, ReportError> {
    serde_json::from_str(text).map_err(|source| ReportError::Parse { path: path.to_path_buf(), source })
}

/// Appends one epoch to `metrics.jsonl`.
pub fn append_metrics(path: &Path, m: &EpochMetrics) -> Result<(), ReportError> {
    Ok(append_line(path, &serde_json::to_string(m).expect("metrics serialise"))?)
}

/// Reads `metrics.jsonl`.
pub fn read_metrics(path: &Path) -> Result<Vec<EpochMetrics>, ReportError> {
    read(path)?.lines().filter(|l| !l.trim().is_empty()).map(|l| parse(path, l)).collect()
}

/// Keeps only the epochs up to `epoch` in `metrics.jsonl` (those a checkpoint covers).
pub fn keep_epochs(path: &Path, epoch: usize) -> Result<(), ReportError> {
    if !path.exists() {
        return Ok(());
    }
    let kept: Vec<EpochMetrics> =
        if epoch == 0 { Vec::new() } else { read_metrics(path)?.into_iter().filter(|m| m.epoch <= epoch).collect() };
    let mut text = String::new();
    for m in kept {
        text.push_str(&serde_json::to_string(&m).expect("metrics serialise"));
        text.push('\n');
    }
    Ok(write_atomic(path, text.as_bytes())?)
}

/// Writes `summary.json` atomically.
pub fn write_summary(path: &Path, s: &Summary) -> Result<(), ReportError> {
    Ok(write_atomic(path, serde_json::to_string_pretty(s).expect("a summary serialises").as_bytes())?)
}

/// Reads `summary.json`.
pub fn read_summary(path: &Path) -> Result<Summary, ReportError> {
    parse(path, &read(path)?)
}
