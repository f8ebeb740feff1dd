//! The run folder, `<logdir>/<tag>/`: the one place that names its files (also those of the
//! folder `resmooth detect` writes), says whether a folder holds a run, and says how runs find
//! each other: the tag of an untagged run, the pretrained baseline a method run loads, the
//! siblings of a tag. Every other layer asks here.

use crate::config::{SaveFormat, TrainConfig};
use std::path::{Path, PathBuf};

/// The last epoch's weights, unless `--save` names another file.
pub const WEIGHTS: &str = "model.safetensors";
/// The best test epoch's weights, beside the weights: what a method run loads as its baseline.
pub const BEST_WEIGHTS: &str = "best.safetensors";
/// Weights, momentum and where the run stands, for resuming.
pub const CHECKPOINT: &str = "checkpoint.safetensors";
/// One JSON line per finished epoch.
pub const METRICS: &str = "metrics.jsonl";
/// The outcome of a finished run and its configuration.
pub const SUMMARY: &str = "summary.json";
/// The GMM fitted by a detection pass.
pub const GMM: &str = "gmm.json";
/// The views a detection pass scored.
pub const LOSSES: &str = "losses.csv";
/// What `resmooth detect` scored and ran with (a detect folder's summary).
pub const DETECT: &str = "detect.json";
/// The plain-text log: sessions, notices, one line per epoch.
pub const TRAIN_LOG: &str = "train.log";
/// How the names of the TensorBoard event files start (TensorFlow's convention).
pub const EVENTS_PREFIX: &str = "events.out.tfevents.";
/// The HTML report, in a run folder or in the folder holding several.
pub const REPORT: &str = "report.html";
/// The run name of a tag's baseline (the reference's convention).
pub const BASELINE: &str = "baseline";

/// The files whose presence makes a folder a run folder (one of them is enough: an unfinished
/// run has no summary, a detect folder no metrics).
pub const RECORDS: [&str; 5] = [SUMMARY, METRICS, GMM, LOSSES, DETECT];

/// The files of one run folder.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFolder {
    /// `<logdir>/<tag>/`.
    pub dir: PathBuf,
    /// The last epoch's weights (`--save`, default `model.safetensors` in the folder).
    pub weights: PathBuf,
    /// The best test epoch's weights, beside `weights`.
    pub best: PathBuf,
    /// Weights, momentum and where the run stands, for resuming.
    pub checkpoint: PathBuf,
    /// One line per finished epoch.
    pub metrics: PathBuf,
    /// The outcome of the finished run.
    pub summary: PathBuf,
    /// The GMM fitted by the run's detection pass.
    pub gmm: PathBuf,
    /// The detection pass's scored views.
    pub losses: PathBuf,
    /// What `resmooth detect` scored, in a detect folder.
    pub detect: PathBuf,
    /// The plain-text log: sessions, notices, one line per epoch.
    pub train_log: PathBuf,
}

impl RunFolder {
    /// The files of the run folder `dir`, its weights under their default name.
    pub fn at(dir: &Path) -> Self {
        Self::with_weights(dir.to_path_buf(), None)
    }

    /// The files of run `tag` under `logdir`; `save` (`--save`) moves the weights and the best
    /// weights beside them.
    pub fn new(logdir: &Path, tag: &str, save: Option<&Path>) -> Self {
        Self::with_weights(logdir.join(tag), save)
    }

    /// The folder of the run that `config` (`--logdir`, `--tag`, `--save`) names, its weights
    /// files in the run's `--save-format`.
    pub fn of(config: &TrainConfig) -> Self {
        let run = &config.run;
        Self::new(&run.logdir, &run.tag, run.save.as_deref()).in_format(config.save_format())
    }

    /// These files with the weights in `format`: the default `model.safetensors` becomes
    /// `model.pth`, and the best epoch's file beside the weights is `best.<extension>`.
    pub fn in_format(mut self, format: SaveFormat) -> Self {
        if self.weights == self.dir.join(WEIGHTS) {
            self.weights = self.dir.join(format!("model.{}", format.extension()));
        }
        self.best = self.weights.with_file_name(format!("best.{}", format.extension()));
        self
    }

    fn with_weights(dir: PathBuf, save: Option<&Path>) -> Self {
        let weights = save.map(Path::to_path_buf).unwrap_or_else(|| dir.join(WEIGHTS));
        RunFolder {
            best: weights.with_file_name(BEST_WEIGHTS),
            checkpoint: dir.join(CHECKPOINT),
            metrics: dir.join(METRICS),
            summary: dir.join(SUMMARY),
            gmm: dir.join(GMM),
            losses: dir.join(LOSSES),
            detect: dir.join(DETECT),
            train_log: dir.join(TRAIN_LOG),
            weights,
            dir,
        }
    }

    /// Whether the folder holds any of a run's [`RECORDS`].
    pub fn holds_a_run(&self) -> bool {
        RECORDS.iter().any(|f| self.dir.join(f).is_file())
    }

    /// The folder's name (the last component of its tag).
    pub fn name(&self) -> String {
        self.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
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

/// The tag of a run's baseline by the reference's convention: the last component of the tag
/// replaced by `baseline` (`cifar10/res18/rs_ra` → `cifar10/res18/baseline`).
pub fn baseline_tag(tag: &str) -> String {
    match tag.rsplit_once('/') {
        Some((parent, _)) => format!("{parent}/{BASELINE}"),
        None => BASELINE.to_string(),
    }
}

/// The pretrained weights a run uses: `--pretrained`, else the baseline's best-test-epoch
/// weights, as the reference loads them (its `model.pth` is written only when test top1
/// improves): `<logdir>/<baseline tag>/best.safetensors`, or, with `--save DIR/RUN/FILE`, the
/// reference's lookup with the save path's parent folder replaced by `baseline`:
/// `DIR/baseline/best.safetensors`.
///
/// A baseline trained with `--save-format pth` has `best.pth` there instead; it is taken when
/// `best.safetensors` is missing.
pub fn pretrained_path(config: &TrainConfig) -> PathBuf {
    let r = &config.run;
    if let Some(p) = &config.method.pretrained {
        return p.clone();
    }
    let dir = match &r.save {
        Some(save) => baseline_dir_of_save(save),
        None => r.logdir.join(baseline_tag(&r.tag)),
    };
    let best = RunFolder::at(&dir).best;
    let pth = RunFolder::at(&dir).in_format(SaveFormat::Pth).best;
    if !best.is_file() && pth.is_file() {
        pth
    } else {
        best
    }
}

/// The weights file of the baseline of a run saved at `save` (`DIR/RUN/FILE` →
/// `DIR/baseline/model.safetensors`), so that its best weights are where
/// [`pretrained_path`] looks.
pub fn baseline_save(save: &Path) -> PathBuf {
    baseline_dir_of_save(save).join(WEIGHTS)
}

/// The baseline's run folder for a run saved at `save` (`DIR/RUN/FILE` → `DIR/baseline`).
fn baseline_dir_of_save(save: &Path) -> PathBuf {
    let run_dir = save.parent().unwrap_or(Path::new(""));
    run_dir.parent().unwrap_or(Path::new("")).join(BASELINE)
}

/// The folder holding run `tag`'s folder and its siblings (`<logdir>/<tag without its last
/// component>`).
pub fn parent_folder(logdir: &Path, tag: &str) -> PathBuf {
    match tag.rsplit_once('/') {
        Some((p, _)) => logdir.join(p),
        None => logdir.to_path_buf(),
    }
}

/// The run folders beside run `tag`'s (its own included): the sub-folders of its
/// [`parent_folder`] that hold a run, by name.
pub fn siblings(logdir: &Path, tag: &str) -> std::io::Result<Vec<RunFolder>> {
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir(parent_folder(logdir, tag))?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    dirs.sort();
    Ok(dirs.iter().map(|d| RunFolder::at(d)).filter(RunFolder::holds_a_run).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(tag: &str, save: Option<&str>, pretrained: Option<&str>) -> TrainConfig {
        let mut c = TrainConfig::default();
        c.run.tag = tag.into();
        c.run.save = save.map(PathBuf::from);
        c.method.pretrained = pretrained.map(PathBuf::from);
        c
    }

    #[test]
    fn baseline_by_the_reference_convention() {
        assert_eq!(baseline_tag("cifar10/res18/rs_ra"), "cifar10/res18/baseline");
        assert_eq!(baseline_tag("rs"), "baseline");
        assert_eq!(
            pretrained_path(&run("cifar10/res18/rs_ra", None, None)),
            Path::new("logs/cifar10/res18/baseline/best.safetensors")
        );
        assert_eq!(pretrained_path(&run("x/y", None, Some("w.safetensors"))), Path::new("w.safetensors"));
        // --save moves the lookup as the reference's does: the save path's folder becomes `baseline`
        assert_eq!(
            pretrained_path(&run("x/y", Some("ckpt/c10/rs/model.safetensors"), None)),
            Path::new("ckpt/c10/baseline/best.safetensors")
        );
        assert_eq!(
            pretrained_path(&run("x/y", Some("rs/w.safetensors"), None)),
            Path::new("baseline/best.safetensors")
        );
        // the baseline `resmooth run` trains for such a run writes its best weights there
        let save = Path::new("ckpt/c10/rs/w.safetensors");
        let baseline = RunFolder::new(Path::new("logs"), "x/baseline", Some(&baseline_save(save)));
        assert_eq!(baseline.best, Path::new("ckpt/c10/baseline/best.safetensors"));
    }

    #[test]
    fn save_moves_the_weights_and_the_best_weights_only() {
        let plain = RunFolder::new(Path::new("logs"), "c10/rs", None);
        assert_eq!(plain.weights, Path::new("logs/c10/rs/model.safetensors"));
        assert_eq!(plain, RunFolder::at(Path::new("logs/c10/rs")));
        let saved = RunFolder::new(Path::new("logs"), "c10/rs", Some(Path::new("w/last.safetensors")));
        assert_eq!(
            (saved.weights.as_path(), saved.best.as_path()),
            (Path::new("w/last.safetensors"), Path::new("w/best.safetensors"))
        );
        assert_eq!(saved.checkpoint, plain.checkpoint);
        assert_eq!(saved.train_log, Path::new("logs/c10/rs/train.log"));
    }

    #[test]
    fn siblings_are_the_run_folders_beside_the_tag() {
        let logs = tempfile::tempdir().unwrap();
        let parent = logs.path().join("c10/res18");
        for (name, file) in
            [("rs", Some(SUMMARY)), ("baseline", Some(METRICS)), ("detect", Some(DETECT)), ("empty", None)]
        {
            std::fs::create_dir_all(parent.join(name)).unwrap();
            if let Some(f) = file {
                std::fs::write(parent.join(name).join(f), "").unwrap();
            }
        }
        std::fs::write(parent.join(REPORT), "").unwrap();
        assert_eq!(parent_folder(logs.path(), "c10/res18/rs"), parent);
        let names: Vec<String> = siblings(logs.path(), "c10/res18/rs").unwrap().iter().map(RunFolder::name).collect();
        assert_eq!(names, ["baseline", "detect", "rs"]);
        assert!(!RunFolder::at(&parent.join("empty")).holds_a_run());
        assert!(siblings(logs.path(), "c100/res18/rs").is_err(), "a missing parent folder is an error");
    }
}
