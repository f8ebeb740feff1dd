//! What a run reports: a progress bar per epoch, `metrics.jsonl` (one object per epoch) and
//! `summary.json`.

use crate::checkpoint::ResumeMeta;
use crate::cli::TrainArgs;
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

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
    pub pretrained: Option<std::path::PathBuf>,
    pub config: TrainArgs,
}

impl Summary {
    /// The summary of a finished training run.
    pub fn finished(
        args: &TrainArgs,
        meta: &ResumeMeta,
        last: &EpochMetrics,
        parameters: i64,
        device: tch::Device,
        pretrained: Option<std::path::PathBuf>,
    ) -> Self {
        Summary {
            last_test_top1: last.test_top1,
            best_test_top1: meta.best_test_top1,
            best_epoch: meta.best_epoch,
            epochs: meta.epoch,
            total_seconds: meta.seconds,
            parameters,
            device: format!("{device:?}"),
            pretrained,
            config: args.clone(),
        }
    }

    /// The result of `--only-eval` (not written to disk).
    pub fn eval_only(args: &TrainArgs, m: &EvalMetrics) -> Self {
        Summary {
            last_test_top1: m.top1,
            best_test_top1: m.top1,
            best_epoch: 0,
            epochs: 0,
            total_seconds: 0.0,
            parameters: 0,
            device: String::new(),
            pretrained: None,
            config: args.clone(),
        }
    }
}

/// A progress bar over the steps of one epoch (drawn only on a terminal).
pub fn epoch_bar(epoch: usize, epochs: usize, steps: usize) -> ProgressBar {
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {elapsed} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("train {epoch:>4}/{epochs}"));
    bar
}

/// Appends one epoch to `metrics.jsonl`.
pub fn append_metrics(path: &Path, m: &EpochMetrics) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(f, "{}", serde_json::to_string(m)?).with_context(|| format!("writing {}", path.display()))
}

/// Reads `metrics.jsonl`.
pub fn read_metrics(path: &Path) -> Result<Vec<EpochMetrics>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("{} has a malformed line", path.display())))
        .collect()
}

/// Keeps only the epochs up to `epoch` in `metrics.jsonl` (those a checkpoint covers).
pub fn keep_epochs(path: &Path, epoch: usize) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let kept: Vec<EpochMetrics> =
        if epoch == 0 { Vec::new() } else { read_metrics(path)?.into_iter().filter(|m| m.epoch <= epoch).collect() };
    let mut text = String::new();
    for m in kept {
        text.push_str(&serde_json::to_string(&m)?);
        text.push('\n');
    }
    write_atomic(path, text.as_bytes())
}

/// Writes `summary.json`.
pub fn write_summary(path: &Path, s: &Summary) -> Result<()> {
    write_atomic(path, serde_json::to_string_pretty(s)?.as_bytes())
}

/// Reads `summary.json`.
pub fn read_summary(path: &Path) -> Result<Summary> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is malformed", path.display()))
}

/// Writes a file through a temporary file renamed into place.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}
