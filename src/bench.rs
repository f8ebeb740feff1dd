//! `resmooth bench train`: training throughput of the model step alone (data already on the
//! device) and of the whole pipeline (augmentation, transfer, scorer, step), with a breakdown.

use crate::augment::Augmenter;
use crate::cli::TrainArgs;
use crate::data::ImageSet;
use crate::gmm::Gmm;
use crate::loss::Criterion;
use crate::method;
use crate::model::Model;
use crate::optim::Sgd;
use crate::pipeline::{EpochPlan, Loader, Views};
use anyhow::Result;
use clap::Args;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Flags of `resmooth bench train`.
#[derive(Debug, Clone, Args)]
pub struct BenchTrainArgs {
    /// Model: resnet18 or wresnet28_10.
    #[arg(long, default_value = "resnet18")]
    pub model: String,
    /// Use random 32x32 images instead of a dataset (the pipeline still augments them).
    #[arg(long)]
    pub synthetic: bool,
    /// Dataset when not --synthetic: cifar10, cifar100, svhn or imagefolder.
    #[arg(long, default_value = "cifar10")]
    pub dataset: String,
    /// Folder holding the dataset files.
    #[arg(long, default_value = "data")]
    pub dataroot: std::path::PathBuf,
    /// Mini-batch size.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Timed steps of each measurement (after --warmup untimed ones).
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// Untimed steps before each measurement (cuDNN autotuning, allocator warm-up).
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// Fraction of original views per batch (0 = all augmented, as the ReSmooth CIFAR-10 run).
    #[arg(long, default_value_t = 1.0)]
    pub prob: f64,
    /// Augmentation of the augmented views.
    #[arg(long, default_value = "ra")]
    pub aug: String,
    /// RandAugment ops per image.
    #[arg(long = "N", default_value_t = 2)]
    pub n: usize,
    /// RandAugment magnitude.
    #[arg(long = "M", default_value_t = 28)]
    pub m: usize,
    /// Also run a scorer model on the augmented views and a GMM posterior, as ReSmooth retraining does.
    #[arg(long)]
    pub gmm: bool,
    /// fp32 (default) or bf16 for the trained model; the scorer always runs in fp32.
    #[arg(long)]
    pub precision: Option<String>,
    /// nchw or channels_last.
    #[arg(long, default_value = "nchw")]
    pub memory_format: String,
    /// CUDA device index; without a GPU the CPU is used.
    #[arg(long, default_value_t = 0)]
    pub gpu: usize,
    /// Data pipeline threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
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
    /// Seconds per pipeline step: waiting for the data pipeline, transfer + normalisation, scorer, training step.
    pub wait_ms: f64,
    pub transfer_ms: f64,
    pub scorer_ms: f64,
    pub step_ms: f64,
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

fn synthetic_set(n: usize, classes: i64) -> ImageSet {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut set = ImageSet::new(32, 32);
    let mut img = vec![0u8; 32 * 32 * 3];
    for i in 0..n {
        rng.fill(&mut img[..]);
        set.push(&img, i as i64 % classes);
    }
    set
}

/// Runs the benchmark and prints its table.
pub fn run_train_bench(args: BenchTrainArgs) -> Result<BenchTrainResult> {
    let mut t = TrainArgs::defaults();
    t.model = args.model.clone();
    t.prob = args.prob;
    t.aug = args.aug.clone();
    t.n = args.n;
    t.m = args.m;
    t.batch_size = args.batch_size;
    t.precision = args.precision.clone();
    t.memory_format = args.memory_format.clone();
    t.dataset = if args.synthetic { "cifar10".into() } else { args.dataset.clone() };
    t.dataroot = args.dataroot.clone();
    t.validate().map_err(anyhow::Error::msg)?;
    let device = crate::device::select(args.gpu).map_err(anyhow::Error::msg)?;
    let channels_last = args.memory_format == "channels_last";
    let set = if args.synthetic {
        synthetic_set((args.warmup + args.steps) * args.batch_size, 10)
    } else {
        crate::train::load_dataset(&t)?.train
    };
    let classes = if args.synthetic { 10 } else { set.labels.iter().max().map_or(1, |m| m + 1) };
    let compute = crate::device::compute_kind(args.precision.as_deref());
    let mut model = Model::new(&args.model, classes, device)?;
    model.compute = compute;
    let mut opt = Sgd::new(&model.vs, 0.9, 5e-4, true);
    let crit = Criterion::LabelSmooth(0.0);
    let b = args.batch_size as i64;

    // 1. the step alone, on one batch that stays on the device
    let x = Tensor::randn([b, 3, 32, 32], (Kind::Float, device));
    let x = if channels_last { x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]) } else { x };
    let y = Tensor::randint(classes, [b], (Kind::Int64, device));
    let step = |model: &Model, opt: &mut Sgd, x: &Tensor, y: &Tensor| {
        let loss = crit.loss(&model.forward_t(x, true), y, None, None);
        opt.zero_grad();
        loss.backward();
        opt.step(0.01);
    };
    for _ in 0..args.warmup {
        step(&model, &mut opt, &x, &y);
    }
    sync(device);
    let started = Instant::now();
    for _ in 0..args.steps {
        step(&model, &mut opt, &x, &y);
    }
    sync(device);
    let step_rate = (args.steps as i64 * b) as f64 / started.elapsed().as_secs_f64();

    // 2. the whole pipeline, timed per stage (synchronising after each, as a breakdown needs)
    let aug = Augmenter::from_flags(&args.aug, args.n, args.m, 0, &t.dataset).map_err(anyhow::Error::msg)?;
    let pool = Arc::new(crate::train::data_pool(args.workers)?);
    let plan = EpochPlan {
        seed: 0,
        epoch: 1,
        batch_size: args.batch_size,
        shuffle: true,
        drop_last: true,
        views: Views::Mixed { prob: args.prob },
    };
    let set = Arc::new(set);
    let mut loader = Loader::start(set.clone(), plan, Arc::new(aug), pool, 3);
    let scorer = if args.gmm {
        // the scorer runs in fp32 whatever --precision says, as in training
        Some(Model::new(&args.model, classes, device)?)
    } else {
        None
    };
    let gmm = Gmm {
        weights: [0.6, 0.4],
        means: [-3.0, 0.5],
        variances: [1.0, 1.0],
        converged: true,
        iterations: 1,
        lower_bound: 0.0,
    };
    let (mut transfer, mut scoring, mut stepping, mut images, mut timed) = (0.0, 0.0, 0.0, 0usize, 0usize);
    let mut wait_before = std::time::Duration::ZERO;
    let mut pipeline_started = Instant::now();
    let mut count = 0;
    while let Some(batch) = loader.next_batch() {
        count += 1;
        if count == args.warmup + 1 {
            sync(device);
            pipeline_started = Instant::now();
            wait_before = loader.wait;
            (transfer, scoring, stepping, images, timed) = (0.0, 0.0, 0.0, 0, 0);
        }
        let t0 = Instant::now();
        let (x, y) = batch.to_device_as(set.height, set.width, device, channels_last);
        let n_ori = batch.n_ori as i64;
        let n = batch.len() as i64;
        loader.recycle(batch);
        sync(device);
        let t1 = Instant::now();
        if let Some(s) = &scorer {
            let p = method::p_id_tensor(
                &gmm,
                &method::score(s, &x.narrow(0, n_ori, n - n_ori), &y.narrow(0, n_ori, n - n_ori)),
            );
            let _ = p.sum(Kind::Float);
            sync(device);
        }
        let t2 = Instant::now();
        step(&model, &mut opt, &x, &y);
        sync(device);
        let t3 = Instant::now();
        transfer += (t1 - t0).as_secs_f64();
        scoring += (t2 - t1).as_secs_f64();
        stepping += (t3 - t2).as_secs_f64();
        images += n as usize;
        timed += 1;
        if count >= args.warmup + args.steps {
            break;
        }
    }
    let wall = pipeline_started.elapsed().as_secs_f64();
    let wait = (loader.wait - wait_before).as_secs_f64();
    drop(loader);
    let per = |s: f64| 1000.0 * s / timed.max(1) as f64;
    let result = BenchTrainResult {
        model: args.model.clone(),
        device: format!("{device:?}"),
        precision: if compute == Kind::BFloat16 { "bf16".into() } else { "fp32".into() },
        memory_format: args.memory_format.clone(),
        batch_size: args.batch_size,
        step_images_per_sec: step_rate,
        pipeline_images_per_sec: images as f64 / wall,
        wait_ms: per(wait),
        transfer_ms: per(transfer),
        scorer_ms: per(scoring),
        step_ms: per(stepping),
    };
    println!(
        "bench train: {} on {:?}, {} {}, batch {}: step {:.0} img/s; pipeline {:.0} img/s (per step: data wait {:.1} ms, transfer {:.1} ms, scorer {:.1} ms, step {:.1} ms)",
        result.model,
        device,
        result.precision,
        result.memory_format,
        result.batch_size,
        result.step_images_per_sec,
        result.pipeline_images_per_sec,
        result.wait_ms,
        result.transfer_ms,
        result.scorer_ms,
        result.step_ms
    );
    if let Some(path) = &args.json {
        crate::report::write_atomic(path, serde_json::to_string_pretty(&result)?.as_bytes())?;
    }
    Ok(result)
}
