//! `resmooth train`: the reference's training loop. Each epoch: batches of original and
//! augmented views (`--prob`), one step of the method per batch (SGD with the warmup + cosine
//! schedule), then evaluation; the epoch is recorded (metrics, weights, best weights,
//! checkpoint) so that a rerun of the same command resumes after it.

use super::checkpoint::{self, ResumeMeta};
use super::evaluate::{EvalReport, EvalSets};
use super::logged::{open_events, Logged};
use super::{resolve_tag, EngineError, RunPaths, Setup};
use crate::augment::Augmenter;
use crate::config::{MemoryFormat, TrainConfig};
use crate::method::{load_pretrained, pretrained_path, Gmm, Method, StepBatch, StepSums};
use crate::model::Model;
use crate::optim::Sgd;
use crate::pipeline::{shown_view, EpochPlan, Placement, Views};
use crate::progress::{Progress, Unit};
use crate::report::{self, EpochMetrics, EpochRecord, RgbImage, SampleViews, Summary};
use crate::schedule::Schedule;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a training run tells its caller as it goes, beyond [`Progress`].
pub trait TrainObserver: Progress {
    /// Epoch `metrics.epoch` of `epochs` finished and was recorded.
    fn epoch_end(&mut self, metrics: &EpochMetrics, epochs: usize);
}

/// Steps between reads of the running loss (a device synchronisation): the NaN check and the
/// progress status. These reads are the step loop's only host synchronisations (audited for
/// docs/BENCHMARKS.md): uploads are asynchronous from pinned memory, the sums, p_ID and the
/// SGD step (learning rate on the device) stay on the device, and the progress bar shows host
/// counters; only `--fair-comparison` reads the device each step (its kept count sets a shape).
const STATUS_EVERY: usize = 20;

/// Trains the run `config` describes, resuming it when its folder holds a checkpoint of the
/// same configuration; returns its summary (also written to `summary.json`).
pub fn train(config: &TrainConfig, observer: &mut dyn TrainObserver) -> Result<Summary, EngineError> {
    config.validate()?;
    let mut config = config.clone();
    config.run.tag = resolve_tag(&config.run.tag);
    let config = &config;
    let paths = RunPaths::new(&config.run.logdir, &config.run.tag, config.run.save.as_deref());
    let mut logged = Logged::open(&paths.train_log, config, observer)?;
    let observer = &mut logged;
    let setup = Setup::new(&config.data, config.run.seed, config.run.gpu, config.run.workers, observer)?;
    tch::manual_seed(config.run.seed as i64);
    let mut learner = Learner::new(config, &setup)?;
    let Some(mut meta) = learner.resume(config, &paths, observer)? else {
        return Ok(report::read_summary(&paths.summary)?);
    };
    let aug = Arc::new(augmenter(config));
    let (method, pretrained) = prepare_method(config, &setup, &aug, &paths, meta.epoch > 0, observer)?;
    let place = setup.placement(config.model.memory_format == MemoryFormat::ChannelsLast);
    let eval_sets = EvalSets::new(config, &setup, place)?;
    let trainer = Trainer { config, setup: &setup, aug, method, place };
    let mut events = open_events(&paths.dir, meta.epoch, observer)?;
    let epochs = config.optim.epochs;
    let mut last = None;
    for epoch in meta.epoch + 1..=epochs {
        let started = Instant::now();
        let lr = learner.schedule.lr_at(epoch);
        tch::manual_seed((config.run.seed as i64).wrapping_mul(1_000_003).wrapping_add(epoch as i64));
        let trained = trainer.epoch(&mut learner, epoch, lr, observer)?;
        meta.steps += trained.steps;
        let eval_started = Instant::now();
        let eval = eval_sets.evaluate(&learner.model);
        let m = epoch_metrics(epoch, lr, &trained, &eval, eval_started.elapsed(), started.elapsed());
        let (stats, views) = (trained.sums.epoch_stats(), trained.shown.map(|i| trainer.views_of(epoch, i)));
        events.epoch(&EpochRecord { metrics: &m, stats: stats.as_ref(), views: views.as_ref() })?;
        learner.record(&paths, &m, &mut meta)?;
        observer.epoch_end(&m, epochs);
        observer.check()?;
        last = Some(m);
        if config.run.stop_after.is_some_and(|n| epoch >= n) && epoch < epochs {
            observer
                .note(&format!("stopped after epoch {epoch} (--stop-after); rerun the command without it to resume"));
            break;
        }
    }
    let last = last.expect("a run that is not complete trains at least one epoch");
    let summary = Summary {
        last_test_top1: last.test_top1,
        best_test_top1: meta.best_test_top1,
        best_epoch: meta.best_epoch,
        epochs: meta.epoch,
        total_seconds: meta.seconds,
        parameters: learner.model.num_parameters(),
        device: format!("{:?}", setup.device),
        pretrained,
        config: config.clone(),
    };
    report::write_summary(&paths.summary, &summary)?;
    observer.note(&format!(
        "done: last test top1 {:.4}, best {:.4} (epoch {}); weights in {}",
        last.test_top1,
        meta.best_test_top1,
        meta.best_epoch,
        paths.weights.display()
    ));
    Ok(summary)
}

/// The model being trained, its optimizer and its learning-rate schedule.
struct Learner {
    model: Model,
    opt: Sgd,
    schedule: Schedule,
}

impl Learner {
    /// A freshly initialised model (seeded by `--seed`) with SGD and the reference's schedule.
    fn new(config: &TrainConfig, setup: &Setup) -> Result<Self, EngineError> {
        let o = &config.optim;
        let model = Model::build(&config.model.model, setup.num_classes(), setup.device)?
            .with_precision(config.model.precision);
        let opt = Sgd::new(&model.vs, 0.9, o.weight_decay, o.nesterov);
        let schedule = Schedule {
            lr: o.lr,
            warm_epoch: o.warm_epoch,
            multiplier: o.warm_multiplier,
            epochs: o.epochs,
            cosine: o.cosine,
            warm: o.warm,
        };
        Ok(Learner { model, opt, schedule })
    }

    /// Where the run stands: fresh, or resumed from the checkpoint of a run with the same
    /// configuration (unless `--restart`); `None` when that run is already complete. The
    /// metrics of epochs the checkpoint does not cover are dropped.
    fn resume(
        &mut self,
        config: &TrainConfig,
        paths: &RunPaths,
        progress: &mut dyn Progress,
    ) -> Result<Option<ResumeMeta>, EngineError> {
        std::fs::create_dir_all(&paths.dir).map_err(|e| crate::io::FileError::new("create", &paths.dir, e))?;
        let mut meta = ResumeMeta::fresh(config);
        if paths.checkpoint.exists() && !config.run.restart {
            let saved = checkpoint::read_meta(&paths.checkpoint)?;
            if !config.same_identity(&saved.config) {
                return Err(EngineError::OtherRun { path: paths.checkpoint.clone() });
            }
            meta = checkpoint::load(&paths.checkpoint, &mut self.model, &mut self.opt)?;
            if meta.epoch >= config.optim.epochs {
                progress.note(&format!(
                    "{} is complete ({} epochs); evaluate it with --only-eval or pass --restart to train again",
                    paths.dir.display(),
                    meta.epoch
                ));
                return Ok(None);
            }
            progress.note(&format!("resuming {} after epoch {}", paths.dir.display(), meta.epoch));
        }
        report::keep_epochs(&paths.metrics, meta.epoch)?;
        Ok(Some(meta))
    }

    /// Records a finished epoch: its metrics line, the weights, the best weights when the test
    /// accuracy improved, and the checkpoint.
    fn record(&self, paths: &RunPaths, m: &EpochMetrics, meta: &mut ResumeMeta) -> Result<(), EngineError> {
        report::append_metrics(&paths.metrics, m)?;
        self.model.set_batches_tracked(meta.steps);
        self.model.save(&paths.weights)?;
        if m.test_top1 > meta.best_test_top1 {
            meta.best_test_top1 = m.test_top1;
            meta.best_epoch = m.epoch;
            self.model.save(&paths.best)?;
        }
        meta.epoch = m.epoch;
        meta.seconds += m.seconds;
        checkpoint::save(&paths.checkpoint, &self.model, &self.opt, meta)?;
        Ok(())
    }
}

/// The augmentation of the run; a `--prob 1.0` run never draws one (every view is an original).
pub(super) fn augmenter(config: &TrainConfig) -> Augmenter {
    let a = &config.aug;
    let aug =
        if a.prob < 1.0 { Augmenter::new(a.aug, a.n, a.m, a.cutout, config.data.dataset) } else { Augmenter::none() };
    aug.with_crop_padding(a.crop_padding)
}

/// The method of the run: loads the pretrained baseline when needed and, with `--gmm`, runs the
/// detection pass (or, when a run is resumed, reloads its `gmm.json`). Returns the method and
/// the file of the baseline it loaded.
fn prepare_method(
    config: &TrainConfig,
    setup: &Setup,
    aug: &Arc<Augmenter>,
    paths: &RunPaths,
    resuming: bool,
    progress: &mut dyn Progress,
) -> Result<(Method, Option<PathBuf>), EngineError> {
    let m = &config.method;
    if !config.needs_pretrained() {
        return Ok((Method::new(m, config.aug.prob, None, None), None));
    }
    let r = &config.run;
    let path = pretrained_path(&r.logdir, &r.tag, r.save.as_deref(), m.pretrained.as_deref());
    progress.note(&format!("pretrained baseline: {}", path.display()));
    // the scorer and teacher run in fp32 whatever --precision says, as the reference's do
    let scorer =
        load_pretrained(&path, &config.model.model, config.data.dataset, setup.num_classes(), &r.tag, setup.device)?;
    let gmm = if !m.gmm {
        None
    } else if resuming && paths.gmm.is_file() {
        Some(Gmm::load(&paths.gmm)?)
    } else {
        let started = Instant::now();
        let det = setup.detect(&scorer, aug, r.seed, config.optim.batch_size, progress)?;
        progress.note(&format!("detection pass ({:.1}s):\n{}", started.elapsed().as_secs_f64(), det.report()));
        det.gmm.save(&paths.gmm)?;
        det.write_csv(&paths.losses)?;
        Some(det.gmm)
    };
    Ok((Method::new(m, config.aug.prob, Some(scorer), gmm), Some(path)))
}

/// What one epoch of training gave.
struct EpochTraining {
    sums: StepSums,
    /// Optimizer steps taken (fair-comparison batches with nothing to keep take none).
    steps: i64,
    seconds: f64,
    data_wait: Duration,
    /// The sample whose views the logs show: the first of the last batch, as the reference's.
    shown: Option<usize>,
}

/// What every epoch of training reads: the configuration, the data, the augmentation, the
/// method and where batches go.
struct Trainer<'a> {
    config: &'a TrainConfig,
    setup: &'a Setup,
    aug: Arc<Augmenter>,
    method: Method,
    place: Placement,
}

impl Trainer<'_> {
    /// Trains epoch `epoch` at learning rate `lr`: every batch of original and augmented views
    /// through one step of the method. The running loss is read every [`STATUS_EVERY`] steps,
    /// for the NaN check and the progress status.
    fn epoch(
        &self,
        learner: &mut Learner,
        epoch: usize,
        lr: f64,
        progress: &mut dyn Progress,
    ) -> Result<EpochTraining, EngineError> {
        let started = Instant::now();
        let (config, batch_size) = (self.config, self.config.optim.batch_size);
        let plan = EpochPlan {
            seed: config.run.seed,
            epoch: epoch as u64,
            batch_size,
            shuffle: true,
            drop_last: true,
            views: Views::Mixed { prob: config.aug.prob },
        };
        let mut loader = self.setup.loader(plan, &self.aug);
        if loader.num_batches == 0 {
            return Err(EngineError::TooFewImages { images: self.setup.train.len(), batch_size });
        }
        let mut sums = StepSums::new(self.setup.device);
        let (mut steps, mut done, mut status, mut shown) = (0, 0, String::new(), None);
        let what = format!("train {epoch:>4}/{}", config.optim.epochs);
        progress.start(&what, Some(loader.num_batches as u64), 0, Unit::Steps);
        while let Some(batch) = loader.next_batch() {
            let (x, y) = batch.upload(self.place);
            let step = StepBatch { x, y, n_ori: batch.n_ori as i64 };
            shown = batch.indices.first().copied();
            loader.recycle(batch);
            if self.method.step(&learner.model, &mut learner.opt, lr, &step, &mut sums) {
                steps += 1;
            }
            done += 1;
            if done % STATUS_EVERY == 0 || done == loader.num_batches {
                let loss = sums.loss();
                if loss.is_nan() {
                    progress.finish();
                    return Err(EngineError::NotANumber { epoch, step: Some(done) });
                }
                let rate = sums.seen as f64 / started.elapsed().as_secs_f64();
                status = format!("loss {loss:.4} top1 {:.4} lr {lr:.6} {rate:.0} img/s", sums.top1());
            }
            progress.advance(done as u64, &status);
        }
        crate::device::synchronize(self.setup.device);
        progress.finish();
        if sums.loss().is_nan() {
            return Err(EngineError::NotANumber { epoch, step: None });
        }
        Ok(EpochTraining { sums, steps, seconds: started.elapsed().as_secs_f64(), data_wait: loader.wait, shown })
    }

    /// The original and augmented view of training sample `index` in epoch `epoch`, made again
    /// from their seeded draws.
    fn views_of(&self, epoch: usize, index: usize) -> SampleViews {
        let set = &self.setup.train;
        let image = |original| RgbImage {
            height: set.height,
            width: set.width,
            pixels: shown_view(set, &self.aug, self.place.norm, self.config.run.seed, epoch as u64, index, original).0,
        };
        SampleViews { index, original: image(true), augmented: image(false) }
    }
}

/// The metrics line of an epoch.
fn epoch_metrics(
    epoch: usize,
    lr: f64,
    t: &EpochTraining,
    eval: &EvalReport,
    eval_time: Duration,
    total: Duration,
) -> EpochMetrics {
    EpochMetrics {
        epoch,
        lr,
        train_loss: t.sums.loss(),
        train_top1: t.sums.top1(),
        train_top5: t.sums.top5(),
        test_loss: eval.test.loss,
        test_top1: eval.test.top1,
        test_top5: eval.test.top5,
        seconds: total.as_secs_f64(),
        images_per_sec: t.sums.seen as f64 / t.seconds,
        train_seconds: t.seconds,
        data_wait_seconds: t.data_wait.as_secs_f64(),
        eval_seconds: eval_time.as_secs_f64(),
        gmm: t.sums.gmm_metrics(),
        da: eval.da,
    }
}
