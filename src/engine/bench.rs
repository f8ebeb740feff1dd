//! The benchmarks: augmentation pairs per second on the path training runs (uint8 views made
//! in parallel into the batch buffer), and training throughput of a training configuration,
//! through training's own step: of the step alone (data already on the device), and of the
//! whole loop (data pipeline, upload, scorer, step, optimizer, the step's sums, then an
//! evaluation and a checkpoint, as an epoch ends) with the share of its time in each phase
//! (the step's timed by its [`StepTimer`] hooks), so that the next bottleneck shows.

use super::checkpoint::{self, ResumeMeta};
use super::train::{augmenter, step_seed, Learner};
use super::{evaluate_split, EngineError, Setup};
use crate::augment::Augmenter;
use crate::config::{ConfigError, CudaGraphs, DataConfig, MemoryFormat, MethodConfig, SgdKernel, TrainConfig};
use crate::data::{synthetic_set, Dataset, ImageSet, Normalisation};
use crate::device::synchronize;
use crate::dist::{BatchShare, Dist, Reducer, DEFAULT_BUCKET_BYTES};
use crate::method::graphed::WARMUP_STEPS;
use crate::method::{Gmm, Method, Step, StepBatch, StepPhase, StepSums, StepTimer, Stepped};
use crate::model::Model;
use crate::pipeline::{assemble, Batch, EpochPlan, Part, Placement, Upload, Views};
use crate::progress::Progress;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tch::{Device, Kind, Tensor};

/// Pairs (original and augmented view) per second that `threads` workers make from the images
/// of `set` with `aug`, in batches of `batch_size`, measured for `seconds` after one warm-up
/// batch: the batch assembly that training runs, uint8 views into the reused batch buffer.
pub fn bench_augment(
    set: &ImageSet,
    aug: &Augmenter,
    threads: usize,
    seconds: f64,
    batch_size: usize,
) -> Result<f64, EngineError> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(EngineError::Workers)?;
    let plan = EpochPlan {
        seed: 0,
        epoch: 1,
        batch_size,
        shuffle: false,
        drop_last: false,
        views: Views::Both,
        part: Part::WHOLE,
    };
    let mut batch = Batch::default();
    let mut make = |start: usize| {
        let indices: Vec<usize> = (start..start + batch_size).map(|i| i % set.len()).collect();
        pool.install(|| assemble(set, &indices, &plan, aug, &mut batch));
    };
    make(0);
    let (t, mut pairs) = (Instant::now(), 0usize);
    while t.elapsed().as_secs_f64() < seconds {
        make(pairs + batch_size);
        pairs += batch_size;
    }
    Ok(pairs as f64 / t.elapsed().as_secs_f64())
}

/// What only the benchmark has, beside the training configuration it measures.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Timed steps of each measurement.
    pub steps: usize,
    /// Untimed steps before each measurement (cuDNN autotuning, allocator warm-up).
    pub warmup: usize,
    /// Test images evaluated at the end of the loop: with `synthetic`, that many generated ones
    /// (default 10000); with the dataset, a class-stratified subset of its test split (default:
    /// the configuration's `--test-size`, or all).
    pub eval_images: Option<usize>,
    /// How SGD updates the parameters (`--optimizer`; training's is the fused step).
    pub optimizer: SgdKernel,
    /// Generated 32x32 images instead of the configuration's dataset (the pipeline still
    /// augments them).
    pub synthetic: bool,
    /// The checkpoint file the loop writes at its end (and the command removes).
    pub checkpoint: PathBuf,
}

impl BenchOptions {
    /// Checks the benchmark's own values (the configuration's are [`TrainConfig::validate`]'s);
    /// the message names the flag.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.steps == 0 {
            return Err(ConfigError("--steps must be at least 1".into()));
        }
        if self.eval_images == Some(0) {
            return Err(ConfigError("--eval-images must be at least 1".into()));
        }
        Ok(())
    }

    /// Untimed steps before each measurement: `warmup`, and with CUDA graphs at least the
    /// eager steps and the capture, so that only replays are timed.
    fn warmup(&self, cuda_graphs: CudaGraphs) -> usize {
        match cuda_graphs {
            CudaGraphs::Off => self.warmup,
            _ => self.warmup.max(WARMUP_STEPS + 1),
        }
    }
}

/// Seconds of each phase of the training loop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Phases {
    /// Waiting for the data pipeline (augmentation on the CPU).
    pub data_wait: f64,
    /// Transfer to the device and normalisation.
    pub upload: f64,
    /// The pretrained scorer and the GMM posterior (`--gmm`).
    pub scorer: f64,
    /// Forward, loss and backward (with a CUDA graph: the scorer, step and optimizer, one replay).
    pub step: f64,
    /// The SGD update.
    pub optimizer: f64,
    /// Adding each step's results to the epoch's sums (top-k counts, per-sample terms, GMM sums).
    pub account: f64,
    /// The test-set evaluation at the end of the epoch.
    pub evaluation: f64,
    /// Writing the checkpoint at the end of the epoch.
    pub checkpoint: f64,
}

impl Phases {
    /// The phases by name, in loop order.
    pub fn named(&self) -> [(&'static str, f64); 8] {
        [
            ("data wait", self.data_wait),
            ("upload", self.upload),
            ("scorer", self.scorer),
            ("step", self.step),
            ("optimizer", self.optimizer),
            ("account", self.account),
            ("evaluation", self.evaluation),
            ("checkpoint", self.checkpoint),
        ]
    }

    /// The seconds of phase `phase` of a training step.
    fn of_step(&mut self, phase: StepPhase) -> &mut f64 {
        match phase {
            StepPhase::Scorer => &mut self.scorer,
            StepPhase::Step => &mut self.step,
            StepPhase::Optimizer => &mut self.optimizer,
            StepPhase::Account => &mut self.account,
        }
    }

    /// The sum of all phases.
    pub fn total(&self) -> f64 {
        self.named().iter().map(|(_, s)| s).sum()
    }

    /// Each phase as a fraction of the total.
    pub fn shares(&self) -> Phases {
        let t = self.total().max(f64::MIN_POSITIVE);
        Phases {
            data_wait: self.data_wait / t,
            upload: self.upload / t,
            scorer: self.scorer / t,
            step: self.step / t,
            optimizer: self.optimizer / t,
            account: self.account / t,
            evaluation: self.evaluation / t,
            checkpoint: self.checkpoint / t,
        }
    }
}

/// Under a launcher: what averaging the gradients over the processes (the Reducer's all-reduce
/// in backward) costs training's step alone, on this rank's part of the batch.
#[derive(Debug, Clone, Serialize)]
pub struct AllReduceShare {
    /// The number of processes.
    pub ranks: usize,
    /// Images per second of this rank's step with its gradients kept local.
    pub local_images_per_sec: f64,
    /// Images per second of this rank's step with its gradients averaged over the ranks.
    pub averaged_images_per_sec: f64,
    /// The share of an averaged step's time that averaging adds: `1 - averaged / local`.
    pub share: f64,
}

/// What `bench train` measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchTrainResult {
    pub model: String,
    pub device: String,
    pub precision: String,
    pub memory_format: String,
    pub optimizer: String,
    /// How the loop's steps ran: `eager`, or `cuda-graph` (then the scorer, step and optimizer
    /// phases are one graph, timed under `step`).
    pub step_mode: String,
    pub batch_size: usize,
    pub prob: f64,
    pub gmm: bool,
    /// Images per second of training's step with plain cross-entropy (no scorer) on a batch
    /// already on the device: forward, backward, SGD and the step's sums.
    pub step_images_per_sec: f64,
    /// Training images per second of the whole loop: the timed steps with their data pipeline,
    /// then one evaluation and one checkpoint, with no synchronisation between phases.
    pub loop_images_per_sec: f64,
    /// Training images of the timed loop.
    pub loop_images: usize,
    /// Evaluated test images at its end.
    pub eval_images: usize,
    /// Seconds in each phase when the loop runs again with the device synchronised after each
    /// phase (which a breakdown needs; its total is a little longer than the loop's).
    pub seconds: Phases,
    /// The same as fractions of their total.
    pub share: Phases,
    /// Under a launcher: the gradient all-reduce's share of a step (the loop above is this
    /// rank's alone, on the whole batch).
    pub all_reduce: Option<AllReduceShare>,
}

/// Runs the training benchmark of `config` (its model, data, augmentation, method, precision,
/// memory format, batch size and CUDA-graph setting) with the benchmark's `bench` options. The
/// steps are training's own ([`Learner::step`]), eager or replayed alike. As one of the
/// processes of `dist`, it also measures the gradient all-reduce's share of the step.
pub fn bench_train(
    config: &TrainConfig,
    bench: &BenchOptions,
    dist: Option<&Dist>,
    progress: &mut dyn Progress,
) -> Result<BenchTrainResult, EngineError> {
    config.validate()?;
    bench.check()?;
    let setup = bench_setup(config, bench, dist, progress)?;
    let all_reduce = dist.map(|d| all_reduce_share(config, bench, &setup, d)).transpose()?;
    let (step_images_per_sec, plain_note) = step_alone(config, bench, &setup)?;
    let mut timed = LoopBench::new(config, bench, setup)?;
    let (images, wall, _) = timed.run(false)?;
    let (_, _, seconds) = timed.run(true)?;
    let mut notes: Vec<String> = [plain_note, timed.learner.stepper.take_note()].into_iter().flatten().collect();
    notes.dedup();
    for note in notes {
        progress.note(&note);
    }
    Ok(BenchTrainResult {
        model: config.model.model.to_string(),
        device: format!("{:?}", timed.setup.device),
        precision: config.model.precision.to_string(),
        memory_format: config.model.memory_format.to_string(),
        optimizer: bench.optimizer.to_string(),
        step_mode: timed.learner.stepper.mode().name().into(),
        batch_size: config.optim.batch_size,
        prob: config.aug.prob,
        gmm: config.method.gmm,
        step_images_per_sec,
        loop_images_per_sec: images as f64 / wall.as_secs_f64(),
        loop_images: images,
        eval_images: timed.setup.test.len(),
        seconds,
        share: seconds.shares(),
        all_reduce,
    })
}

/// The device, data and workers of the benchmark: the configuration's dataset (its test split
/// cut to `eval_images`), or generated images, as many as the loop's steps take.
fn bench_setup(
    config: &TrainConfig,
    bench: &BenchOptions,
    dist: Option<&Dist>,
    progress: &mut dyn Progress,
) -> Result<Setup, EngineError> {
    let mut r = config.run.clone();
    if let Some(Device::Cuda(gpu)) = dist.map(Dist::device) {
        r.gpu = gpu;
    }
    if !bench.synthetic {
        let data = DataConfig { test_size: bench.eval_images.or(config.data.test_size), ..config.data.clone() };
        return Setup::new(&data, r.seed, r.gpu, r.workers, progress);
    }
    let batches = bench.warmup(r.cuda_graphs) + bench.steps;
    let dataset = Dataset {
        name: "synthetic".into(),
        classes: (0..10).map(|c| c.to_string()).collect(),
        train: synthetic_set(batches * config.optim.batch_size, 0),
        test: synthetic_set(bench.eval_images.unwrap_or(10_000), 1),
        normalisation: Normalisation::CIFAR.with_overrides(config.data.mean, config.data.std),
    };
    Setup::with_dataset(dataset, r.gpu, r.workers, progress)
}

/// Images per second of the step alone: training's step with plain cross-entropy (no scorer)
/// on one random batch already on the device, after the warm-up steps; and what its stepper
/// said about the mode (a capture, a fallback).
fn step_alone(config: &TrainConfig, bench: &BenchOptions, setup: &Setup) -> Result<(f64, Option<String>), EngineError> {
    let plain = plain_config(config);
    let mut learner = Learner::new(&plain, setup, bench.optimizer)?;
    let step = random_step(&plain, setup, plain.optim.batch_size, &learner);
    let rate = timed_steps(&mut learner, &plain, bench, &step)?;
    Ok((rate, learner.stepper.take_note()))
}

/// `config` with plain cross-entropy: the step without the method's extra work.
fn plain_config(config: &TrainConfig) -> TrainConfig {
    let plain_method = MethodConfig { smooth_org: 0.0, smooth_aug: 0.0, ..TrainConfig::default().method };
    TrainConfig { method: plain_method, ..config.clone() }
}

/// A step on one random batch of `n` images already on the device (every step on the same
/// batch, with the same seed).
fn random_step(plain: &TrainConfig, setup: &Setup, n: usize, learner: &Learner) -> Step {
    let (n, [h, w], device) = (n as i64, setup.image_size(), setup.device);
    let x = Tensor::randn([n, 3, h as i64, w as i64], (Kind::Float, device));
    let channels_last = plain.model.memory_format == MemoryFormat::ChannelsLast;
    let x = if channels_last { x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]) } else { x };
    let y = Tensor::randint(setup.num_classes(), [n], (Kind::Int64, device));
    Step { batch: StepBatch::whole(x, y, n), lr: learner.schedule.lr_at(1), seed: plain.run.seed as i64 }
}

/// Images per second of `learner`'s steps on `step`, after the warm-up steps.
fn timed_steps(
    learner: &mut Learner,
    plain: &TrainConfig,
    bench: &BenchOptions,
    step: &Step,
) -> Result<f64, EngineError> {
    let method = Method::new(&plain.method, plain.aug.prob, None, None);
    let device = step.batch.x.device();
    let mut sums = StepSums::new(device);
    for _ in 0..bench.warmup(plain.run.cuda_graphs) {
        learner.step(&method, step, &mut sums, None)?;
    }
    synchronize(device);
    let started = Instant::now();
    for _ in 0..bench.steps {
        learner.step(&method, step, &mut sums, None)?;
    }
    synchronize(device);
    Ok((bench.steps as i64 * step.batch.len()) as f64 / started.elapsed().as_secs_f64())
}

/// The gradient all-reduce's share of training's step alone, as one of the processes of
/// `dist`, each on its part (`--batch-size` / N) of the batch: the step timed with its
/// gradients kept local, then averaged by the Reducer (every rank times the same steps).
fn all_reduce_share(
    config: &TrainConfig,
    bench: &BenchOptions,
    setup: &Setup,
    dist: &Dist,
) -> Result<AllReduceShare, EngineError> {
    let share = BatchShare::new(config.optim.batch_size, dist.rank(), dist.world_size())?;
    let plain = plain_config(config);
    let mut learner = Learner::new_in(&plain, setup, bench.optimizer, Some(dist))?;
    let reducer = Reducer::new(dist, &learner.model.vs, DEFAULT_BUCKET_BYTES)?;
    let step = random_step(&plain, setup, share.local_batch_size(), &learner);
    dist.barrier()?;
    let local = timed_steps(&mut learner, &plain, bench, &step)?;
    learner.reducer = Some(reducer);
    dist.barrier()?;
    let averaged = timed_steps(&mut learner, &plain, bench, &step)?;
    Ok(AllReduceShare {
        ranks: dist.world_size(),
        local_images_per_sec: local,
        averaged_images_per_sec: averaged,
        share: 1.0 - averaged / local,
    })
}

/// The method of `config` as the benchmark runs it. Where training loads the pretrained
/// baseline and fits the GMM on its detection pass, an untrained model of the same
/// architecture (fp32, as training's scorer) and a fixed mixture stand in: the work of a step
/// is the same, its outcome is not measured.
fn bench_method(config: &TrainConfig, setup: &Setup) -> Result<Method, EngineError> {
    let (classes, image, device) = (setup.num_classes(), setup.image_size(), setup.device);
    let scorer =
        config.needs_pretrained().then(|| Model::build_for(&config.model.model, classes, image, device)).transpose()?;
    let gmm = config.method.gmm.then(|| Gmm {
        weights: [0.6, 0.4],
        means: [-3.0, 0.5],
        variances: [1.0, 1.0],
        converged: true,
        iterations: 1,
        lower_bound: 0.0,
    });
    Ok(Method::new(&config.method, config.aug.prob, scorer, gmm))
}

/// Reads the clock for a breakdown: with `sync`, waits for the device at each lap so that the
/// time of a phase is the work it queued, and adds it to `phases`; without, laps are free and
/// time nothing.
struct Clock {
    device: Device,
    sync: bool,
    last: Instant,
    phases: Phases,
}

impl Clock {
    fn new(device: Device, sync: bool) -> Self {
        Clock { device, sync, last: Instant::now(), phases: Phases::default() }
    }

    /// Starts a phase now.
    fn mark(&mut self) {
        if self.sync {
            synchronize(self.device);
            self.last = Instant::now();
        }
    }

    /// Ends the phase that started at the last mark or lap, adding its seconds to the phase
    /// `to` picks.
    fn lap_into(&mut self, to: impl FnOnce(&mut Phases) -> &mut f64) {
        if self.sync {
            synchronize(self.device);
            let now = Instant::now();
            *to(&mut self.phases) += (now - self.last).as_secs_f64();
            self.last = now;
        }
    }

    /// The clock as the timer of training's step: itself when it synchronises; otherwise none,
    /// and the step runs exactly as in training.
    fn timer(&mut self) -> Option<&mut dyn StepTimer> {
        if self.sync {
            Some(self)
        } else {
            None
        }
    }
}

impl StepTimer for Clock {
    fn lap(&mut self, phase: StepPhase) {
        self.lap_into(|phases| phases.of_step(phase));
    }
}

/// The loop of the training benchmark: the model, optimizer, schedule and steps as training
/// makes them, the method of the configuration, and the benchmark's data.
struct LoopBench<'a> {
    config: &'a TrainConfig,
    bench: &'a BenchOptions,
    setup: Setup,
    learner: Learner,
    method: Method,
    aug: Arc<Augmenter>,
    place: Placement,
}

impl<'a> LoopBench<'a> {
    fn new(config: &'a TrainConfig, bench: &'a BenchOptions, setup: Setup) -> Result<Self, EngineError> {
        let learner = Learner::new(config, &setup, bench.optimizer)?;
        let method = bench_method(config, &setup)?;
        let place = setup.placement(config.model.memory_format == MemoryFormat::ChannelsLast);
        Ok(LoopBench { config, bench, setup, learner, method, aug: Arc::new(augmenter(config)), place })
    }

    /// One step of the loop: training's step on `step`, adding to `sums`, its phases timed by
    /// `clock`.
    fn step(&mut self, step: &Step, sums: &mut StepSums, clock: &mut Clock) -> Result<Stepped, EngineError> {
        self.learner.step(&self.method, step, sums, clock.timer())
    }

    /// The loop: the warm-up steps untimed, then `steps` timed ones through the data pipeline,
    /// one evaluation and one checkpoint. Returns the timed training images, the wall time and,
    /// with `breakdown`, the seconds of each phase (the device synchronised after each).
    fn run(&mut self, breakdown: bool) -> Result<(usize, Duration, Phases), EngineError> {
        let (config, device) = (self.config, self.setup.device);
        let (warmup, steps) = (self.bench.warmup(config.run.cuda_graphs), self.bench.steps);
        let epoch = 1 + breakdown as usize;
        let plan = EpochPlan {
            seed: config.run.seed,
            epoch: epoch as u64,
            batch_size: config.optim.batch_size,
            shuffle: true,
            drop_last: true,
            views: Views::Mixed { prob: config.aug.prob },
            part: Part::WHOLE,
        };
        let mut loader = self.setup.loader(plan, &self.aug);
        let lr = self.learner.schedule.lr_at(1);
        let mut clock = Clock::new(device, breakdown);
        let mut sums = StepSums::new(device);
        let (mut images, mut done) = (0, 0);
        let (mut started, mut wait_before) = (Instant::now(), Duration::ZERO);
        while let Some(batch) = loader.next_batch() {
            if done == warmup {
                synchronize(device);
                (started, wait_before, images, clock.phases) = (Instant::now(), loader.wait, 0, Phases::default());
            }
            clock.mark();
            let (x, y) = batch.upload(self.place);
            let seed = step_seed(config.run.seed, epoch, done);
            let step = Step { batch: StepBatch::whole(x, y, batch.n_ori as i64), lr, seed };
            images += batch.len();
            loader.recycle(batch);
            clock.lap_into(|t| &mut t.upload);
            self.step(&step, &mut sums, &mut clock)?;
            done += 1;
            if done == warmup + steps {
                break;
            }
        }
        clock.phases.data_wait = (loader.wait - wait_before).as_secs_f64();
        clock.mark();
        evaluate_split(&self.learner.model, &self.setup.test, config.optim.batch_size, self.place, &self.setup.pool)?;
        clock.lap_into(|t| &mut t.evaluation);
        let meta = ResumeMeta { epoch: 1, best_test_top1: 0.0, ..ResumeMeta::fresh(config) };
        checkpoint::save(&self.bench.checkpoint, &self.learner.model, &self.learner.opt, &meta)?;
        clock.lap_into(|t| &mut t.checkpoint);
        synchronize(device);
        Ok((images, started.elapsed(), clock.phases))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LossName, ModelName, ModelSpec};
    use crate::method::graphed::{copies, restore};
    use crate::method::Net;
    use crate::progress::Silent;

    #[test]
    fn shares_add_up_and_name_every_phase() {
        let p = Phases {
            data_wait: 1.0,
            upload: 1.0,
            scorer: 0.0,
            step: 3.0,
            optimizer: 1.0,
            account: 1.0,
            evaluation: 2.0,
            checkpoint: 1.0,
        };
        assert_eq!(p.total(), 10.0);
        assert_eq!(p.shares().step, 0.3);
        assert!((p.shares().total() - 1.0).abs() < 1e-12);
        assert_eq!(Phases::default().shares(), Phases::default());
        assert_eq!(p.named().map(|(n, _)| n).len(), 8);
    }

    /// ReSmooth retraining (`--gmm`, SampleSmooth, half the views augmented) on tiny synthetic
    /// data on the CPU, the checkpoint in `dir`.
    fn tiny(dir: &std::path::Path) -> (TrainConfig, BenchOptions) {
        let mut config = TrainConfig::default();
        config.model.model = ModelSpec::Builtin(ModelName::ResNet18);
        (config.aug.prob, config.aug.n, config.aug.m) = (0.5, 2, 28);
        config.optim.batch_size = 2;
        (config.method.gmm, config.method.loss, config.method.smooth_aug) = (true, LossName::SampleSmooth, 0.4);
        config.run.workers = 1;
        let bench = BenchOptions {
            steps: 1,
            warmup: 0,
            eval_images: Some(2),
            optimizer: SgdKernel::Fused,
            synthetic: true,
            checkpoint: dir.join("bench.safetensors"),
        };
        (config, bench)
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("resmooth-bench-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The whole benchmark on the CPU with tiny sizes: every phase of the loop is timed, and
    /// the checkpoint it writes is a real one.
    #[test]
    fn bench_train_times_every_phase() {
        let dir = temp_dir("phases");
        let (mut config, bench) = tiny(&dir);
        config.run.cuda_graphs = CudaGraphs::Auto;
        let r = bench_train(&config, &bench, None, &mut Silent).unwrap();
        assert_eq!((r.loop_images, r.eval_images, r.optimizer.as_str()), (2, 2, "fused"));
        assert_eq!(r.step_mode, "eager", "--cuda-graphs auto on the CPU: eager steps, phases timed apart");
        assert!(r.step_images_per_sec > 0.0 && r.loop_images_per_sec > 0.0);
        for (name, s) in r.seconds.named() {
            assert!(s > 0.0 || name == "data wait", "{name} not timed: {:?}", r.seconds);
        }
        assert!(checkpoint::read_meta(&bench.checkpoint).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The benchmark's step, its phases timed, makes exactly the update and the sums of
    /// training's step on the same batch from the same state.
    #[test]
    fn the_benchmarks_step_is_the_training_step() {
        let dir = temp_dir("same-step");
        let (config, bench) = tiny(&dir);
        let setup = bench_setup(&config, &bench, None, &mut Silent).unwrap();
        let mut timed = LoopBench::new(&config, &bench, setup).unwrap();
        let plan = EpochPlan {
            seed: 0,
            epoch: 1,
            batch_size: 2,
            shuffle: false,
            drop_last: true,
            views: Views::Both,
            part: Part::WHOLE,
        };
        let mut loader = timed.setup.loader(plan, &timed.aug);
        let batch = loader.next_batch().unwrap();
        let (x, y) = batch.upload(timed.place);
        let step = Step { batch: StepBatch::whole(x, y, batch.n_ori as i64), lr: 0.1, seed: 3 };
        assert!(step.batch.n_ori > 0 && step.batch.n_ori < step.batch.len(), "originals and augmented views");
        // a first step makes the momentum buffers: from then on the state below is all a step changes
        timed.learner.step(&timed.method, &step, &mut StepSums::new(Device::Cpu), None).unwrap();
        let live = Net { model: &timed.learner.model, opt: &mut timed.learner.opt, reducer: None }.state();
        let before = copies(&live);

        // training's step, as the epoch loop takes it
        let mut trained = StepSums::new(Device::Cpu);
        timed.learner.step(&timed.method, &step, &mut trained, None).unwrap();
        let after_training = copies(&live);
        restore(&live, &before);

        // the benchmark's step, the device synchronised after each phase
        let mut clock = Clock::new(Device::Cpu, true);
        let mut benched = StepSums::new(Device::Cpu);
        assert_eq!(timed.step(&step, &mut benched, &mut clock).unwrap(), Stepped::Updated);

        assert!(before.iter().zip(&after_training).any(|(b, a)| !b.equal(a)), "the step changed the weights");
        assert!(live.iter().zip(&after_training).all(|(l, a)| l.equal(a)), "the same weights, buffers and momentum");
        assert_eq!(benched.state(), trained.state(), "the same loss, top-k counts and GMM sums");
        assert_eq!(benched.epoch_stats(), trained.epoch_stats(), "the same per-sample terms");
        assert!(benched.gmm_metrics().is_some() && benched.epoch_stats().is_some());
        let t = clock.phases;
        assert!(t.scorer > 0.0 && t.step > 0.0 && t.optimizer > 0.0 && t.account > 0.0, "{t:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
