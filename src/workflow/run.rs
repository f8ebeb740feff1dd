//! `resmooth run`: the whole method in one call: the baseline (trained when its weights are
//! missing), then the given run (the detection pass included), then a table of the finished runs
//! beside it and their HTML report (`report.html` in the folder holding them).

use super::review::{write_report, ReportOptions};
use super::WorkflowError;
use crate::config::TrainConfig;
use crate::engine::{self, EngineError, TrainObserver};
use crate::io::FileError;
use crate::report::{self, Summary};
use crate::run_folder::{self, baseline_save, baseline_tag, parent_folder, pretrained_path, REPORT};
use std::path::{Path, PathBuf};

/// Views in each grid of the report `resmooth run` writes.
const REPORT_VIEWS: usize = 24;

/// A finished run beside the method run's tag.
#[derive(Debug, Clone)]
pub struct Sibling {
    /// Its folder's name (the last component of its tag).
    pub name: String,
    pub dir: PathBuf,
    pub summary: Summary,
}

/// What `resmooth run` did.
#[derive(Debug, Clone)]
pub struct MethodRun {
    /// The method run's summary.
    pub summary: Summary,
    /// The folder holding the run's tag and its siblings.
    pub parent: PathBuf,
    /// The finished runs in `parent` (the run and its baseline among them), by name.
    pub siblings: Vec<Sibling>,
    /// The HTML report of the siblings.
    pub report: PathBuf,
}

/// Runs the whole method for `config`: its baseline first when the run needs one (`--gmm` or
/// Distillation without `--pretrained`) and its weights are missing, then the run itself, then
/// the report of the finished runs beside it. Which step is under way goes to `observer` as
/// notes. A stop asked during the baseline ends the sequence once the baseline is saved.
pub fn run_method(config: &TrainConfig, observer: &mut dyn TrainObserver) -> Result<MethodRun, WorkflowError> {
    if config.run.tag.is_empty() {
        return Err(WorkflowError::Untagged);
    }
    if config.needs_pretrained() && config.method.pretrained.is_none() {
        ensure_baseline(config, observer)?;
    }
    observer.note(&format!("step 2/2: training {}", config.run.tag));
    let summary = engine::train(config, observer)?;
    let siblings = sibling_runs(config)?;
    let parent = parent_folder(&config.run.logdir, &config.run.tag);
    let dirs: Vec<PathBuf> = siblings.iter().map(|s| s.dir.clone()).collect();
    let out = parent.join(REPORT);
    write_report(&dirs, &out, &ReportOptions { dataroot: None, views: REPORT_VIEWS }, observer)?;
    Ok(MethodRun { summary, parent, siblings, report: out })
}

/// Step 1: trains the baseline of `config` unless its weights are there.
fn ensure_baseline(config: &TrainConfig, observer: &mut dyn TrainObserver) -> Result<(), WorkflowError> {
    let weights = pretrained_path(config);
    if weights.is_file() {
        observer.note(&format!("step 1/2: baseline found at {}", weights.display()));
        return Ok(());
    }
    let b = baseline_config(config);
    observer.note(&format!(
        "step 1/2: training the baseline {} (its weights {} are missing)",
        b.run.tag,
        weights.display()
    ));
    engine::train(&b, observer)?;
    if observer.stop_requested() {
        let why = format!("after the baseline {}, which is complete: rerun the same command to go on", b.run.tag);
        return Err(EngineError::Interrupted(why).into());
    }
    Ok(())
}

/// The baseline run's configuration for a method run: the same data, model and schedule, every
/// sample an original view, plain cross-entropy, the reference's defaults otherwise.
pub fn baseline_config(config: &TrainConfig) -> TrainConfig {
    let mut b = TrainConfig {
        data: config.data.clone(),
        model: config.model.clone(),
        optim: config.optim.clone(),
        ..TrainConfig::default()
    };
    b.aug.prob = 1.0;
    b.run.logdir = config.run.logdir.clone();
    b.run.gpu = config.run.gpu;
    b.run.workers = config.run.workers;
    b.run.seed = config.run.seed;
    b.run.tag = baseline_tag(&config.run.tag);
    // with --save DIR/RUN/FILE the method run looks for DIR/baseline/best.safetensors
    b.run.save = config.run.save.as_deref().map(baseline_save);
    b
}

/// The finished runs (those with a readable summary) beside the run's tag, by name.
pub fn sibling_runs(config: &TrainConfig) -> Result<Vec<Sibling>, WorkflowError> {
    let (logdir, tag) = (&config.run.logdir, &config.run.tag);
    let folders =
        run_folder::siblings(logdir, tag).map_err(|e| FileError::new("list", &parent_folder(logdir, tag), e))?;
    Ok(folders
        .into_iter()
        .filter_map(|f| {
            let summary = report::read_summary(&f.summary).ok()?;
            Some(Sibling { name: f.name(), dir: f.dir, summary })
        })
        .collect())
}

/// The table of the finished runs in `parent`, one line each: name, setting, epochs, last and
/// best test top-1.
pub fn comparison_table(parent: &Path, runs: &[Sibling]) -> String {
    let mut out = format!("runs in {}:\n", parent.display());
    out += &format!("{:<16} {:<44} {:>6} {:>9} {:>9}\n", "run", "setting", "epochs", "last top1", "best top1");
    for Sibling { name, summary: s, .. } in runs {
        let setting = report::setting(&s.config);
        out +=
            &format!("{name:<16} {setting:<44} {:>6} {:>9.4} {:>9.4}\n", s.epochs, s.last_test_top1, s.best_test_top1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DatasetName, LossName, ModelName};
    use crate::data::synthetic_set;
    use crate::progress::{Progress, Unit};
    use crate::report::EpochMetrics;
    use crate::run_folder::RunFolder;

    /// Keeps the notes of the sequence and counts the epochs it trains.
    #[derive(Default)]
    struct Record {
        notes: Vec<String>,
        epochs: usize,
    }

    impl Progress for Record {
        fn note(&mut self, text: &str) {
            self.notes.push(text.to_string());
        }
        fn start(&mut self, _: &str, _: Option<u64>, _: u64, _: Unit) {}
        fn advance(&mut self, _: u64, _: &str) {}
        fn finish(&mut self) {}
    }

    impl TrainObserver for Record {
        fn epoch_end(&mut self, _: &EpochMetrics, _: usize) {
            self.epochs += 1;
        }
    }

    impl Record {
        fn noted(&self, start: &str) -> bool {
            self.notes.iter().any(|n| n.starts_with(start))
        }
    }

    /// DIR/{train,test}/c<k>/*.png: synthetic images in 3 classes.
    fn image_folder(dir: &Path) {
        for (split, count, seed) in [("train", 48, 0), ("test", 12, 1)] {
            let set = synthetic_set(count, seed);
            for i in 0..count {
                let class = dir.join(split).join(format!("c{}", i % 3));
                std::fs::create_dir_all(&class).unwrap();
                let image = image::RgbImage::from_raw(set.width as u32, set.height as u32, set.image(i).to_vec());
                image.unwrap().save(class.join(format!("{i:02}.png"))).unwrap();
            }
        }
    }

    /// A one-epoch ReSmooth run on 8x8 images with tag `tag`; WRN-40-2, whose weights (a fifth of
    /// ResNet-18's) the epoch's files write quickly.
    fn method_config(data: &Path, logs: &Path, tag: &str) -> TrainConfig {
        let mut c = TrainConfig::default();
        (c.data.dataset, c.data.dataroot, c.data.image_size) = (DatasetName::ImageFolder, data.into(), Some(8));
        (c.aug.prob, c.aug.n, c.aug.m) = (0.5, 1, 9);
        (c.optim.epochs, c.optim.batch_size, c.optim.warm_epoch) = (1, 16, 1);
        (c.method.gmm, c.method.loss, c.method.smooth_aug) = (true, LossName::SampleSmooth, 0.4);
        (c.run.logdir, c.run.tag, c.run.workers) = (logs.into(), tag.into(), 1);
        c.model.model = ModelName::WResNet40x2.into();
        c
    }

    #[test]
    fn the_whole_method_trains_the_baseline_once_then_each_run_and_compares_them() {
        let tmp = tempfile::tempdir().unwrap();
        let (data, logs) = (tmp.path().join("data"), tmp.path().join("logs"));
        image_folder(&data);
        let first = method_config(&data, &logs, "syn/res/rs");
        let mut seen = Record::default();
        let done = run_method(&first, &mut seen).unwrap();
        assert!(seen.noted("step 1/2: training the baseline syn/res/baseline"), "{:?}", seen.notes);
        assert!(seen.noted("step 2/2: training syn/res/rs"), "{:?}", seen.notes);
        assert_eq!(seen.epochs, 2, "one epoch of the baseline, one of the run");
        let baseline = RunFolder::new(&logs, "syn/res/baseline", None);
        assert!(baseline.best.is_file());
        assert_eq!(done.summary.pretrained.as_deref(), Some(baseline.best.as_path()));
        assert_eq!(done.parent, logs.join("syn/res"));
        let names: Vec<&str> = done.siblings.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["baseline", "rs"]);
        assert_eq!(done.report, logs.join("syn/res/report.html"));
        let page = std::fs::read_to_string(&done.report).unwrap();
        assert!(page.contains("syn/res/baseline") && page.contains("syn/res/rs"));

        // a second run beside it finds the baseline and leaves it as it is
        let summary_before = std::fs::read(&baseline.summary).unwrap();
        let mut second = method_config(&data, &logs, "syn/res/rs2");
        second.method.smooth_aug = 0.2;
        let mut seen = Record::default();
        let done = run_method(&second, &mut seen).unwrap();
        assert!(seen.noted(&format!("step 1/2: baseline found at {}", baseline.best.display())), "{:?}", seen.notes);
        assert_eq!(seen.epochs, 1);
        assert_eq!(std::fs::read(&baseline.summary).unwrap(), summary_before);
        let table = comparison_table(&done.parent, &done.siblings);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 5, "{table}");
        assert!(lines[2].starts_with("baseline") && lines[2].contains("baseline (originals only)"), "{table}");
        assert!(
            lines[3].starts_with("rs ") && lines[3].contains("ra N1 M9 prob 0.5 GMM SampleSmooth smooth 0.4"),
            "{table}"
        );
        assert!(lines[4].starts_with("rs2 ") && lines[4].contains("smooth 0.2"), "{table}");
    }

    #[test]
    fn an_untagged_run_is_refused_before_anything_trains() {
        let err = run_method(&TrainConfig::default(), &mut Record::default()).unwrap_err();
        assert!(matches!(err, WorkflowError::Untagged) && err.to_string().contains("--tag"), "{err}");
    }

    #[test]
    fn the_baseline_has_the_runs_data_model_and_schedule_and_originals_only() {
        let mut c = method_config(Path::new("d"), Path::new("logs"), "c10/res18/rs_ra");
        c.run.save = Some(PathBuf::from("ckpt/c10/rs_ra/w.safetensors"));
        let b = baseline_config(&c);
        assert_eq!((&b.data, &b.model, &b.optim), (&c.data, &c.model, &c.optim));
        assert_eq!((b.aug.prob, b.method.gmm, b.method.loss), (1.0, false, LossName::LabelSmooth));
        assert_eq!(b.run.tag, "c10/res18/baseline");
        // the baseline writes its best weights where the method run looks for them
        assert_eq!(RunFolder::of(&b).best, pretrained_path(&c));
    }
}
