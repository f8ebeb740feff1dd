//! `resmooth run`: the whole method in one command: the baseline (trained when its weights are
//! missing), then the given run (the detection pass included), then a table of the runs beside it
//! and their HTML report (`report.html` in the folder holding them).

use super::report::REPORT_FILE;
use super::Terminal;
use crate::cli::TrainArgs;
use anyhow::{bail, Context, Result};
use resmooth::config::TrainConfig;
use resmooth::engine;
use resmooth::engine::review::{write_report, ReportOptions};
use resmooth::method::{baseline_dir_of_save, baseline_tag, pretrained_path};
use resmooth::report::{self, Summary};
use std::path::PathBuf;

/// Runs `resmooth run`.
pub fn run(args: TrainArgs) -> Result<()> {
    let config = args.into_config()?;
    if config.run.tag.is_empty() {
        bail!("resmooth run needs --tag (e.g. cifar10/res18/rs_ra): the baseline goes beside it");
    }
    let mut terminal = Terminal::stop_on_signals()?;
    let needs_baseline = config.needs_pretrained() && config.method.pretrained.is_none();
    let r = &config.run;
    let baseline = pretrained_path(&r.logdir, &r.tag, r.save.as_deref(), None);
    if needs_baseline && !baseline.is_file() {
        let b = baseline_config(&config);
        eprintln!("step 1/2: training the baseline {} (its weights {} are missing)", b.run.tag, baseline.display());
        engine::train(&b, &mut terminal)?;
        if super::stop_signalled() {
            bail!("interrupted after the baseline {}, which is complete: rerun the same command to go on", b.run.tag);
        }
    } else if needs_baseline {
        eprintln!("step 1/2: baseline found at {}", baseline.display());
    }
    eprintln!("step 2/2: training {}", config.run.tag);
    engine::train(&config, &mut terminal)?;
    let runs = sibling_runs(&config)?;
    print!("{}", comparison_table(&config, &runs));
    let dirs: Vec<PathBuf> = runs.iter().map(|r| r.1.clone()).collect();
    let out = parent_folder(&config).join(REPORT_FILE);
    let opts = ReportOptions { dataroot: None, views: 24 };
    write_report(&dirs, &out, &opts, &mut terminal)?;
    println!("report: {}", out.display());
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
    b.run.save = config.run.save.as_deref().map(|s| baseline_dir_of_save(s).join("model.safetensors"));
    b
}

/// The folder holding the run's tag and its siblings.
fn parent_folder(config: &TrainConfig) -> PathBuf {
    match config.run.tag.rsplit_once('/') {
        Some((p, _)) => config.run.logdir.join(p),
        None => config.run.logdir.clone(),
    }
}

/// The finished runs that sit beside the run's tag (same parent folder): name, folder, summary.
pub fn sibling_runs(config: &TrainConfig) -> Result<Vec<(String, PathBuf, Summary)>> {
    let parent = parent_folder(config);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&parent)
        .with_context(|| format!("listing {}", parent.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    dirs.sort();
    Ok(dirs
        .into_iter()
        .filter_map(|d| {
            let s = report::read_summary(&d.join("summary.json")).ok()?;
            Some((d.file_name()?.to_string_lossy().into_owned(), d, s))
        })
        .collect())
}

/// A table of the finished runs beside the run's tag.
pub fn comparison_table(config: &TrainConfig, runs: &[(String, PathBuf, Summary)]) -> String {
    let mut out = format!("runs in {}:\n", parent_folder(config).display());
    out += &format!("{:<16} {:<44} {:>6} {:>9} {:>9}\n", "run", "setting", "epochs", "last top1", "best top1");
    for (name, _, s) in runs {
        let c = &s.config;
        let setting = if c.aug.prob >= 1.0 {
            "baseline (originals only)".to_string()
        } else {
            format!(
                "{} N{} M{} prob {} {}{} smooth {}",
                c.aug.aug,
                c.aug.n,
                c.aug.m,
                c.aug.prob,
                if c.method.gmm { "GMM " } else { "" },
                c.method.loss,
                c.method.smooth_aug
            )
        };
        out +=
            &format!("{name:<16} {setting:<44} {:>6} {:>9.4} {:>9.4}\n", s.epochs, s.last_test_top1, s.best_test_top1);
    }
    out
}
