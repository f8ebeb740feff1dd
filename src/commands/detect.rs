//! `resmooth detect`: the detection step alone. Scores both views of one pass over the training
//! set with the pretrained baseline, fits the GMM, writes gmm.json, losses.csv and detect.json
//! (what was scored, for `resmooth report`), prints which views (and ops) are OOD, and with
//! `--export` writes the views as DAOOD/DAID trees.

use super::Terminal;
use crate::cli::DetectArgs;
use anyhow::{bail, Result};
use resmooth::augment::Augmenter;
use resmooth::config::{check_magnitude, AugConfig, TrainConfig};
use resmooth::engine::Setup;
use resmooth::method::{export_views, load_pretrained, ViewSource};
use resmooth::report::detect_summary::{write_detect_summary, DetectSummary};
use resmooth::run_folder::{pretrained_path, RunFolder};
use std::sync::Arc;

/// Runs `resmooth detect`.
pub fn detect(args: DetectArgs) -> Result<()> {
    let (d, a) = (&args.data, &args.aug);
    check_magnitude(a.aug, a.m)?;
    if args.batch_size == 0 || d.train_size == Some(0) {
        bail!("--batch-size and --train-size must be at least 1");
    }
    let data = d.config(None);
    data.check()?;
    // the folder is this process's while it writes there (a training run may use the same tag)
    let folder = RunFolder::new(&args.logdir, &args.tag, None);
    let _lock = resmooth::io::lock_dir(&folder.dir)?;
    let mut terminal = Terminal::stop_on_signals()?;
    let setup = Setup::new(&data, args.seed, args.device.gpu, args.device.workers, &mut terminal)?;
    let config = pass_config(&args);
    let path = pretrained_path(&config);
    // the scorer runs in fp32, as the reference's
    let input = (setup.num_classes(), setup.image_size());
    let scorer = load_pretrained(&path, &args.model.model, d.dataset, input, &args.tag, setup.device)?;
    let aug = Arc::new(Augmenter::new(a.aug, a.n, a.m, a.cutout, d.dataset).with_crop_padding(a.crop_padding));
    let started = std::time::Instant::now();
    let det = setup.detect(&scorer, &aug, args.seed, args.batch_size, None, &mut terminal)?;
    let (gmm, csv) = (&folder.gmm, &folder.losses);
    det.gmm.save(gmm)?;
    det.write_csv(csv)?;
    let diagnosis = det.diagnosis();
    let warning = diagnosis.warning();
    let summary = DetectSummary {
        pretrained: path.clone(),
        views: det.records.len(),
        seconds: started.elapsed().as_secs_f64(),
        device: format!("{:?}", setup.device),
        config,
        diagnosis: Some(diagnosis),
        warning: warning.clone(),
    };
    write_detect_summary(&folder.detect, &summary)?;
    println!("scored {} views with {} in {:.1}s", det.records.len(), path.display(), started.elapsed().as_secs_f64());
    print!("{}", det.report());
    println!("wrote {} and {}", gmm.display(), csv.display());
    if let Some(w) = &warning {
        eprintln!("warning: {w}");
    }
    if let Some(export) = &args.export {
        let source = ViewSource {
            set: &setup.train,
            classes: &setup.dataset.classes,
            aug: &aug,
            seed: args.seed,
            norm: setup.dataset.normalisation,
        };
        let (ood, id) = export_views(&det, &source, export, &setup.pool)?;
        println!(
            "exported {ood} OOD and {id} ID augmented views to {} and {}",
            export.join("DAOOD").display(),
            export.join("DAID").display()
        );
    }
    Ok(())
}

/// The pass's data, augmentation, model, batch size and seed as a training configuration (the
/// other fields at their defaults).
fn pass_config(args: &DetectArgs) -> TrainConfig {
    let d = TrainConfig::default();
    let a = &args.aug;
    let mut c = TrainConfig {
        data: args.data.config(None),
        aug: AugConfig { aug: a.aug, n: a.n, m: a.m, cutout: a.cutout, prob: d.aug.prob, crop_padding: a.crop_padding },
        ..d
    };
    c.model.model = args.model.model.clone();
    c.optim.batch_size = args.batch_size;
    c.method.gmm = true;
    c.method.pretrained = args.pretrained.clone();
    (c.run.tag, c.run.logdir, c.run.seed) = (args.tag.clone(), args.logdir.clone(), args.seed);
    (c.run.gpu, c.run.workers) = (args.device.gpu, args.device.workers);
    c
}
