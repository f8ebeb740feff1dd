//! `resmooth train`: the reference's training loop. Each epoch: batches of original and
//! augmented views (`--prob`), one step of the method per batch (SGD with the warmup + cosine
//! schedule), then evaluation; the epoch is recorded (metrics, weights, best weights,
//! checkpoint) so that a rerun of the same command resumes after it.

use super::checkpoint::{Checkpoint, EpochFiles, PartialEpoch, ResumeMeta, Snapshot, Writer};
use super::evaluate::{EvalReport, EvalSets};
use super::logged::{open_events, Logged};
use super::ranks::{self, primary, stop_agreed};
use super::warm_start::{evaluate_only, read_save, SaveStart};
use super::{preflight, EngineError, Setup};
use crate::augment::Augmenter;
use crate::config::{ConfigError, CudaGraphs, FairComparison, MemoryFormat, ModelSpec, SgdKernel, TrainConfig};
use crate::dist::{BatchShare, Dist, Reducer, SyncBatchNorm, DEFAULT_BUCKET_BYTES};
use crate::method::{
    load_pretrained, Gmm, Method, Net, NoGraph, Step, StepBatch, StepSums, StepTimer, Stepped, Stepper,
};
use crate::model::Model;
use crate::optim::Sgd;
use crate::pipeline::{EpochPlan, Loader, Part, Placement, Upload, Views};
use crate::progress::{Progress, Unit};
use crate::report::tensorboard::EventWriter;
use crate::report::{self, EpochMetrics, EpochRecord, RgbImage, SampleViews, StepMode, Summary};
use crate::run_folder::{pretrained_path, resolve_tag, RunFolder};
use crate::schedule::Schedule;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a training run tells its caller as it goes, beyond [`Progress`].
pub trait TrainObserver: Progress {
    /// Epoch `metrics.epoch` of `epochs` finished; its files are being written in the
    /// background (on disk before the next epoch's are written and before the run ends).
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
    train_in(config, None, observer)
}

/// [`train`] as one of the processes of `dist` (joined with [`super::join`]), or alone: every
/// process trains on its part of each global batch (`--batch-size` stays the global batch, so
/// the run is the same on 1 or N processes) and their gradients are averaged; rank 0 alone
/// writes the run's files, holds its lock and tells `observer` more than errors.
pub fn train_in(
    config: &TrainConfig,
    dist: Option<&Dist>,
    observer: &mut dyn TrainObserver,
) -> Result<Summary, EngineError> {
    config.validate()?;
    if let Some(d) = dist {
        check_distributed(config, d)?;
    }
    let mut config = config.clone();
    config.run.tag = run_tag(&config.run.tag, dist)?;
    let config = &config;
    let paths = RunFolder::of(config);
    let writes = primary(dist);
    let _guard = writes.then(|| preflight::claim(config, &paths)).transpose()?;
    let mut logged = Logged::open(writes.then_some(paths.train_log.as_path()), config, observer)?;
    let observer = &mut logged;
    let gpu = match dist.map(Dist::device) {
        Some(tch::Device::Cuda(index)) => index,
        _ => config.run.gpu,
    };
    let mut setup = Setup::new(&config.data, config.run.seed, gpu, config.run.workers, observer)?;
    if config.run.deterministic {
        crate::device::set_deterministic();
    }
    tch::manual_seed(config.run.seed as i64);
    let mut learner = Learner::new_in(config, &setup, SgdKernel::Fused, dist)?;
    if writes {
        preflight::check_space(&paths, &learner.model)?;
    }
    let mut meta = learner.resume(config, &paths, writes, observer)?;
    let norm = setup.dataset.normalisation;
    let Learner { model, opt, .. } = &mut learner;
    if let SaveStart::EvaluateOnly { epoch } = read_save(config, model, opt, &mut meta, norm, observer)? {
        return evaluate_only(config, &setup, &learner.model, epoch, observer);
    }
    if let Some(dist) = dist {
        ranks::check_same_start(dist, &meta, &paths.checkpoint)?;
    }
    if meta.epoch >= config.optim.epochs {
        return finished_summary(config, &paths, &meta, &learner, &setup, writes, observer);
    }
    keep_normalisation(&mut setup, &mut meta, observer);
    let aug = Arc::new(augmenter(config));
    let (method, pretrained) = prepare_method(config, &setup, &aug, &paths, meta.epoch > 0, dist, observer)?;
    if let Some(dist) = dist {
        learner.reducer = Some(Reducer::new(dist, &learner.model.vs, DEFAULT_BUCKET_BYTES)?);
    }
    let place = setup.placement(config.model.memory_format == MemoryFormat::ChannelsLast);
    let eval_sets = EvalSets::new(config, &setup, place)?.shared_by(dist);
    let trainer = Trainer { config, setup: &setup, aug, method, place, eval_sets, dist };
    let events = writes.then(|| open_events(&paths.dir, meta.epoch, observer)).transpose()?;
    let mut recorder = Recorder { paths: &paths, events, writer: Writer::default() };
    let last = trainer.epochs(&mut learner, &mut meta, &mut recorder, observer)?;
    // the last epoch's files are on disk before the run says it is done
    recorder.writer.wait()?;
    let summary = summary_of(config, &meta, last.test_top1, &learner, &setup, pretrained);
    if writes {
        report::write_summary(&paths.summary, &summary)?;
    }
    observer.note(&format!(
        "done: last test top1 {:.4}, best {:.4} (epoch {}); weights in {}",
        last.test_top1,
        meta.best_test_top1,
        meta.best_epoch,
        paths.weights.display()
    ));
    Ok(summary)
}

/// Refuses what several processes cannot train as one: a `--batch-size` that does not divide
/// among them, and `--fair-comparison`, which picks the views of a step from the counts of the
/// whole batch.
fn check_distributed(config: &TrainConfig, dist: &Dist) -> Result<(), EngineError> {
    BatchShare::new(config.optim.batch_size, dist.rank(), dist.world_size())?;
    if config.method.fair_comparison != FairComparison::Disable && dist.world_size() > 1 {
        return Err(ConfigError(format!(
            "--fair-comparison {} keeps views by the counts of the whole batch, which one process of {} does not \
             see; run it in one process",
            config.method.fair_comparison,
            dist.world_size()
        ))
        .into());
    }
    Ok(())
}

/// The run's tag ([`resolve_tag`]); with several processes, rank 0's (an untagged run is named
/// by the time, which the ranks must share).
fn run_tag(tag: &str, dist: Option<&Dist>) -> Result<String, EngineError> {
    let tag = resolve_tag(tag);
    match dist {
        Some(d) => Ok(d.broadcast_text(&tag)?),
        None => Ok(tag),
    }
}

/// What follows an epoch in this session of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    /// The next epoch.
    NextEpoch,
    /// Nothing: `--stop-after` ends the session here, before the run's last epoch.
    StopAfter,
    /// Nothing: it is the run's last epoch.
    LastEpoch,
}

/// What follows epoch `epoch` of the run `config` describes.
fn after_epoch(config: &TrainConfig, epoch: usize) -> Then {
    if epoch >= config.optim.epochs {
        Then::LastEpoch
    } else if config.run.stop_after.is_some_and(|n| epoch >= n) {
        Then::StopAfter
    } else {
        Then::NextEpoch
    }
}

/// Where the user's stop (Ctrl-C, SIGTERM) found the run.
enum Stop {
    /// In an epoch's training or evaluation: where the epoch stands, to be saved.
    InEpoch(PartialEpoch),
    /// After epoch N, which is recorded (its files may still be being written).
    AfterEpoch(usize),
}

/// Normalises the run's images as it started to (recorded in `meta`), saying so where that is
/// not what the dataset and `--mean`/`--std` give today.
fn keep_normalisation(setup: &mut Setup, meta: &mut ResumeMeta, progress: &mut dyn Progress) {
    let norm = meta.keep_normalisation(setup.dataset.normalisation);
    if norm != setup.dataset.normalisation {
        progress.note(&format!(
            "the run keeps the normalisation it started with: mean {:?}, std {:?}",
            norm.mean, norm.std
        ));
        setup.dataset.normalisation = norm;
    }
}

/// The summary of a run that stands at `meta`, whose last test top-1 is `last_test_top1`.
fn summary_of(
    config: &TrainConfig,
    meta: &ResumeMeta,
    last_test_top1: f64,
    learner: &Learner,
    setup: &Setup,
    pretrained: Option<PathBuf>,
) -> Summary {
    Summary {
        last_test_top1,
        best_test_top1: meta.best_test_top1,
        best_epoch: meta.best_epoch,
        epochs: meta.epoch,
        total_seconds: meta.seconds,
        parameters: learner.model.num_parameters(),
        device: format!("{:?}", setup.device),
        pretrained,
        config: config.clone(),
    }
}

/// The summary of a run that was complete when this session started (saying so): its
/// `summary.json`, or, when a crash came between the last checkpoint and the summary, the
/// summary rebuilt from the checkpoint (and written).
fn finished_summary(
    config: &TrainConfig,
    paths: &RunFolder,
    meta: &ResumeMeta,
    learner: &Learner,
    setup: &Setup,
    writes: bool,
    progress: &mut dyn Progress,
) -> Result<Summary, EngineError> {
    progress.note(&format!(
        "{} is complete ({} epochs); evaluate it with --only-eval or pass --restart to train again",
        paths.dir.display(),
        meta.epoch
    ));
    if paths.summary.is_file() {
        return Ok(report::read_summary(&paths.summary)?);
    }
    let last = report::read_metrics(&paths.metrics)?;
    let last_test_top1 = last.last().map_or(f64::NAN, |metrics| metrics.test_top1);
    let pretrained = config.needs_pretrained().then(|| pretrained_path(config));
    let summary = summary_of(config, meta, last_test_top1, learner, setup, pretrained);
    if writes {
        report::write_summary(&paths.summary, &summary)?;
    }
    Ok(summary)
}

/// The model being trained, its optimizer, its learning-rate schedule, how its steps run
/// (eagerly or as CUDA graph replays) and, with several processes, the Reducer that averages
/// its gradients over them.
pub(super) struct Learner {
    pub(super) model: Model,
    pub(super) opt: Sgd,
    pub(super) schedule: Schedule,
    pub(super) stepper: Stepper,
    pub(super) reducer: Option<Reducer>,
}

impl Learner {
    /// A freshly initialised model (from libtorch's generator, seeded by `--seed`) with SGD
    /// computed by `kernel` (training's is the fused one) and the reference's schedule.
    pub(super) fn new(config: &TrainConfig, setup: &Setup, kernel: SgdKernel) -> Result<Self, EngineError> {
        Learner::new_in(config, setup, kernel, None)
    }

    /// [`Learner::new`] for one of the processes of `dist`: with `--sync-bn`, its BatchNorm
    /// layers normalise across them; its steps run eagerly (a CUDA graph cannot hold the
    /// Reducer's hooks). The Reducer itself is made once the weights are loaded.
    pub(super) fn new_in(
        config: &TrainConfig,
        setup: &Setup,
        kernel: SgdKernel,
        dist: Option<&Dist>,
    ) -> Result<Self, EngineError> {
        let o = &config.optim;
        let (classes, image, device) = (setup.num_classes(), setup.image_size(), setup.device);
        let model = match (dist, &config.model.model) {
            (Some(d), ModelSpec::Builtin(name)) if config.model.sync_bn => {
                Model::new_synced(*name, classes, device, SyncBatchNorm::new(d.clone()))
            }
            (_, spec) => Model::build_for(spec, classes, image, device)?,
        }
        .with_precision(config.model.precision);
        let opt = Sgd::new(&model.vs, 0.9, o.weight_decay, o.nesterov).with_kernel(kernel);
        // --fair-comparison keeps a different number of views each step (and reads it back)
        let static_step = config.method.fair_comparison == FairComparison::Disable;
        let graphs = match (dist, config.run.cuda_graphs) {
            (Some(_), CudaGraphs::On) => {
                let reason = "several processes average the gradients from hooks in backward, which this graph \
                              does not capture"
                    .to_string();
                return Err(EngineError::Step(NoGraph { reason }.into()));
            }
            (Some(_), _) => CudaGraphs::Off,
            (None, graphs) => graphs,
        };
        let stepper =
            Stepper::new(graphs, setup.device, opt.kernel(), static_step).map_err(|e| EngineError::Step(e.into()))?;
        let schedule = Schedule {
            lr: o.lr,
            warm_epoch: o.warm_epoch,
            multiplier: o.warm_multiplier,
            epochs: o.epochs,
            cosine: o.cosine,
            warm: o.warm,
        };
        Ok(Learner { model, opt, schedule, stepper, reducer: None })
    }

    /// One step of `method` on `step`, as training takes it, adding to `sums`; `timer` (the
    /// benchmark's clock; training passes none) is told as each phase ends.
    pub(super) fn step(
        &mut self,
        method: &Method,
        step: &Step,
        sums: &mut StepSums,
        timer: Option<&mut dyn StepTimer>,
    ) -> Result<Stepped, EngineError> {
        let Learner { model, opt, stepper, reducer, .. } = self;
        Ok(stepper.step(method, &mut Net { model, opt, reducer: reducer.as_mut() }, step, sums, timer)?)
    }

    /// Where the run stands: fresh, or resumed from the checkpoint of a run with the same
    /// configuration (unless `--restart`). `metrics.jsonl` is made to hold exactly the epochs
    /// the checkpoint covers, their lines kept byte for byte. Only the process that `writes`
    /// the run's files changes them.
    fn resume(
        &mut self,
        config: &TrainConfig,
        paths: &RunFolder,
        writes: bool,
        progress: &mut dyn Progress,
    ) -> Result<ResumeMeta, EngineError> {
        let mut meta = ResumeMeta::fresh(config);
        if config.run.restart && writes {
            // a later rerun without --restart must not resume the run this one replaces
            for old in [&paths.checkpoint, &paths.summary] {
                let _ = std::fs::remove_file(old);
            }
        }
        if !config.run.restart && paths.checkpoint.exists() {
            let bad = |source| EngineError::BadCheckpoint {
                path: paths.checkpoint.clone(),
                weights: paths.weights.clone(),
                source: Box::new(source),
            };
            let saved = Checkpoint::read(&paths.checkpoint).map_err(bad)?;
            if !config.same_identity(&saved.meta.config) {
                return Err(EngineError::OtherRun { path: paths.checkpoint.clone() });
            }
            meta = saved.restore(&paths.checkpoint, &mut self.model, &mut self.opt)?;
            let at = match &meta.partial {
                Some(p) => format!("in epoch {} after {} batches", p.epoch, p.batches),
                None => format!("after epoch {}", meta.epoch),
            };
            if meta.epoch < config.optim.epochs {
                progress.note(&format!("resuming {} {at}", paths.dir.display()));
            }
        }
        if writes {
            report::keep_epochs(&paths.metrics, meta.epoch, meta.metrics_line.as_deref())?;
        }
        Ok(meta)
    }
}

/// Where a session of the run records its epochs: the run folder, the TensorBoard events, and
/// the writer of weights, checkpoints and metrics (in the background, while training goes on).
/// `events` is `None` in a process that does not write the run's files (ranks other than 0):
/// it records nothing, and only keeps `meta` as rank 0 does.
struct Recorder<'a> {
    paths: &'a RunFolder,
    events: Option<EventWriter>,
    writer: Writer,
}

impl Recorder<'_> {
    /// Records a finished epoch of `learner`: its TensorBoard events, then the weights, the best
    /// weights when the test accuracy improved, the checkpoint and the metrics line, written in
    /// the background from a copy of the state while the next epoch trains.
    fn epoch(&mut self, learner: &Learner, record: &EpochRecord, meta: &mut ResumeMeta) -> Result<(), EngineError> {
        let (metrics, paths) = (record.metrics, self.paths);
        let best = metrics.test_top1 > meta.best_test_top1;
        if best {
            meta.best_test_top1 = metrics.test_top1;
            meta.best_epoch = metrics.epoch;
        }
        meta.epoch = metrics.epoch;
        meta.seconds += metrics.seconds;
        meta.metrics_line = Some(report::metrics_line(metrics));
        let Some(events) = &mut self.events else { return Ok(()) };
        // a full disk here stops the run like a failed checkpoint write: the last one is intact
        events.epoch(record).map_err(|e| EngineError::Record {
            epoch: metrics.epoch,
            checkpoint: paths.checkpoint.clone(),
            source: Box::new(e.into()),
        })?;
        self.writer.wait()?;
        learner.model.set_batches_tracked(meta.steps);
        self.writer.submit(EpochFiles {
            snapshot: Snapshot::take(&learner.model, &learner.opt),
            meta: meta.clone(),
            checkpoint: paths.checkpoint.clone(),
            weights: Some(paths.weights.clone()),
            best: best.then(|| paths.best.clone()),
            metrics: Some(paths.metrics.clone()),
        })
    }

    /// Saves where the user's `stop` found `learner` (an epoch in progress goes into the
    /// checkpoint; a recorded one is waited for) and returns the error that ends the run,
    /// saying how to resume.
    fn stopped(
        &mut self,
        learner: &Learner,
        meta: &ResumeMeta,
        stop: Stop,
        progress: &mut dyn Progress,
    ) -> EngineError {
        let checkpoint = self.paths.checkpoint.display();
        if self.events.is_none() {
            return EngineError::Interrupted(format!("(rank 0 saves the run in {checkpoint})"));
        }
        let saved = match stop {
            Stop::AfterEpoch(epoch) => self.writer.wait().map(|()| {
                format!("after epoch {epoch}, which is recorded in {checkpoint}: rerun the same command to resume")
            }),
            Stop::InEpoch(p) => {
                progress.note("stopping: saving a checkpoint of the epoch in progress (signal again to quit at once)");
                let at = format!("in epoch {} after {} batches", p.epoch, p.batches);
                self.save_partial(learner, meta, p)
                    .map(|()| format!("{at}; saved in {checkpoint}: rerun the same command to resume from there"))
            }
        };
        match saved {
            Ok(how) => EngineError::Interrupted(how),
            Err(e) => e,
        }
    }

    /// Writes the checkpoint of `learner` in the epoch `p` stands in, and waits for it.
    fn save_partial(&mut self, learner: &Learner, meta: &ResumeMeta, p: PartialEpoch) -> Result<(), EngineError> {
        self.writer.wait()?;
        learner.model.set_batches_tracked(meta.steps + p.steps);
        self.writer.submit(EpochFiles {
            snapshot: Snapshot::take(&learner.model, &learner.opt),
            meta: ResumeMeta { partial: Some(p), ..meta.clone() },
            checkpoint: self.paths.checkpoint.clone(),
            weights: None,
            best: None,
            metrics: None,
        })?;
        self.writer.wait()
    }
}

/// The augmentation of the run, `--prob 1.0` included: its batches hold original views only,
/// but its detection pass (`--gmm`) scores `--aug` views, as the reference's data.py inserts
/// RandAugment (or the `--aug` op) into the augmented view whatever `--prob` is.
pub fn augmenter(config: &TrainConfig) -> Augmenter {
    let a = &config.aug;
    Augmenter::new(a.aug, a.n, a.m, a.cutout, config.data.dataset).with_crop_padding(a.crop_padding)
}

/// The method of the run: loads the pretrained baseline when needed and, with `--gmm`, runs the
/// detection pass (or, when a run is resumed, reloads its `gmm.json`). Returns the method and
/// the file of the baseline it loaded.
fn prepare_method(
    config: &TrainConfig,
    setup: &Setup,
    aug: &Arc<Augmenter>,
    paths: &RunFolder,
    resuming: bool,
    dist: Option<&Dist>,
    progress: &mut dyn Progress,
) -> Result<(Method, Option<PathBuf>), EngineError> {
    if !config.needs_pretrained() {
        return Ok((Method::new(&config.method, config.aug.prob, None, None), None));
    }
    let r = &config.run;
    let path = pretrained_path(config);
    progress.note(&format!("pretrained baseline: {}", path.display()));
    // the scorer and teacher run in fp32 whatever --precision says, as the reference's do
    let (classes, image) = (setup.num_classes(), setup.image_size());
    let scorer =
        load_pretrained(&path, &config.model.model, config.data.dataset, (classes, image), &r.tag, setup.device)?;
    let gmm = if !config.method.gmm {
        None
    } else if resuming && paths.gmm.is_file() {
        Some(Gmm::load(&paths.gmm)?)
    } else {
        let started = Instant::now();
        let det = setup.detect(&scorer, aug, r.seed, config.optim.batch_size, dist, progress)?;
        progress.note(&format!("detection pass ({:.1}s):\n{}", started.elapsed().as_secs_f64(), det.report()));
        if let Some(w) = det.diagnosis().warning() {
            progress.note(&format!("warning: {w}"));
        }
        if primary(dist) {
            det.gmm.save(&paths.gmm)?;
            det.write_csv(&paths.losses)?;
        }
        Some(det.gmm)
    };
    Ok((Method::new(&config.method, config.aug.prob, Some(scorer), gmm), Some(path)))
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
    /// How the steps ran (at the epoch's end).
    mode: StepMode,
}

impl EpochTraining {
    /// The epoch `epoch` stopped after all its `batches` batches (in evaluation).
    fn partial(&self, epoch: usize, batches: usize) -> PartialEpoch {
        PartialEpoch {
            epoch,
            batches,
            steps: self.steps,
            sums: self.sums.state(),
            train_seconds: self.seconds,
            data_wait_seconds: self.data_wait.as_secs_f64(),
        }
    }
}

/// Where an epoch of training starts.
struct EpochStart {
    epoch: usize,
    lr: f64,
    /// Its batches from the first one still to train on (made ahead while the previous epoch
    /// was evaluated).
    loader: Loader,
    /// Where a stopped run left the epoch.
    resume: Option<PartialEpoch>,
}

/// How the training part of an epoch ended.
enum EpochEnd {
    Trained(EpochTraining),
    /// The user asked to stop: where the epoch stands.
    Stopped(PartialEpoch),
}

/// The seed of libtorch's generator for batch `batch` of epoch `epoch`. Seeding each step makes
/// its random draws (`--weighting random|uniform`) independent of the steps before it, so a run
/// resumed mid-epoch draws what an uninterrupted one draws.
pub(super) fn step_seed(seed: u64, epoch: usize, batch: usize) -> i64 {
    (seed as i64).wrapping_mul(1_000_003).wrapping_add(epoch as i64).wrapping_mul(1_000_003).wrapping_add(batch as i64)
}

/// What every epoch of training reads: the configuration, the data, the augmentation, the
/// method, where batches go and the processes training together, if several.
struct Trainer<'a> {
    config: &'a TrainConfig,
    setup: &'a Setup,
    aug: Arc<Augmenter>,
    method: Method,
    place: Placement,
    eval_sets: EvalSets<'a>,
    dist: Option<&'a Dist>,
}

impl Trainer<'_> {
    /// The epochs of this session, from where `meta` stands: each one trained at the
    /// schedule's learning rate, evaluated and recorded, until the run's last epoch or
    /// `--stop-after`; returns the metrics of the last one. A stop asked by the user ends the
    /// run with where it stands saved.
    fn epochs(
        &self,
        learner: &mut Learner,
        meta: &mut ResumeMeta,
        recorder: &mut Recorder,
        observer: &mut Logged,
    ) -> Result<EpochMetrics, EngineError> {
        let (mut epoch, mut partial, mut next) = (meta.epoch, meta.partial.take(), None);
        loop {
            epoch += 1;
            let started = Instant::now();
            let lr = learner.schedule.lr_at(epoch);
            let then = after_epoch(self.config, epoch);
            let resume = partial.take();
            let loader = next.take().unwrap_or_else(|| self.loader(epoch, resume.as_ref().map_or(0, |p| p.batches)));
            let start = EpochStart { epoch, lr, loader, resume };
            let mut trained = match self.epoch(learner, start, &mut recorder.writer, observer)? {
                EpochEnd::Trained(t) => t,
                EpochEnd::Stopped(p) => return Err(recorder.stopped(learner, meta, Stop::InEpoch(p), observer)),
            };
            if let (Some(dist), Some(reducer)) = (self.dist, &learner.reducer) {
                // the epoch's sums over every rank's part; every rank evaluates rank 0's model
                trained.sums.sum_over_ranks(dist)?;
                reducer.sync_buffers()?;
            }
            // the next epoch's first batches are made while this one is evaluated and recorded
            next = (then == Then::NextEpoch).then(|| self.loader(epoch + 1, 0));
            let eval_started = Instant::now();
            let Some(eval) = self.eval_sets.evaluate_until(&learner.model, &|| observer.stop_requested())? else {
                let stop = Stop::InEpoch(trained.partial(epoch, self.batches()));
                return Err(recorder.stopped(learner, meta, stop, observer));
            };
            self.setup.report_skipped(observer);
            meta.steps += trained.steps;
            let metrics = epoch_metrics(epoch, lr, &trained, &eval, eval_started.elapsed(), started.elapsed());
            let views = trained.shown.map(|i| self.views_of(epoch, i)).transpose()?;
            let stats = trained.sums.epoch_stats();
            recorder.epoch(
                learner,
                &EpochRecord { metrics: &metrics, stats: stats.as_ref(), views: views.as_ref() },
                meta,
            )?;
            observer.epoch_end(&metrics, self.config.optim.epochs);
            observer.check()?;
            let stop = stop_agreed(self.dist, observer.stop_requested())?;
            match then {
                Then::NextEpoch if stop => {
                    return Err(recorder.stopped(learner, meta, Stop::AfterEpoch(epoch), observer));
                }
                Then::NextEpoch => {}
                Then::StopAfter => {
                    observer.note(&format!(
                        "stopped after epoch {epoch} (--stop-after); rerun the command without it to resume"
                    ));
                    return Ok(metrics);
                }
                Then::LastEpoch => return Ok(metrics),
            }
        }
    }

    /// The batches of an epoch's plan (`shuffle` and `seed` do not change their number).
    fn plan(&self, epoch: usize) -> EpochPlan {
        EpochPlan {
            seed: self.config.run.seed,
            epoch: epoch as u64,
            batch_size: self.config.optim.batch_size,
            shuffle: true,
            drop_last: true,
            views: Views::Mixed { prob: self.config.aug.prob },
            part: self.dist.map_or(Part::WHOLE, |d| Part { rank: d.rank(), world_size: d.world_size() }),
        }
    }

    /// Number of batches of an epoch.
    fn batches(&self) -> usize {
        self.plan(1).batches(self.setup.train.len()).len()
    }

    /// The loader of epoch `epoch`'s batches from batch `first` on; it starts making them at once.
    fn loader(&self, epoch: usize, first: usize) -> Loader {
        self.setup.loader_from(self.plan(epoch), &self.aug, first)
    }

    /// Trains epoch `start.epoch` at learning rate `start.lr`, from where `start.resume` left
    /// it: every batch of `start.loader`, original and augmented views, through one step of the
    /// method. The running loss is read every [`STATUS_EVERY`] steps, for the NaN check and the
    /// progress status; there too a failed background write of the previous epoch's files stops
    /// the run. Between two steps, a stop asked by the user ends the epoch early with where it
    /// stands.
    fn epoch(
        &self,
        learner: &mut Learner,
        start: EpochStart,
        writer: &mut Writer,
        progress: &mut dyn Progress,
    ) -> Result<EpochEnd, EngineError> {
        let started = Instant::now();
        let (config, batch_size, device) = (self.config, self.config.optim.batch_size, self.setup.device);
        let EpochStart { epoch, lr, mut loader, resume } = start;
        let first = resume.as_ref().map_or(0, |p| p.batches);
        if loader.num_batches == 0 {
            return Err(EngineError::TooFewImages { images: self.setup.train.len(), batch_size });
        }
        let (mut sums, mut steps, before, waited) = match &resume {
            // the saved sums are every rank's: rank 0 carries them on, the others add to them
            Some(p) if primary(self.dist) => {
                (StepSums::from_state(&p.sums, device), p.steps, p.train_seconds, p.data_wait_seconds)
            }
            Some(p) => (StepSums::new(device), p.steps, p.train_seconds, p.data_wait_seconds),
            None => (StepSums::new(device), 0, 0.0, 0.0),
        };
        let (mut done, mut status, mut shown) = (first, String::new(), None);
        let seconds = |started: Instant| before + started.elapsed().as_secs_f64();
        let what = format!("train {epoch:>4}/{}", config.optim.epochs);
        progress.start(&what, Some(loader.num_batches as u64), done as u64, Unit::Steps);
        while done < loader.num_batches {
            if stop_agreed(self.dist, progress.stop_requested())? {
                progress.finish();
                return Ok(EpochEnd::Stopped(PartialEpoch {
                    epoch,
                    batches: done,
                    steps,
                    sums: self.sums_over_ranks(&sums)?,
                    train_seconds: seconds(started),
                    data_wait_seconds: waited + loader.wait.as_secs_f64(),
                }));
            }
            let Some(batch) = loader.try_next_batch().inspect_err(|_| progress.finish())? else { break };
            if batch.is_empty() {
                loader.recycle(batch); // every image of it left out (--on-bad-image skip)
                done += 1;
                continue;
            }
            let (x, y) = batch.upload(self.place);
            let seed = self.step_seed(epoch, done);
            let n_ori = batch.n_ori as i64;
            let batch_part = match self.dist {
                Some(d) => StepBatch::part_of(x, y, n_ori, batch.whole, d.world_size()),
                None => StepBatch::whole(x, y, n_ori),
            };
            let step = Step { batch: batch_part, lr, seed };
            shown = batch.indices.first().copied();
            loader.recycle(batch);
            if learner.step(&self.method, &step, &mut sums, None)? == Stepped::Updated {
                steps += 1;
            }
            if let Some(note) = learner.stepper.take_note() {
                progress.note(&note);
            }
            done += 1;
            crate::io::test_point("step");
            if done % STATUS_EVERY == 0 || done == loader.num_batches {
                writer.poll()?;
                let loss = sums.loss();
                if loss.is_nan() {
                    progress.finish();
                    return Err(EngineError::NotANumber { epoch, step: Some(done) });
                }
                let rate = sums.seen as f64 / seconds(started);
                status = format!("loss {loss:.4} top1 {:.4} lr {lr:.6} {rate:.0} img/s", sums.top1());
            }
            progress.advance(done as u64, &status);
        }
        crate::device::synchronize(device);
        progress.finish();
        if sums.loss().is_nan() {
            return Err(EngineError::NotANumber { epoch, step: None });
        }
        let data_wait = Duration::from_secs_f64(waited) + loader.wait;
        let mode = learner.stepper.mode();
        Ok(EpochEnd::Trained(EpochTraining { sums, steps, seconds: seconds(started), data_wait, shown, mode }))
    }

    /// The seed of step `batch` of epoch `epoch` ([`step_seed`]); with several processes, each
    /// rank's own (rank 0's is one process's), so that the random draws of a step
    /// (`--weighting random|uniform`, shake-shake) are independent across the ranks' parts.
    fn step_seed(&self, epoch: usize, batch: usize) -> i64 {
        let seed = step_seed(self.config.run.seed, epoch, batch);
        let rank = self.dist.map_or(0, Dist::rank) as i64;
        seed.wrapping_add(rank.wrapping_mul(0x9E37_79B9))
    }

    /// The epoch's sums so far over every rank (a collective), as a checkpoint keeps them.
    fn sums_over_ranks(&self, sums: &StepSums) -> Result<crate::method::SumsState, EngineError> {
        match self.dist {
            Some(d) => Ok(sums.state().summed_over_ranks(d)?),
            None => Ok(sums.state()),
        }
    }

    /// The original and augmented view of training sample `index` in epoch `epoch`, made again
    /// from their seeded draws.
    fn views_of(&self, epoch: usize, index: usize) -> Result<SampleViews, EngineError> {
        let set = &self.setup.train;
        let (height, width) = set.view_size();
        let image = |original| -> Result<RgbImage, EngineError> {
            let drawn = (self.config.run.seed, epoch as u64);
            let (pixels, _) = set.shown_view(&self.aug, self.place.norm, drawn, index, original)?;
            Ok(RgbImage { height, width, pixels })
        };
        Ok(SampleViews { index, original: image(true)?, augmented: image(false)? })
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
        step_mode: Some(t.mode),
        gmm: t.sums.gmm_metrics(),
        da: eval.da,
    }
}
