//! `resmooth detect` (the detection step alone) and `resmooth run` (baseline, detection and
//! retraining in one command, then a comparison table).

use crate::augment::Augmenter;
use crate::cli::TrainArgs;
use crate::method;
use crate::report::{self, Summary};
use crate::train;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;

/// Flags of `resmooth detect`.
#[derive(Debug, Clone, Args)]
pub struct DetectArgs {
    /// Dataset: cifar10, cifar100, svhn or imagefolder.
    #[arg(long, default_value = "cifar10")]
    pub dataset: String,
    /// Folder holding the dataset files.
    #[arg(long, default_value = "data")]
    pub dataroot: PathBuf,
    /// Download missing datasets from this URL prefix instead of the official hosts.
    #[arg(long, env = "RESMOOTH_MIRROR")]
    pub mirror: Option<String>,
    /// Augmentation whose views are scored: ra, aa, rotate, jigsaw or default.
    #[arg(long, default_value = "ra")]
    pub aug: String,
    /// RandAugment: number of ops per image.
    #[arg(long = "N", default_value_t = 3)]
    pub n: usize,
    /// RandAugment: magnitude, 0..=30.
    #[arg(long = "M", default_value_t = 5)]
    pub m: usize,
    /// Cutout square side in pixels (0 = off).
    #[arg(long, default_value_t = 0)]
    pub cutout: usize,
    /// Model of the pretrained weights: resnet18 or wresnet28_10.
    #[arg(long, default_value = "resnet18")]
    pub model: String,
    /// Pretrained weights (default: the baseline of --tag, <logdir>/<parent of tag>/baseline/model.safetensors).
    #[arg(long)]
    pub pretrained: Option<PathBuf>,
    /// Where gmm.json and losses.csv go: <logdir>/<tag>/.
    #[arg(long, default_value = "detect")]
    pub tag: String,
    /// Folder of the runs.
    #[arg(long, default_value = "logs")]
    pub logdir: PathBuf,
    /// Seed of the views' random draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Score a seeded, class-stratified subset of this many training images.
    #[arg(long)]
    pub train_size: Option<usize>,
    /// Batch size of the scoring pass.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// CUDA device index; without a GPU the CPU is used.
    #[arg(long, default_value_t = 0)]
    pub gpu: usize,
    /// Worker threads of the data pipeline (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Also write the scored augmented views as PNG trees DIR/DAOOD/<class>/ (p_ID < 0.5) and
    /// DIR/DAID/<class>/, the test sets of `resmooth train --evalDA --daood DIR/DAOOD --daid DIR/DAID`.
    #[arg(long, value_name = "DIR")]
    pub export: Option<PathBuf>,
}

impl DetectArgs {
    /// The equivalent `train` flags (for the shared validation and data loading).
    fn as_train(&self) -> TrainArgs {
        let mut t = TrainArgs::defaults();
        t.dataset = self.dataset.clone();
        t.dataroot = self.dataroot.clone();
        t.mirror = self.mirror.clone();
        t.aug = self.aug.clone();
        t.n = self.n;
        t.m = self.m;
        t.cutout = self.cutout;
        t.model = self.model.clone();
        t.pretrained = self.pretrained.clone();
        t.tag = self.tag.clone();
        t.logdir = self.logdir.clone();
        t.seed = self.seed;
        t.train_size = self.train_size;
        t.batch_size = self.batch_size;
        t.gpu = self.gpu;
        t.workers = self.workers;
        t
    }
}

/// Runs `resmooth detect`: scores both views of one pass over the training set with the
/// pretrained model, fits the GMM, writes gmm.json and losses.csv and prints the OOD report.
pub fn run_detect(args: DetectArgs) -> Result<()> {
    let t = args.as_train();
    t.validate().map_err(anyhow::Error::msg)?;
    let device = crate::device::select(t.gpu).map_err(anyhow::Error::msg)?;
    let ds = train::load_dataset(&t)?;
    let path = method::pretrained_path(&t.logdir, &t.tag, None, t.pretrained.as_deref());
    // the scorer runs in fp32, as the reference's
    let scorer = method::load_pretrained(&path, &t.model, &t.dataset, ds.num_classes() as i64, &t.tag, device)?;
    let aug = Arc::new(Augmenter::from_flags(&t.aug, t.n, t.m, t.cutout, &t.dataset).map_err(anyhow::Error::msg)?);
    let pool = Arc::new(train::data_pool(t.workers)?);
    let started = std::time::Instant::now();
    let train_set = Arc::new(ds.train);
    let det = method::detect(&scorer, train_set.clone(), aug.clone(), pool.clone(), t.seed, t.batch_size, device)?;
    let dir = t.logdir.join(&t.tag);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    det.gmm.save(&dir.join("gmm.json"))?;
    det.write_csv(&dir.join("losses.csv"))?;
    println!("scored {} views with {} in {:.1}s", det.records.len(), path.display(), started.elapsed().as_secs_f64());
    print!("{}", det.report());
    println!("wrote {} and {}", dir.join("gmm.json").display(), dir.join("losses.csv").display());
    if let Some(export) = &args.export {
        let (ood, id) = export_views(&det, &train_set, &aug, t.seed, &ds.classes, export, &pool)?;
        println!(
            "exported {ood} OOD and {id} ID augmented views to {} and {}",
            export.join("DAOOD").display(),
            export.join("DAID").display()
        );
    }
    Ok(())
}

/// Writes the augmented views of a detection pass as PNG trees `dir/DAOOD/<class>/<index>.png`
/// (p_ID < 0.5) and `dir/DAID/<class>/<index>.png`, made again from their seeded draws. A cutout
/// box, zeroed after normalisation in training, is painted in the normalisation mean colour.
/// The trees are written beside and then renamed into place, replacing older ones; returns the
/// numbers of OOD and ID views.
pub fn export_views(
    det: &method::Detection,
    set: &crate::data::ImageSet,
    aug: &Augmenter,
    seed: u64,
    classes: &[String],
    dir: &std::path::Path,
    pool: &rayon::ThreadPool,
) -> Result<(usize, usize)> {
    use rayon::prelude::*;
    let staging = dir.join(".export-partial");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).with_context(|| format!("removing {}", staging.display()))?;
    }
    let views: Vec<&method::ViewRecord> = det.records.iter().filter(|r| !r.original).collect();
    for tree in ["DAOOD", "DAID"] {
        for class in classes {
            std::fs::create_dir_all(staging.join(tree).join(class))
                .with_context(|| format!("creating {}", staging.join(tree).join(class).display()))?;
        }
    }
    let (h, w) = (set.height, set.width);
    pool.install(|| {
        views.par_iter().try_for_each_init(
            || vec![0u8; set.image_bytes()],
            |img, r| -> Result<()> {
                let applied = crate::pipeline::make_view(set, aug, seed, method::DETECTION_EPOCH, r.index, false, img)
                    .expect("an augmented view");
                if let Some([y0, y1, x0, x1]) = applied.cutout {
                    for y in y0 as usize..y1 as usize {
                        for x in x0 as usize..x1 as usize {
                            for (c, m) in crate::data::MEAN.iter().enumerate() {
                                img[(y * w + x) * 3 + c] = (m * 255.0).round() as u8;
                            }
                        }
                    }
                }
                let tree = if r.p_id < 0.5 { "DAOOD" } else { "DAID" };
                let path = staging.join(tree).join(&classes[r.label as usize]).join(format!("{:05}.png", r.index));
                image::RgbImage::from_raw(w as u32, h as u32, img.clone())
                    .context("image buffer size")?
                    .save(&path)
                    .with_context(|| format!("writing {}", path.display()))
            },
        )
    })?;
    for tree in ["DAOOD", "DAID"] {
        let target = dir.join(tree);
        if target.exists() {
            std::fs::remove_dir_all(&target).with_context(|| format!("replacing {}", target.display()))?;
        }
        std::fs::rename(staging.join(tree), &target).with_context(|| format!("creating {}", target.display()))?;
    }
    std::fs::remove_dir_all(&staging).with_context(|| format!("removing {}", staging.display()))?;
    let ood = views.iter().filter(|r| r.p_id < 0.5).count();
    Ok((ood, views.len() - ood))
}

/// The baseline run's flags for a method run: the same data, model and schedule, every
/// sample an original view, plain cross-entropy.
pub fn baseline_args(args: &TrainArgs) -> TrainArgs {
    let mut b = TrainArgs::defaults();
    b.dataset = args.dataset.clone();
    b.dataroot = args.dataroot.clone();
    b.mirror = args.mirror.clone();
    b.model = args.model.clone();
    b.epochs = args.epochs;
    b.lr = args.lr;
    b.warm_epoch = args.warm_epoch;
    b.warm_multiplier = args.warm_multiplier;
    b.batch_size = args.batch_size;
    b.weight_decay = args.weight_decay;
    b.cosine = args.cosine;
    b.warm = args.warm;
    b.nesterov = args.nesterov;
    b.seed = args.seed;
    b.train_size = args.train_size;
    b.test_size = args.test_size;
    b.logdir = args.logdir.clone();
    b.gpu = args.gpu;
    b.workers = args.workers;
    b.precision = args.precision.clone();
    b.memory_format = args.memory_format.clone();
    b.prob = 1.0;
    b.tag = method::baseline_tag(&args.tag);
    // with --save DIR/RUN/FILE the method run looks for DIR/baseline/best.safetensors
    b.save = args.save.as_ref().map(|s| {
        let run_dir = s.parent().unwrap_or(std::path::Path::new(""));
        run_dir.parent().unwrap_or(std::path::Path::new("")).join("baseline").join("model.safetensors")
    });
    b
}

/// Runs `resmooth run`: trains the baseline if its weights are missing, then the given
/// (ReSmooth) run, then prints every finished run beside it.
pub fn run_all(args: TrainArgs) -> Result<()> {
    args.validate().map_err(anyhow::Error::msg)?;
    if args.tag.is_empty() {
        anyhow::bail!("resmooth run needs --tag (e.g. cifar10/res18/rs_ra): the baseline goes beside it");
    }
    let needs_baseline = (args.gmm || args.loss == "Distillation") && args.pretrained.is_none();
    let baseline = method::pretrained_path(&args.logdir, &args.tag, args.save.as_deref(), None);
    if needs_baseline && !baseline.is_file() {
        let b = baseline_args(&args);
        eprintln!("step 1/2: training the baseline {} (its weights {} are missing)", b.tag, baseline.display());
        train::run(b)?;
    } else if needs_baseline {
        eprintln!("step 1/2: baseline found at {}", baseline.display());
    }
    eprintln!("step 2/2: training {}", args.tag);
    train::run(args.clone())?;
    print!("{}", comparison_table(&args)?);
    Ok(())
}

/// A table of the finished runs that sit beside `args.tag` (same parent folder).
pub fn comparison_table(args: &TrainArgs) -> Result<String> {
    let parent = match args.tag.rsplit_once('/') {
        Some((p, _)) => args.logdir.join(p),
        None => args.logdir.clone(),
    };
    let mut rows: Vec<(String, Summary)> = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&parent)
        .with_context(|| format!("listing {}", parent.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    dirs.sort();
    for d in dirs {
        let summary = d.join("summary.json");
        if summary.is_file() {
            if let Ok(s) = report::read_summary(&summary) {
                rows.push((d.file_name().unwrap_or_default().to_string_lossy().into_owned(), s));
            }
        }
    }
    let mut out = format!("runs in {}:\n", parent.display());
    out += &format!("{:<16} {:<44} {:>6} {:>9} {:>9}\n", "run", "setting", "epochs", "last top1", "best top1");
    for (name, s) in rows {
        let c = &s.config;
        let setting = if c.prob >= 1.0 {
            "baseline (originals only)".to_string()
        } else {
            format!(
                "{} N{} M{} prob {} {}{} smooth {}",
                c.aug,
                c.n,
                c.m,
                c.prob,
                if c.gmm { "GMM " } else { "" },
                c.loss,
                c.smooth_aug
            )
        };
        out +=
            &format!("{name:<16} {setting:<44} {:>6} {:>9.4} {:>9.4}\n", s.epochs, s.last_test_top1, s.best_test_top1);
    }
    Ok(out)
}
