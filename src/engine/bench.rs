//! The benchmarks: augmentation pairs per second on the path training runs (uint8 views made
//! in parallel into the batch buffer), and training throughput, of the model step alone (data
//! already on the device) and of the whole pipeline (augmentation, transfer, scorer, step) with
//! a breakdown.

use super::{load_dataset, EngineError};
use crate::augment::Augmenter;
use crate::config::{AugName, DataConfig, DatasetName, MemoryFormat, ModelSpec, Precision};
use crate::data::{synthetic_set, ImageSet};
use crate::device::synchronize;
use crate::loss::Criterion;
use crate::method::{p_id_tensor, score, Gmm};
use crate::model::Model;
use crate::optim::Sgd;
use crate::pipeline::{assemble, Batch, EpochPlan, Loader, Placement, Views};
use crate::progress::Progress;
use serde::Serialize;
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
    /// Also run a scorer on the augmented views and a GMM posterior, as ReSmooth retraining does.
    pub gmm: bool,
    pub precision: Precision,
    pub memory_format: MemoryFormat,
    pub device: Device,
    /// Data pipeline threads (0 = one per core).
    pub workers: usize,
}

/// What `bench train` measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchTrainResult {
    pub model: String,
    pub device: String,
    pub precision: String,
    pub memory_format: String,
    pub batch_size: usize,
    /// Images per second of forward + backward + SGD on a batch already on the device.
    pub step_images_per_sec: f64,
    /// Images per second of the whole pipeline.
    pub pipeline_images_per_sec: f64,
    /// Milliseconds per pipeline step: waiting for the data pipeline, transfer + normalisation,
    /// scorer, training step.
    pub wait_ms: f64,
    pub transfer_ms: f64,
    pub scorer_ms: f64,
    pub step_ms: f64,
}

/// Runs the training benchmark `b`.
pub fn bench_train(b: &TrainBench, progress: &mut dyn Progress) -> Result<BenchTrainResult, EngineError> {
    let set = match &b.data {
        None => synthetic_set((b.warmup + b.steps) * b.batch_size, 0),
        Some(data) => load_dataset(data, 0, progress)?.train,
    };
    let classes = set.labels.iter().max().map_or(1, |m| m + 1);
    let mut model = Model::build(&b.model, classes, b.device)?.with_precision(b.precision);
    let mut opt = Sgd::new(&model.vs, 0.9, 5e-4, true);
    let place = Placement { device: b.device, channels_last: b.memory_format == MemoryFormat::ChannelsLast };
    let step_rate = bench_step(b, &mut model, &mut opt, classes, place);
    let pipeline = bench_pipeline(b, Arc::new(set), &mut model, &mut opt, classes, place)?;
    let per = |d: Duration| 1000.0 * d.as_secs_f64() / pipeline.steps.max(1) as f64;
    Ok(BenchTrainResult {
        model: b.model.to_string(),
        device: format!("{:?}", b.device),
        precision: b.precision.to_string(),
        memory_format: b.memory_format.to_string(),
        batch_size: b.batch_size,
        step_images_per_sec: step_rate,
        pipeline_images_per_sec: pipeline.images as f64 / pipeline.wall.as_secs_f64(),
        wait_ms: per(pipeline.wait),
        transfer_ms: per(pipeline.transfer),
        scorer_ms: per(pipeline.scorer),
        step_ms: per(pipeline.step),
    })
}

/// One plain training step (label-smoothed cross-entropy with eps 0, SGD).
fn train_step(model: &Model, opt: &mut Sgd, x: &Tensor, y: &Tensor) {
    let loss = Criterion::LabelSmooth(0.0).loss(&model.forward_t(x, true), y, None, None);
    opt.zero_grad();
    loss.backward();
    opt.step(0.01);
}

/// Images per second of the step alone, on one random batch that stays on the device.
fn bench_step(b: &TrainBench, model: &mut Model, opt: &mut Sgd, classes: i64, place: Placement) -> f64 {
    let n = b.batch_size as i64;
    let x = Tensor::randn([n, 3, 32, 32], (Kind::Float, b.device));
    let x = if place.channels_last { x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]) } else { x };
    let y = Tensor::randint(classes, [n], (Kind::Int64, b.device));
    for _ in 0..b.warmup {
        train_step(model, opt, &x, &y);
    }
    synchronize(b.device);
    let started = Instant::now();
    for _ in 0..b.steps {
        train_step(model, opt, &x, &y);
    }
    synchronize(b.device);
    (b.steps as i64 * n) as f64 / started.elapsed().as_secs_f64()
}

/// The whole pipeline's timings, summed over the timed steps.
#[derive(Default)]
struct PipelineTimes {
    steps: usize,
    images: usize,
    wall: Duration,
    wait: Duration,
    transfer: Duration,
    scorer: Duration,
    step: Duration,
}

/// The whole pipeline, timed per stage (synchronising after each, as a breakdown needs).
fn bench_pipeline(
    b: &TrainBench,
    set: Arc<ImageSet>,
    model: &mut Model,
    opt: &mut Sgd,
    classes: i64,
    place: Placement,
) -> Result<PipelineTimes, EngineError> {
    let dataset = b.data.as_ref().map_or(DatasetName::Cifar10, |d| d.dataset);
    let aug = Arc::new(Augmenter::new(b.aug, b.n, b.m, 0, dataset));
    let pool = Arc::new(super::data_pool(b.workers)?);
    let plan = EpochPlan {
        seed: 0,
        epoch: 1,
        batch_size: b.batch_size,
        shuffle: true,
        drop_last: true,
        views: Views::Mixed { prob: b.prob },
    };
    let mut loader = Loader::start(set, plan, aug, pool, 3);
    // the scorer runs in fp32 whatever --precision says, as in training
    let scorer = b.gmm.then(|| Model::build(&b.model, classes, b.device)).transpose()?;
    let gmm = Gmm {
        weights: [0.6, 0.4],
        means: [-3.0, 0.5],
        variances: [1.0, 1.0],
        converged: true,
        iterations: 1,
        lower_bound: 0.0,
    };
    let mut times = PipelineTimes::default();
    let (mut count, mut started, mut wait_before) = (0, Instant::now(), Duration::ZERO);
    while let Some(batch) = loader.next_batch() {
        count += 1;
        if count == b.warmup + 1 {
            synchronize(b.device);
            (started, wait_before, times) = (Instant::now(), loader.wait, PipelineTimes::default());
        }
        let t0 = Instant::now();
        let (x, y) = batch.upload(place);
        let (n, n_ori) = (batch.len() as i64, batch.n_ori as i64);
        loader.recycle(batch);
        synchronize(b.device);
        let t1 = Instant::now();
        if let Some(s) = &scorer {
            let p = p_id_tensor(&gmm, &score(s, &x.narrow(0, n_ori, n - n_ori), &y.narrow(0, n_ori, n - n_ori)));
            let _ = p.sum(Kind::Float);
            synchronize(b.device);
        }
        let t2 = Instant::now();
        train_step(model, opt, &x, &y);
        synchronize(b.device);
        let t3 = Instant::now();
        times.transfer += t1 - t0;
        times.scorer += t2 - t1;
        times.step += t3 - t2;
        times.images += n as usize;
        times.steps += 1;
        if count >= b.warmup + b.steps {
            break;
        }
    }
    times.wall = started.elapsed();
    times.wait = loader.wait - wait_before;
    Ok(times)
}
