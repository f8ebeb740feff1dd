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
use crate::dist::{Dist, DistError};
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

impl EvalMetrics {
    /// The metrics of the whole set from every rank's, each rank having evaluated its `count`
    /// images (its `dist::shard` of the set): what one process evaluating all of them reports.
    pub fn over_ranks(self, count: usize, dist: &Dist) -> Result<EvalMetrics, DistError> {
        let (m, _) = dist.mean_over_ranks(&[self.loss, self.top1, self.top5], count)?;
        Ok(EvalMetrics { loss: m[0], top1: m[1], top5: m[2] })
    }
}

/// How the training steps of an epoch ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepMode {
    /// One launch per op.
    Eager,
    /// Replays of a captured CUDA graph (`--cuda-graphs`; the first epoch's first steps, the
    /// warm-up before the capture, ran eagerly).
    CudaGraph,
}

impl StepMode {
    /// The spelling in metrics files.
    pub fn name(self) -> &'static str {
        match self {
            StepMode::Eager => "eager",
            StepMode::CudaGraph => "cuda-graph",
        }
    }
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
    /// How the training steps ran (`--cuda-graphs`); absent in runs of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_mode: Option<StepMode>,
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

/// A run's setting in one line, as the report's comparison and `resmooth run`'s table show it:
/// `baseline (originals only)`, or the augmentation, the share of originals and the method
/// (`ra N2 M28 prob 0 GMM SampleSmooth smooth 0.4`).
pub fn setting(config: &TrainConfig) -> String {
    let (a, m) = (&config.aug, &config.method);
    if a.prob >= 1.0 {
        return "baseline (originals only)".into();
    }
    let gmm = if m.gmm { " GMM" } else { "" };
    format!("{} N{} M{} prob {}{gmm} {} smooth {}", a.aug, a.n, a.m, a.prob, m.loss, m.smooth_aug)
}

fn read(path: &Path) -> Result<String, ReportError> {
    Ok(std::fs::read_to_string(path).map_err(|e| FileError::new("read", path, e))?)
}

fn parse<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, ReportError> {
    serde_json::from_str(text).map_err(|source| ReportError::Parse { path: path.to_path_buf(), source })
}

/// The line of `metrics.jsonl` for one epoch (shortest round-trip floats: every value reads
/// back to the same bits).
pub fn metrics_line(metrics: &EpochMetrics) -> String {
    serde_json::to_string(metrics).expect("metrics serialise")
}

/// Appends one epoch's line (see [`metrics_line`]) to `metrics.jsonl`.
pub fn append_metrics_line(path: &Path, line: &str) -> Result<(), ReportError> {
    Ok(append_line(path, line)?)
}

/// Reads `metrics.jsonl`.
pub fn read_metrics(path: &Path) -> Result<Vec<EpochMetrics>, ReportError> {
    read(path)?.lines().filter(|l| !l.trim().is_empty()).map(|l| parse(path, l)).collect()
}

/// The epoch a line of `metrics.jsonl` records, if it is a whole line resmooth wrote.
fn epoch_of(line: &str) -> Option<usize> {
    #[derive(Deserialize)]
    struct Epoch {
        epoch: usize,
    }
    serde_json::from_str::<Epoch>(line).ok().map(|e| e.epoch)
}

/// Makes `metrics.jsonl` hold exactly the epochs `1..=epoch` that a checkpoint covers, keeping
/// the lines of those epochs byte for byte (a result file never changes a number it already
/// holds): the file is cut after the last line of an epoch up to `epoch` (dropping later
/// epochs, a line cut short by a crash and anything unreadable after it), and `last` (the line
/// of epoch `epoch` as the checkpoint stores it) is appended when the file lacks it.
pub fn keep_epochs(path: &Path, epoch: usize, last: Option<&str>) -> Result<(), ReportError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(FileError::new("read", path, e).into()),
    };
    let (mut keep, mut kept_epoch, mut start) = (0, 0, 0);
    while let Some(end) = bytes[start..].iter().position(|&b| b == b'\n').map(|i| start + i + 1) {
        let line = std::str::from_utf8(&bytes[start..end]).ok();
        match line.and_then(epoch_of) {
            Some(e) if e > kept_epoch && e <= epoch => (keep, kept_epoch) = (end, e),
            _ => break,
        }
        start = end;
    }
    let mut text = bytes[..keep].to_vec();
    if let Some(last) = last.filter(|l| kept_epoch < epoch && epoch_of(l) == Some(epoch)) {
        text.extend_from_slice(last.as_bytes());
        text.push(b'\n');
    }
    if text == bytes {
        return Ok(());
    }
    Ok(write_atomic(path, &text)?)
}

/// Writes `summary.json` atomically.
pub fn write_summary(path: &Path, s: &Summary) -> Result<(), ReportError> {
    Ok(write_atomic(path, serde_json::to_string_pretty(s).expect("a summary serialises").as_bytes())?)
}

/// Reads `summary.json`.
pub fn read_summary(path: &Path) -> Result<Summary, ReportError> {
    parse(path, &read(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn epoch(e: usize, x: f64) -> EpochMetrics {
        EpochMetrics {
            epoch: e,
            lr: x,
            train_loss: x,
            train_top1: x,
            train_top5: x,
            test_loss: x,
            test_top1: x,
            test_top5: x,
            seconds: x,
            images_per_sec: x,
            train_seconds: x,
            data_wait_seconds: x,
            eval_seconds: x,
            step_mode: None,
            gmm: Some(GmmMetrics { train_top1_id: Some(x), train_top1_ood: None, ood_fraction: x, mean_smooth: x }),
            da: Some(DaMetrics::new(
                &EvalMetrics { loss: x, top1: x, top5: x },
                &EvalMetrics { loss: x, top1: x, top5: x },
            )),
        }
    }

    #[test]
    fn the_setting_line_names_the_augmentation_and_the_method() {
        let mut c = TrainConfig::default();
        c.aug.prob = 1.0;
        assert_eq!(setting(&c), "baseline (originals only)");
        (c.aug.prob, c.aug.n, c.aug.m) = (0.0, 2, 28);
        (c.method.gmm, c.method.loss, c.method.smooth_aug) = (true, crate::config::LossName::SampleSmooth, 0.4);
        assert_eq!(setting(&c), "ra N2 M28 prob 0 GMM SampleSmooth smooth 0.4");
        (c.aug.aug, c.aug.prob, c.method.gmm, c.method.loss) =
            (crate::config::AugName::Jigsaw, 0.6, false, crate::config::LossName::LabelSmooth);
        assert_eq!(setting(&c), "jigsaw N2 M28 prob 0.6 LabelSmooth smooth 0.4");
    }

    #[test]
    fn keeping_epochs_keeps_their_lines_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        // the value of issue 15, written as the run wrote it (a parser that is not correctly
        // rounded reads it as ...669), and a line written with extra spaces by another tool
        let one = r#"{"epoch":1,"train_top1":0.11197916666666667, "lr":0.1}"#;
        let two = metrics_line(&epoch(2, 0.1 + 0.2));
        std::fs::write(&path, format!("{one}\n{two}\n{{\"epoch\":3,\"lr\"")).unwrap();
        keep_epochs(&path, 2, None).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{one}\n{two}\n"), "the cut line goes");
        keep_epochs(&path, 1, Some(&two)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{one}\n"));
        // the checkpoint's copy of the last epoch's line restores a line the crash lost
        keep_epochs(&path, 2, Some(&two)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{one}\n{two}\n"));
        // a line of another epoch is never appended in its place
        keep_epochs(&path, 3, Some(&two)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{one}\n{two}\n"));
        keep_epochs(&path, 0, None).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        keep_epochs(&dir.path().join("none.jsonl"), 0, None).unwrap();
        assert!(!dir.path().join("none.jsonl").exists());
        assert_eq!(serde_json::from_str::<f64>("0.11197916666666667").unwrap(), 0.11197916666666667);
    }

    #[test]
    fn garbage_in_metrics_is_cut_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        for junk in [&b"\xff\xfe\n"[..], b"{\"epoch\":-1}\n", b"[1,2]\n", b"{\"epoch\":1e400}\n", b"\n\n"] {
            std::fs::write(&path, junk).unwrap();
            keep_epochs(&path, 5, None).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), b"");
            std::fs::write(&path, junk).unwrap();
            let _ = read_metrics(&path);
        }
    }

    fn finite() -> impl Strategy<Value = f64> {
        proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL | proptest::num::f64::ZERO
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Every f64 the metrics and summary writers write reads back to the same bits.
        #[test]
        fn written_floats_read_back_to_the_same_bits(x in finite(), e in 1usize..1000) {
            let metrics = epoch(e, x);
            let back: EpochMetrics = serde_json::from_str(&metrics_line(&metrics)).unwrap();
            prop_assert_eq!(back.test_top1.to_bits(), x.to_bits());
            prop_assert_eq!(back.gmm.unwrap().train_top1_id.unwrap().to_bits(), x.to_bits());
            prop_assert_eq!(back.da.unwrap().daid_top5.to_bits(), x.to_bits());
            let mut config = TrainConfig::default();
            config.optim.lr = x;
            config.method.smooth_aug = x;
            let s = Summary {
                last_test_top1: x,
                best_test_top1: x,
                best_epoch: e,
                epochs: e,
                total_seconds: x,
                parameters: 1,
                device: "Cpu".into(),
                pretrained: None,
                config,
            };
            // the text write_summary writes
            let back: Summary = serde_json::from_str(&serde_json::to_string_pretty(&s).unwrap()).unwrap();
            prop_assert_eq!(back.best_test_top1.to_bits(), x.to_bits());
            prop_assert_eq!(back.config.optim.lr.to_bits(), x.to_bits());
            prop_assert_eq!(back, s);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        /// Lines of any content never make `keep_epochs` panic, and whatever it keeps is a
        /// prefix of the file's bytes.
        #[test]
        fn keep_epochs_keeps_a_prefix(bytes in proptest::collection::vec(any::<u8>(), 0..200), upto in 0usize..4) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("metrics.jsonl");
            let mut text = b"{\"epoch\":1}\n{\"epoch\":2}\n".to_vec();
            text.extend_from_slice(&bytes);
            std::fs::write(&path, &text).unwrap();
            keep_epochs(&path, upto, None).unwrap();
            let kept = std::fs::read(&path).unwrap();
            prop_assert!(text.starts_with(&kept));
            prop_assert!(kept.len() >= [0, 12, 24, 24][upto]);
        }
    }
}
