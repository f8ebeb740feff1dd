//! The benchmarks: augmentation pairs per second on the path training runs (uint8 views made
//! in parallel into the batch buffer), and training throughput: of the model step alone (data
//! already on the device), and of the whole loop (data pipeline, upload, scorer, step,
//! optimizer, then an evaluation and a checkpoint, as an epoch ends) with the share of its time
//! in each phase, so that the next bottleneck shows.

use super::checkpoint::{self, ResumeMeta};
use super::{evaluate, load_dataset, EngineError};
use crate::augment::Augmenter;
use crate::config::{
    AugName, CudaGraphs, DataConfig, DatasetName, LossName, MemoryFormat, MethodConfig, ModelSpec, Precision,
    SgdKernel, TrainConfig, Weighting,
};
use crate::data::{synthetic_set, ImageSet, Normalisation};
use crate::device::synchronize;
use crate::loss::{weight_p, BatchLoss, Criterion};
use crate::method::graphed::WARMUP_STEPS;
use crate::method::{p_id_tensor, score, Gmm, Method, StepBatch, StepSums, Stepper};
use crate::model::Model;
use crate::optim::Sgd;
use crate::pipeline::{assemble, Batch, EpochPlan, Loader, Placement, Upload, Views};
use crate::progress::Progress;
use crate::report::StepMode;
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
    let plan = EpochPlan { seed: 0, epoch: 1, batch_size, shuffle: false, drop_last: false, views: Views::Both };
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

/// What `bench train` measures and on what.
#[derive(Debug, Clone)]
pub struct TrainBench {
    pub model: ModelSpec,
    /// The dataset; `None`: synthetic 32x32 images (the pipeline still augments them).
    pub data: Option<DataConfig>,
    pub batch_size: usize,
    /// Timed steps of each measurement.
    pub steps: usize,
    /// Untimed steps before each measurement (cuDNN autotuning, allocator warm-up).
    pub warmup: usize,
    /// Fraction of original views per batch.
    pub prob: f64,
    pub aug: AugName,
    pub n: usize,
    pub m: usize,
    /// Also run a scorer on the augmented views, a GMM posterior and SampleSmooth, as ReSmooth
    /// retraining does.
    pub gmm: bool,
    pub precision: Precision,
    pub memory_format: MemoryFormat,
    /// How SGD updates the parameters.
    pub optimizer: SgdKernel,
    /// Whether the steps are replays of CUDA graphs (`--cuda-graphs`).
    pub cuda_graphs: CudaGraphs,
    pub device: Device,
    /// Data pipeline threads (0 = one per core).
    pub workers: usize,
    /// Generated test images evaluated at the end of the loop without a dataset (with one: its
    /// test split, which `data.test_size` may subset).
    pub eval_images: usize,
    /// The checkpoint file the loop writes at its end (and the command removes).
    pub checkpoint: PathBuf,
}

impl TrainBench {
    /// Untimed steps before each measurement: `warmup`, and with CUDA graphs at least the
    /// eager steps and the capture, so that only replays are timed.
    fn warmup(&self) -> usize {
        match self.cuda_graphs {
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
    /// Forward, loss and backward.
    pub step: f64,
    /// The SGD update.
    pub optimizer: f64,
    /// The test-set evaluation at the end of the epoch.
    pub evaluation: f64,
    /// Writing the checkpoint at the end of the epoch.
    pub checkpoint: f64,
}

impl Phases {
    /// The phases by name, in loop order.
    pub fn named(&self) -> [(&'static str, f64); 7] {
        [
            ("data wait", self.data_wait),
            ("upload", self.upload),
            ("scorer", self.scorer),
            ("step", self.step),
            ("optimizer", self.optimizer),
            ("evaluation", self.evaluation),
            ("checkpoint", self.checkpoint),
        ]
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
            evaluation: self.evaluation / t,
            checkpoint: self.checkpoint / t,
        }
    }
}

/// What `bench train` measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchTrainResult {
    pub model: String,
    pub device: String,
    pub precision: String,
    pub memory_format: String,
    pub optimizer: String,
    /// How the steps ran: `eager`, or `cuda-graph` (then the scorer, step and optimizer phases
    /// are one graph, timed under `step`).
    pub step_mode: String,
    pub batch_size: usize,
    pub prob: f64,
    pub gmm: bool,
    /// Images per second of forward + backward + SGD on a batch already on the device.
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
}

/// The learning rate of the benchmark's steps.
const LR: f64 = 0.01;

/// Runs the training benchmark `b`.
pub fn bench_train(b: &TrainBench, progress: &mut dyn Progress) -> Result<BenchTrainResult, EngineError> {
    let (train, test, norm) = match &b.data {
        None => (
            synthetic_set((b.warmup() + b.steps) * b.batch_size, 0),
            synthetic_set(b.eval_images, 1),
            Normalisation::CIFAR,
        ),
        Some(data) => {
            let ds = load_dataset(data, 0, progress)?;
            (ds.train, ds.test, ds.normalisation)
        }
    };
    let classes = train.labels.iter().chain(&test.labels).max().map_or(1, |m| m + 1);
    let model = Model::build_for(&b.model, classes, [train.height, train.width], b.device)?.with_precision(b.precision);
    let opt = Sgd::new(&model.vs, 0.9, 5e-4, true).with_kernel(b.optimizer);
    let place = Placement { device: b.device, channels_last: b.memory_format == MemoryFormat::ChannelsLast, norm };
    let mut bench = LoopBench::new(b, model, opt, classes, place, train, test)?;
    let step_images_per_sec = bench.step_alone()?;
    let (images, wall, _) = bench.run(false)?;
    let (_, _, seconds) = bench.run(true)?;
    let step_mode = match &mut bench.graphs {
        Some(g) => {
            for note in [g.plain.1.take_note(), g.method.1.take_note()].into_iter().flatten() {
                progress.note(&note);
            }
            g.method.1.mode()
        }
        None => StepMode::Eager,
    };
    Ok(BenchTrainResult {
        model: b.model.to_string(),
        device: format!("{:?}", b.device),
        precision: b.precision.to_string(),
        memory_format: b.memory_format.to_string(),
        optimizer: b.optimizer.to_string(),
        step_mode: step_mode.name().into(),
        batch_size: b.batch_size,
        prob: b.prob,
        gmm: b.gmm,
        step_images_per_sec,
        loop_images_per_sec: images as f64 / wall.as_secs_f64(),
        loop_images: images,
        eval_images: bench.test.len(),
        seconds,
        share: seconds.shares(),
    })
}

/// Reads the clock for a breakdown: with `sync`, waits for the device at each lap so that the
/// time of a phase is the work it queued; without, laps are free and time nothing.
struct Clock {
    device: Device,
    sync: bool,
    last: Instant,
}

impl Clock {
    /// Starts a phase now.
    fn mark(&mut self) {
        if self.sync {
            synchronize(self.device);
            self.last = Instant::now();
        }
    }

    /// Ends the phase that started at the last mark or lap, adding its seconds to `to`.
    fn lap(&mut self, to: &mut f64) {
        if self.sync {
            synchronize(self.device);
            let now = Instant::now();
            *to += (now - self.last).as_secs_f64();
            self.last = now;
        }
    }
}

/// The model, optimizer, method and data of the training benchmark.
struct LoopBench<'a> {
    b: &'a TrainBench,
    model: Model,
    opt: Sgd,
    /// With `--gmm`: the scorer (fp32, as in training) and the mixture.
    scorer: Option<(Model, Gmm)>,
    /// The method's criteria (SampleSmooth with `--gmm`).
    loss: BatchLoss,
    /// Plain cross-entropy, for the step alone.
    plain: BatchLoss,
    classes: i64,
    place: Placement,
    train: Arc<ImageSet>,
    test: ImageSet,
    aug: Arc<Augmenter>,
    pool: Arc<rayon::ThreadPool>,
    /// With `--cuda-graphs` where a graph can be made: the steps as the method's, through a
    /// [`Stepper`] each.
    graphs: Option<Graphs>,
}

/// The benchmark's two steps as the training method's, each captured as its own graph: plain
/// cross-entropy (the step alone) and the method's (the loop).
struct Graphs {
    plain: (Method, Stepper),
    method: (Method, Stepper),
    /// The sums the steps add to, as in training (never read).
    sums: StepSums,
}

impl<'a> LoopBench<'a> {
    fn new(
        b: &'a TrainBench,
        model: Model,
        opt: Sgd,
        classes: i64,
        place: Placement,
        train: ImageSet,
        test: ImageSet,
    ) -> Result<Self, EngineError> {
        let dataset = b.data.as_ref().map_or(DatasetName::Cifar10, |d| d.dataset);
        let mut method = TrainConfig::default().method;
        if b.gmm {
            (method.gmm, method.loss, method.weighting, method.smooth_aug) =
                (true, LossName::SampleSmooth, Weighting::Regular, 0.4);
        }
        let (org, aug) = Criterion::pair(&method);
        let gmm = Gmm {
            weights: [0.6, 0.4],
            means: [-3.0, 0.5],
            variances: [1.0, 1.0],
            converged: true,
            iterations: 1,
            lower_bound: 0.0,
        };
        // the scorer runs in fp32 whatever --precision says, as in training
        let image = [train.height, train.width];
        let scorer = b.gmm.then(|| Model::build_for(&b.model, classes, image, b.device)).transpose()?;
        let graphs = Graphs::new(b, &method, &gmm, (classes, image), opt.kernel())?;
        Ok(LoopBench {
            b,
            model,
            opt,
            scorer: scorer.map(|s| (s, gmm)),
            loss: BatchLoss { org, aug, prob: b.prob },
            plain: BatchLoss { org: Criterion::LabelSmooth(0.0), aug: Criterion::LabelSmooth(0.0), prob: b.prob },
            classes,
            place,
            train: Arc::new(train),
            test,
            aug: Arc::new(Augmenter::new(b.aug, b.n, b.m, 0, dataset)),
            pool: Arc::new(super::data_pool(b.workers)?),
            graphs,
        })
    }

    /// One training step of the method on a batch on the device, its phases timed by `clock`;
    /// without `method`, a plain cross-entropy step with no scorer.
    fn step(
        &mut self,
        x: &Tensor,
        y: &Tensor,
        n_ori: i64,
        method: bool,
        clock: &mut Clock,
        t: &mut Phases,
    ) -> Result<(), EngineError> {
        if let Some(g) = &mut self.graphs {
            let (m, stepper) = if method { &mut g.method } else { &mut g.plain };
            let batch = StepBatch { x: x.shallow_clone(), y: y.shallow_clone(), n_ori };
            stepper.step(m, &self.model, &mut self.opt, LR, 0, &batch, &mut g.sums)?;
            clock.lap(&mut t.step);
            return Ok(());
        }
        let n = x.size()[0];
        let p = self.scorer.as_ref().filter(|_| method).map(|(scorer, gmm)| {
            let ones = Tensor::ones([n_ori], (Kind::Float, x.device()));
            let aug = p_id_tensor(gmm, &score(scorer, &x.narrow(0, n_ori, n - n_ori), &y.narrow(0, n_ori, n - n_ori)));
            weight_p(&Tensor::cat(&[ones, aug], 0), Weighting::Regular)
        });
        clock.lap(&mut t.scorer);
        let logits = self.model.forward_t(x, true);
        let criteria = if method { &self.loss } else { &self.plain };
        let loss = criteria.loss(&logits, y, n_ori, p.as_ref(), None);
        self.opt.zero_grad();
        loss.backward();
        clock.lap(&mut t.step);
        self.opt.step(LR);
        clock.lap(&mut t.optimizer);
        Ok(())
    }

    /// Images per second of the step alone (no scorer), on one random batch on the device.
    fn step_alone(&mut self) -> Result<f64, EngineError> {
        let (b, n) = (self.b, self.b.batch_size as i64);
        let x = Tensor::randn([n, 3, 32, 32], (Kind::Float, b.device));
        let x = if self.place.channels_last { x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]) } else { x };
        let y = Tensor::randint(self.classes, [n], (Kind::Int64, b.device));
        let mut clock = Clock { device: b.device, sync: false, last: Instant::now() };
        let mut t = Phases::default();
        for _ in 0..b.warmup() {
            self.step(&x, &y, n, false, &mut clock, &mut t)?;
        }
        synchronize(b.device);
        let started = Instant::now();
        for _ in 0..b.steps {
            self.step(&x, &y, n, false, &mut clock, &mut t)?;
        }
        synchronize(b.device);
        Ok((b.steps as i64 * n) as f64 / started.elapsed().as_secs_f64())
    }

    /// The loop: `warmup` untimed steps, then `steps` timed ones through the data pipeline, one
    /// evaluation and one checkpoint. Returns the timed training images, the wall time and, with
    /// `breakdown`, the seconds of each phase (the device synchronised after each).
    fn run(&mut self, breakdown: bool) -> Result<(usize, Duration, Phases), EngineError> {
        let b = self.b;
        let plan = EpochPlan {
            seed: 0,
            epoch: 1 + breakdown as u64,
            batch_size: b.batch_size,
            shuffle: true,
            drop_last: true,
            views: Views::Mixed { prob: b.prob },
        };
        let mut loader = Loader::start(self.train.clone(), plan, self.aug.clone(), self.pool.clone(), 3);
        let mut clock = Clock { device: b.device, sync: breakdown, last: Instant::now() };
        let (mut t, mut images, mut count) = (Phases::default(), 0, 0);
        let (mut started, mut wait_before) = (Instant::now(), Duration::ZERO);
        while let Some(batch) = loader.next_batch() {
            count += 1;
            if count == b.warmup() + 1 {
                synchronize(b.device);
                (started, wait_before, t, images) = (Instant::now(), loader.wait, Phases::default(), 0);
            }
            clock.mark();
            let (x, y) = batch.upload(self.place);
            let n_ori = batch.n_ori as i64;
            images += batch.len();
            loader.recycle(batch);
            clock.lap(&mut t.upload);
            self.step(&x, &y, n_ori, true, &mut clock, &mut t)?;
            if count >= b.warmup() + b.steps {
                break;
            }
        }
        t.data_wait = (loader.wait - wait_before).as_secs_f64();
        clock.mark();
        evaluate(&self.model, &self.test, b.batch_size, self.place);
        clock.lap(&mut t.evaluation);
        let meta = ResumeMeta { epoch: 1, best_test_top1: 0.0, ..ResumeMeta::fresh(&TrainConfig::default()) };
        checkpoint::save(&b.checkpoint, &self.model, &self.opt, &meta)?;
        clock.lap(&mut t.checkpoint);
        synchronize(b.device);
        Ok((images, started.elapsed(), t))
    }
}

impl Graphs {
    /// The two steps through steppers, when `b.cuda_graphs` asks for graphs and they can be
    /// made; `None` (the eager steps with their phases timed apart) otherwise, or an error
    /// with `--cuda-graphs on`.
    fn new(
        b: &TrainBench,
        method: &MethodConfig,
        gmm: &Gmm,
        (classes, image): (i64, [usize; 2]),
        kernel: SgdKernel,
    ) -> Result<Option<Self>, EngineError> {
        let stepper = || Stepper::new(b.cuda_graphs, b.device, kernel, true).map_err(|e| EngineError::Step(e.into()));
        let probe = stepper()?;
        if !probe.will_capture() {
            return Ok(None);
        }
        let plain_config = MethodConfig { smooth_org: 0.0, smooth_aug: 0.0, ..TrainConfig::default().method };
        let plain = Method::new(&plain_config, b.prob, None, None);
        let scorer = b.gmm.then(|| Model::build_for(&b.model, classes, image, b.device)).transpose()?;
        let full = Method::new(method, b.prob, scorer, b.gmm.then(|| gmm.clone()));
        Ok(Some(Graphs { plain: (plain, probe), method: (full, stepper()?), sums: StepSums::new(b.device) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_and_name_every_phase() {
        let p = Phases {
            data_wait: 1.0,
            upload: 1.0,
            scorer: 0.0,
            step: 4.0,
            optimizer: 1.0,
            evaluation: 2.0,
            checkpoint: 1.0,
        };
        assert_eq!(p.total(), 10.0);
        assert_eq!(p.shares().step, 0.4);
        assert!((p.shares().total() - 1.0).abs() < 1e-12);
        assert_eq!(Phases::default().shares(), Phases::default());
        assert_eq!(p.named().map(|(n, _)| n).len(), 7);
    }

    /// The whole benchmark on the CPU with tiny sizes: every phase of the loop is timed, and
    /// the checkpoint it writes is a real one.
    #[test]
    fn bench_train_times_every_phase() {
        let dir = std::env::temp_dir().join(format!("resmooth-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let b = TrainBench {
            model: ModelSpec::Builtin(crate::config::ModelName::ResNet18),
            data: None,
            batch_size: 2,
            steps: 1,
            warmup: 0,
            prob: 0.5,
            aug: AugName::RandAugment,
            n: 2,
            m: 28,
            gmm: true,
            precision: Precision::Fp32,
            memory_format: MemoryFormat::Nchw,
            optimizer: SgdKernel::Fused,
            cuda_graphs: CudaGraphs::Auto,
            device: Device::Cpu,
            workers: 1,
            eval_images: 2,
            checkpoint: dir.join("bench.safetensors"),
        };
        let r = bench_train(&b, &mut crate::progress::Silent).unwrap();
        assert_eq!((r.loop_images, r.eval_images, r.optimizer.as_str()), (2, 2, "fused"));
        assert_eq!(r.step_mode, "eager", "--cuda-graphs auto on the CPU: eager steps, phases timed apart");
        assert!(r.step_images_per_sec > 0.0 && r.loop_images_per_sec > 0.0);
        for (name, s) in r.seconds.named() {
            assert!(s > 0.0 || name == "data wait", "{name} not timed: {:?}", r.seconds);
        }
        assert!(checkpoint::read_meta(&b.checkpoint).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
