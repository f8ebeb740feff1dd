//! `resmooth run`: the whole method in one command: the baseline (trained when its weights are
//! missing), then the given run (the detection pass included), then a table of the runs beside it.

use super::Terminal;
use crate::cli::TrainArgs;
use anyhow::{bail, Context, Result};
use resmooth::config::TrainConfig;
use resmooth::engine;
use resmooth::method::{baseline_dir_of_save, baseline_tag, pretrained_path};
use resmooth::report::{self, Summary};
use std::path::PathBuf;

/// Runs `resmooth run`.
pub fn run(args: TrainArgs) -> Result<()> {
    let config = args.into_config()?;
    if config.run.tag.is_empty() {
        bail!("resmooth run needs --tag (e.g. cifar10/res18/rs_ra): the baseline goes beside it");
    }
    let mut terminal = Terminal::default();
    let needs_baseline = config.needs_pretrained() && config.method.pretrained.is_none();
    let r = &config.run;
    let baseline = pretrained_path(&r.logdir, &r.tag, r.save.as_deref(), None);
    if needs_baseline && !baseline.is_file() {
        let b = baseline_config(&config);
        eprintln!("step 1/2: training the baseline {} (its weights {} are missing)", b.run.tag, baseline.display());
        engine::train(&b, &mut terminal)?;
    } else if needs_baseline {
        eprintln!("step 1/2: baseline found at {}", baseline.display());
    }
    eprintln!("step 2/2: training {}", config.run.tag);
    engine::train(&config, &mut terminal)?;
    print!("{}", comparison_table(&config)?);
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

/// A table of the finished runs that sit beside the run's tag (same parent folder).
pub fn comparison_table(config: &TrainConfig) -> Result<String> {
    let parent = match config.run.tag.rsplit_once('/') {
        Some((p, _)) => config.run.logdir.join(p),
        None => config.run.logdir.clone(),
    };
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&parent)
        .with_context(|| format!("listing {}", parent.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    dirs.sort();
    let rows: Vec<(String, Summary)> = dirs
        .iter()
        .filter_map(|d| {
            let s = report::read_summary(&d.join("summary.json")).ok()?;
            Some((d.file_name()?.to_string_lossy().into_owned(), s))
        })
        .collect();
    let mut out = format!("runs in {}:\n", parent.display());
    out += &format!("{:<16} {:<44} {:>6} {:>9} {:>9}\n", "run", "setting", "epochs", "last top1", "best top1");
    for (name, s) in rows {
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
    Ok(out)
}
