//! `resmooth train`: the reference's training loop. Each epoch: batches of original and
//! augmented views (`--prob`), loss = prob * LS(smooth_org) on originals + (1 - prob) *
//! LS(smooth_aug) on augmented views, SGD with the warmup + cosine schedule, then evaluation.

use crate::augment::Augmenter;
use crate::checkpoint::{self, ResumeMeta};
use crate::cli::TrainArgs;
use crate::data::{self, Dataset, ImageSet};
use crate::loss::correct_topk;
use crate::model::Model;
use crate::optim::Sgd;
use crate::pipeline::{self, EpochPlan, Loader, Views};
use crate::report::{self, DaMetrics, EpochMetrics, EvalMetrics, Summary};
use crate::schedule::Schedule;
use crate::step::{Accumulator, Method};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// The files of one run, under `<logdir>/<tag>/`.
#[derive(Debug, Clone)]
pub struct RunPaths {
    pub dir: PathBuf,
    pub weights: PathBuf,
    pub best: PathBuf,
    pub checkpoint: PathBuf,
    pub metrics: PathBuf,
    pub summary: PathBuf,
}

impl RunPaths {
    /// The paths for `tag` under `logdir`; `save` overrides the weights file.
    pub fn new(logdir: &Path, tag: &str, save: Option<&Path>) -> Self {
        let dir = logdir.join(tag);
        let weights = save.map(Path::to_path_buf).unwrap_or_else(|| dir.join("model.safetensors"));
        RunPaths {
            best: weights.with_file_name("best.safetensors"),
            checkpoint: dir.join("checkpoint.safetensors"),
            metrics: dir.join("metrics.jsonl"),
            summary: dir.join("summary.json"),
            weights,
            dir,
        }
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

/// The fields of a configuration that decide what a run computes (not where or how fast).
fn identity(args: &TrainArgs) -> serde_json::Value {
    let mut a = args.clone();
    a.gpu = 0;
    a.workers = 0;
    a.restart = false;
    a.only_eval = false;
    a.dataroot = PathBuf::new();
    a.logdir = PathBuf::new();
    a.save = None;
    a.mirror = None;
    a.stop_after = None;
    // --evalDA only adds evaluations; it does not change what is trained
    a.eval_da = false;
    a.daood = PathBuf::new();
    a.daid = PathBuf::new();
    serde_json::to_value(a).expect("config serialises")
}

/// Flag combinations that have no meaning (the reference would crash or silently ignore them).
fn check_combinations(args: &TrainArgs) -> Result<()> {
    if args.loss == "SampleSmooth" && !args.gmm {
        bail!("--loss SampleSmooth needs --gmm (p_ID comes from the GMM)");
    }
    if args.fair_comparison != "disable" {
        if !args.gmm {
            bail!("--fair-comparison {} needs --gmm (it selects samples by p_ID)", args.fair_comparison);
        }
        if args.loss == "Distillation" {
            bail!("--fair-comparison cannot be combined with --loss Distillation");
        }
        if args.prob >= 1.0 {
            bail!("--fair-comparison trains on augmented views only; it needs --prob below 1");
        }
    }
    if args.normalised_sample_smooth && args.loss != "SampleSmooth" {
        bail!("--normalised-sample-smooth changes --loss SampleSmooth; it has no effect with --loss {}", args.loss);
    }
    if args.weighting != "regular" && !args.gmm {
        bail!("--weighting {} only acts with --gmm", args.weighting);
    }
    if args.pretrained.is_some() && !args.gmm && args.loss != "Distillation" {
        bail!("--pretrained is only used by --gmm or --loss Distillation");
    }
    Ok(())
}

/// Loads the dataset with the `--train-size` / `--test-size` subsets applied.
pub fn load_dataset(args: &TrainArgs) -> Result<Dataset> {
    let mut ds = data::load_or_fetch(&args.dataset, &args.dataroot, args.mirror.as_deref())?;
    let k = ds.num_classes();
    if let Some(n) = args.train_size {
        ds.train = ds.train.stratified_subset(n, k, args.seed).context("--train-size")?;
    }
    if let Some(n) = args.test_size {
        ds.test = ds.test.stratified_subset(n, k, args.seed.wrapping_add(1)).context("--test-size")?;
    }
    Ok(ds)
}

/// The `--evalDA` trees (DAOOD, DAID), read with the dataset's class names and checked to hold
/// images of the test set's size.
fn load_da_sets(args: &TrainArgs, ds: &Dataset) -> Result<Option<(ImageSet, ImageSet)>> {
    if !args.eval_da {
        return Ok(None);
    }
    let read = |dir: &Path, flag: &str| -> Result<ImageSet> {
        let set = data::read_labelled_folder(dir, &ds.classes).with_context(|| format!("--evalDA: reading {flag}"))?;
        if (set.height, set.width) != (ds.test.height, ds.test.width) {
            bail!(
                "--evalDA: {} holds {}x{} images but the test set's are {}x{}",
                dir.display(),
                set.width,
                set.height,
                ds.test.width,
                ds.test.height
            );
        }
        Ok(set)
    };
    Ok(Some((read(&args.daood, "--daood")?, read(&args.daid, "--daid")?)))
}

/// Test-view loss and top-1/top-5 accuracy of `model` on `set` (no augmentation).
pub fn evaluate(model: &Model, set: &ImageSet, batch_size: usize, device: Device) -> EvalMetrics {
    let _guard = tch::no_grad_guard();
    let per = set.image_bytes();
    let (mut loss, mut c1, mut c5) = (
        Tensor::zeros([], (Kind::Float, device)),
        Tensor::zeros([], (Kind::Float, device)),
        Tensor::zeros([], (Kind::Float, device)),
    );
    for start in (0..set.len()).step_by(batch_size) {
        let n = batch_size.min(set.len() - start);
        let x = pipeline::to_device(&set.pixels[start * per..(start + n) * per], n, set.height, set.width, &[], device);
        let y = pipeline::upload(Tensor::from_slice(&set.labels[start..start + n]), device);
        let logits = model.forward_t(&x, false);
        loss += logits.cross_entropy_for_logits(&y) * n as f64;
        c1 += correct_topk(&logits, &y, 1);
        c5 += correct_topk(&logits, &y, 5);
    }
    let n = set.len().max(1) as f64;
    EvalMetrics { loss: loss.double_value(&[]) / n, top1: c1.double_value(&[]) / n, top5: c5.double_value(&[]) / n }
}

/// The data pipeline's thread pool: `workers` threads, or one per core for 0.
pub fn data_pool(workers: usize) -> Result<rayon::ThreadPool> {
    let n = if workers == 0 { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) } else { workers };
    rayon::ThreadPoolBuilder::new().num_threads(n).build().context("starting the data workers")
}

/// Runs `resmooth train` (or `--only-eval`) and returns the run's summary.
pub fn run(mut args: TrainArgs) -> Result<Summary> {
    args.validate().map_err(anyhow::Error::msg)?;
    check_combinations(&args)?;
    args.tag = resolve_tag(&args.tag);
    let paths = RunPaths::new(&args.logdir, &args.tag, args.save.as_deref());
    let device = crate::device::select(args.gpu).map_err(anyhow::Error::msg)?;
    let ds = load_dataset(&args)?;
    let num_classes = ds.num_classes() as i64;
    tch::manual_seed(args.seed as i64);
    let mut model = Model::new(&args.model, num_classes, device)?;
    model.compute = crate::device::compute_kind(args.precision.as_deref());
    let da_sets = load_da_sets(&args, &ds)?;
    let evaluate_da = |model: &Model| {
        da_sets.as_ref().map(|(ood, id)| {
            DaMetrics::new(
                &evaluate(model, ood, args.batch_size, device),
                &evaluate(model, id, args.batch_size, device),
            )
        })
    };

    if args.only_eval {
        model.load(&paths.weights).with_context(|| format!("--only-eval: loading {}", paths.weights.display()))?;
        let m = evaluate(&model, &ds.test, args.batch_size, device);
        let mut line = serde_json::json!({"weights": paths.weights, "test_loss": m.loss, "test_top1": m.top1, "test_top5": m.top5});
        if let Some(da) = evaluate_da(&model) {
            line.as_object_mut().expect("an object").extend(
                serde_json::to_value(da)?.as_object().expect("an object").iter().map(|(k, v)| (k.clone(), v.clone())),
            );
        }
        println!("{line}");
        return Ok(Summary::eval_only(&args, &m));
    }

    let aug = if args.prob < 1.0 {
        Augmenter::from_flags(&args.aug, args.n, args.m, args.cutout, &args.dataset).map_err(anyhow::Error::msg)?
    } else {
        // every sample of a --prob 1.0 batch is an original view; the augmentation is never drawn
        Augmenter::from_flags("default", 0, 0, 0, &args.dataset).map_err(anyhow::Error::msg)?
    };
    let mut opt = Sgd::new(&model.vs, 0.9, args.weight_decay, args.nesterov);
    let schedule = Schedule {
        lr: args.lr,
        warm_epoch: args.warm_epoch,
        multiplier: args.warm_multiplier,
        epochs: args.epochs,
        cosine: args.cosine,
        warm: args.warm,
    };

    std::fs::create_dir_all(&paths.dir).with_context(|| format!("creating {}", paths.dir.display()))?;
    let mut meta = ResumeMeta {
        epoch: 0,
        steps: 0,
        best_test_top1: f64::NEG_INFINITY,
        best_epoch: 0,
        seconds: 0.0,
        seed: args.seed,
        config: identity(&args),
    };
    if paths.checkpoint.exists() && !args.restart {
        let saved = checkpoint::read_meta(&paths.checkpoint)?;
        if saved.config != meta.config {
            bail!(
                "{} belongs to a run with other flags; rerun with the same flags to resume it, pass --restart to start over, or use another --tag",
                paths.checkpoint.display()
            );
        }
        meta = checkpoint::load(&paths.checkpoint, &mut model, &mut opt)?;
        if meta.epoch >= args.epochs {
            eprintln!(
                "{} is complete ({} epochs); evaluate it with --only-eval or pass --restart to train again",
                paths.dir.display(),
                meta.epoch
            );
            return report::read_summary(&paths.summary);
        }
        eprintln!("resuming {} after epoch {}", paths.dir.display(), meta.epoch);
    }
    report::keep_epochs(&paths.metrics, meta.epoch)?;

    let train_set = Arc::new(ds.train.clone());
    let aug = Arc::new(aug);
    let pool = Arc::new(data_pool(args.workers)?);
    let method = Method::prepare(&args, &paths, num_classes, device, &train_set, &aug, &pool, meta.epoch > 0)?;
    let mut last = None;

    for epoch in meta.epoch + 1..=args.epochs {
        let started = Instant::now();
        let lr = schedule.lr_at(epoch);
        tch::manual_seed((args.seed as i64).wrapping_mul(1_000_003).wrapping_add(epoch as i64));
        let plan = EpochPlan {
            seed: args.seed,
            epoch: epoch as u64,
            batch_size: args.batch_size,
            shuffle: true,
            drop_last: true,
            views: Views::Mixed { prob: args.prob },
        };
        let mut loader = Loader::start(train_set.clone(), plan, aug.clone(), pool.clone(), 3);
        if loader.num_batches == 0 {
            bail!(
                "the training split has {} images, fewer than one batch of {}; lower --batch-size",
                train_set.len(),
                args.batch_size
            );
        }
        let bar = report::epoch_bar(epoch, args.epochs, loader.num_batches);
        let mut acc = Accumulator::new(device);
        let mut step = 0;
        while let Some(batch) = loader.next_batch() {
            let (x, y) =
                batch.to_device_as(train_set.height, train_set.width, device, args.memory_format == "channels_last");
            let n_ori = batch.n_ori as i64;
            loader.recycle(batch);
            if method.train_step(&args, &model, &mut opt, lr, &x, &y, n_ori, &mut acc) {
                meta.steps += 1;
            }
            step += 1;
            bar.inc(1);
            if step % 20 == 0 || step == loader.num_batches {
                let l = acc.loss();
                if l.is_nan() {
                    bail!("the training loss became NaN in epoch {epoch} (step {step}); lower --lr or check the data");
                }
                let rate = acc.seen as f64 / started.elapsed().as_secs_f64();
                bar.set_message(format!("loss {l:.4} top1 {:.4} lr {lr:.6} {rate:.0} img/s", acc.top1()));
            }
        }
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
        bar.finish_and_clear();
        let train_seconds = started.elapsed().as_secs_f64();
        let data_wait = loader.wait.as_secs_f64();
        drop(loader);
        let train_loss = acc.loss();
        if train_loss.is_nan() {
            bail!("the training loss became NaN in epoch {epoch}; lower --lr or check the data");
        }
        let eval_started = Instant::now();
        let test = evaluate(&model, &ds.test, args.batch_size, device);
        let da = evaluate_da(&model);
        let eval_seconds = eval_started.elapsed().as_secs_f64();
        let seconds = started.elapsed().as_secs_f64();
        let m = EpochMetrics {
            epoch,
            lr,
            train_loss,
            train_top1: acc.top1(),
            train_top5: acc.top5(),
            test_loss: test.loss,
            test_top1: test.top1,
            test_top5: test.top5,
            seconds,
            images_per_sec: acc.seen as f64 / train_seconds,
            train_seconds,
            data_wait_seconds: data_wait,
            eval_seconds,
            gmm: acc.gmm_metrics(),
            da,
        };
        println!("{}", m.line(args.epochs));
        report::append_metrics(&paths.metrics, &m)?;
        model.set_batches_tracked(meta.steps);
        model.save(&paths.weights)?;
        if test.top1 > meta.best_test_top1 {
            meta.best_test_top1 = test.top1;
            meta.best_epoch = epoch;
            model.save(&paths.best)?;
        }
        meta.epoch = epoch;
        meta.seconds += seconds;
        checkpoint::save(&paths.checkpoint, &model, &opt, &meta)?;
        last = Some(m);
        if args.stop_after.is_some_and(|n| epoch >= n) && epoch < args.epochs {
            eprintln!("stopped after epoch {epoch} (--stop-after); rerun the command without it to resume");
            break;
        }
    }
    let last = last.expect("at least one epoch ran");
    let summary =
        Summary::finished(&args, &meta, &last, model.num_parameters(), device, method.pretrained_path.clone());
    report::write_summary(&paths.summary, &summary)?;
    eprintln!(
        "done: last test top1 {:.4}, best {:.4} (epoch {}); weights in {}",
        last.test_top1,
        meta.best_test_top1,
        meta.best_epoch,
        paths.weights.display()
    );
    Ok(summary)
}
