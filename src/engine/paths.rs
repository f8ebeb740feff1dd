//! The files of one run, under `<logdir>/<tag>/`.

use crate::config::SaveFormat;
use std::path::{Path, PathBuf};

/// The files of one run.
#[derive(Debug, Clone)]
pub struct RunPaths {
    /// `<logdir>/<tag>/`.
    pub dir: PathBuf,
    /// The last epoch's weights (`--save`, default `model.safetensors`).
    pub weights: PathBuf,
    /// The best test epoch's weights, beside `weights`.
    pub best: PathBuf,
    /// Weights, momentum and where the run stands, for resuming.
    pub checkpoint: PathBuf,
    pub metrics: PathBuf,
    pub summary: PathBuf,
    /// The GMM fitted by the run's detection pass.
    pub gmm: PathBuf,
    /// The detection pass's scored views (as `resmooth detect` writes them).
    pub losses: PathBuf,
    /// The plain-text log: sessions, notices, one line per epoch.
    pub train_log: PathBuf,
}

impl RunPaths {
    /// The paths for `tag` under `logdir`; `save` overrides the weights file.
    pub fn new(logdir: &Path, tag: &str, save: Option<&Path>) -> Self {
        let dir = logdir.join(tag);
        let weights = save.map(Path::to_path_buf).unwrap_or_else(|| dir.join("model.safetensors"));
        RunPaths {
            best: weights.with_file_name(crate::method::BEST_WEIGHTS),
            checkpoint: dir.join("checkpoint.safetensors"),
            metrics: dir.join("metrics.jsonl"),
            summary: dir.join("summary.json"),
            gmm: dir.join("gmm.json"),
            losses: dir.join("losses.csv"),
            train_log: dir.join("train.log"),
            weights,
            dir,
        }
    }

    /// These paths with the weights files in `format`: the default `model.safetensors` becomes
    /// `model.pth`, and the best epoch's file beside the weights is `best.<extension>`.
    pub fn in_format(mut self, format: SaveFormat) -> Self {
        if self.weights == self.dir.join("model.safetensors") {
            self.weights = self.dir.join(format!("model.{}", format.extension()));
        }
        self.best = self.weights.with_file_name(format!("best.{}", format.extension()));
        self
    }
}

/// The tag of a run: `--tag`, or `cache-<unix time>` as the reference names untagged runs.
pub fn resolve_tag(tag: &str) -> String {
    if tag.is_empty() {
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        format!("cache-{secs}")
    } else {
        tag.to_string()
    }
}
