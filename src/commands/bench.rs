//! `resmooth bench augment` (augmentation pairs per second), `resmooth bench data` (the input
//! pipeline's images per second and peak memory) and `resmooth bench train` (training throughput
//! of the step and of the whole loop, with the share of time in each phase).

use super::augment::load_source;
use super::Terminal;
use crate::cli::{BenchArgs, BenchAugmentArgs, BenchCommand, BenchDataArgs, BenchTrainArgs};
use anyhow::{anyhow, bail, Context, Result};
use resmooth::augment::imagenet::ImageNetTrain;
use resmooth::augment::Augmenter;
use resmooth::config::{LossName, MethodConfig, OptimConfig, RunConfig, TrainConfig};
use resmooth::data::stream::{FileList, OnBadImage};
use resmooth::dist::Launch;
use resmooth::engine::{
    self,
    bench::{bench_augment, bench_train, BenchOptions},
};
use resmooth::pipeline::{BatchSource, InMemory, Views};
use resmooth::splits::imagenet_train;
use resmooth::streaming::{StreamSource, StreamViews, Streamed};
use resmooth::throughput::{load_average, loader_rate, peak_resident_bytes};
use std::sync::Arc;

/// Runs `resmooth bench ...`.
pub fn bench(args: BenchArgs) -> Result<()> {
    match args.command {
        BenchCommand::Augment(b) => augment(&b),
        BenchCommand::Data(b) => data(&b),
        BenchCommand::Train(b) => train(&b),
    }
}

/// What `bench data` measures: the source of the batches, the views each batch holds, and the
/// words and numbers that describe it.
struct DataSource {
    source: Arc<dyn BatchSource>,
    views: Views,
    /// "stream" or "memory".
    kind: &'static str,
    /// What the views are.
    described: String,
    classes: usize,
}

/// The source `bench data` measures: a folder streamed with the ImageNet training view
/// (`--dataset imagenet` or `imagefolder`), else the in-memory dataset with both views of `--aug`.
fn data_source(b: &BenchDataArgs) -> Result<DataSource> {
    let s = &b.source;
    if matches!(s.dataset.as_str(), "imagenet" | "imagefolder") {
        if let Some(size) = s.image_size {
            bail!("--image-size {size} does not apply to a streamed folder: its views are the ImageNet training view's 224 x 224; leave it out");
        }
        let split = imagenet_train(&s.dataroot)?;
        let list = FileList::list(&split).with_context(|| {
            format!(
                "--dataset {} streams {}: it needs <class>/ folders of JPEG or PNG images",
                s.dataset,
                split.display()
            )
        })?;
        let classes = list.classes.len();
        let views = StreamViews::ImageNetTrain { transform: ImageNetTrain::REFERENCE, reduced_dct: b.reduced_dct };
        let source = StreamSource::new(list, views, OnBadImage::Fail)?;
        let described = format!("ImageNet training view{}", if b.reduced_dct { ", reduced-DCT decoding" } else { "" });
        return Ok(DataSource {
            source: Arc::new(Streamed { source: Arc::new(source), aug: Arc::new(Augmenter::none()) }),
            views: Views::Mixed { prob: 1.0 },
            kind: "stream",
            described,
            classes,
        });
    }
    if b.reduced_dct {
        bail!(
            "--reduced-dct applies to streamed folders (--dataset imagenet or imagefolder), not --dataset {}",
            s.dataset
        );
    }
    s.dataset().map_err(|e| anyhow!("{e}, imagenet (a streamed folder) or synthetic"))?;
    let (set, _, aug) = load_source(s, 4096)?;
    let classes = set.labels.iter().copied().max().map_or(0, |m| m as usize + 1);
    let a = &s.aug;
    let described = format!("original + augmented views (aug {} N {} M {} cutout {})", a.aug, a.n, a.m, a.cutout);
    let source = InMemory { set: Arc::new(set), aug: Arc::new(aug) };
    Ok(DataSource { source: Arc::new(source), views: Views::Both, kind: "memory", described, classes })
}

fn data(b: &BenchDataArgs) -> Result<()> {
    if b.threads == 0 || b.batch_size == 0 {
        bail!("--threads and --batch-size must be at least 1");
    }
    if !(b.seconds.is_finite() && b.seconds > 0.0) {
        bail!("--seconds {} must be a number above 0", b.seconds);
    }
    let d = data_source(b)?;
    let samples = d.source.len();
    let r = loader_rate(d.source, d.views, b.batch_size, b.threads, b.seconds)?;
    let peak = peak_resident_bytes();
    let load = load_average();
    println!(
        "bench data: {} ({}, {}) in {}: {samples} samples, {} classes; {} thread(s), batch {}: {:.1} img/s, \
         {:.1} img per CPU-second ({} images in {:.2} s); peak resident memory {:.1} MiB; load average {}",
        b.source.dataset,
        d.kind,
        d.described,
        b.source.dataroot.display(),
        d.classes,
        b.threads,
        b.batch_size,
        r.images_per_second(),
        r.images_per_cpu_second(),
        r.images,
        r.seconds,
        peak as f64 / (1 << 20) as f64,
        load.map_or("unknown".to_string(), |l| format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2])),
    );
    if let Some(path) = &b.json {
        let json = serde_json::json!({
            "dataset": b.source.dataset,
            "dataroot": b.source.dataroot,
            "source": d.kind,
            "views": d.described,
            "samples": samples,
            "classes": d.classes,
            "threads": b.threads,
            "batch_size": b.batch_size,
            "reduced_dct": b.reduced_dct,
            "images": r.images,
            "batches": r.batches,
            "seconds": r.seconds,
            "cpu_seconds": r.cpu_seconds,
            "images_per_second": r.images_per_second(),
            "images_per_cpu_second": r.images_per_cpu_second(),
            "peak_resident_bytes": peak,
            "load_average": load,
        });
        resmooth::io::write_atomic(path, serde_json::to_string_pretty(&json)?.as_bytes())?;
    }
    Ok(())
}

fn augment(b: &BenchAugmentArgs) -> Result<()> {
    if b.threads == 0 || b.batch_size == 0 {
        bail!("--threads and --batch-size must be at least 1");
    }
    let (set, _, aug) = load_source(&b.source, 4096)?;
    let rate = bench_augment(&set, &aug, b.threads, b.seconds, b.batch_size)?;
    let a = &b.source.aug;
    println!(
        "bench augment: aug {} N {} M {} cutout {} threads {}: {rate:.0} pairs/s",
        a.aug, a.n, a.m, a.cutout, b.threads
    );
    Ok(())
}

fn train(b: &BenchTrainArgs) -> Result<()> {
    let (config, options) = configs(b);
    // under a launcher, every rank measures; rank 0 reports
    let dist = Launch::from_env()?.map(|launch| engine::join(&config, launch)).transpose()?;
    let quiet = dist.as_ref().is_some_and(|d| !d.is_primary());
    let terminal = if quiet { Terminal::default().quiet() } else { Terminal::default() };
    let result = bench_train(&config, &options, dist.as_ref(), &mut { terminal });
    let _ = std::fs::remove_file(&options.checkpoint);
    let r = result?;
    if quiet {
        return Ok(());
    }
    let all_reduce = r.all_reduce.as_ref().map_or(String::new(), |a| {
        format!(
            "; gradient all-reduce over {} ranks: {:.1}% of a step (per rank: {:.0} img/s averaged, {:.0} img/s local)",
            a.ranks,
            100.0 * a.share,
            a.averaged_images_per_sec,
            a.local_images_per_sec
        )
    });
    let shares: Vec<String> =
        r.share.named().iter().map(|(name, share)| format!("{name} {:.1}%", 100.0 * share)).collect();
    println!(
        "bench train: {} on {}, {} {}, {} SGD, {} steps, batch {}, prob {}{}: step {:.0} img/s; loop {:.0} img/s ({} images + evaluation of {} + checkpoint); time in {}{all_reduce}",
        r.model,
        r.device,
        r.precision,
        r.memory_format,
        r.optimizer,
        r.step_mode,
        r.batch_size,
        r.prob,
        if r.gmm { ", scorer + GMM" } else { "" },
        r.step_images_per_sec,
        r.loop_images_per_sec,
        r.loop_images,
        r.eval_images,
        shares.join(", ")
    );
    if let Some(path) = &b.json {
        resmooth::io::write_atomic(path, serde_json::to_string_pretty(&r)?.as_bytes())?;
    }
    Ok(())
}

/// The training configuration `bench train`'s flags describe (the reference's defaults for the
/// flags it does not have; `--gmm` as ReSmooth retraining: SampleSmooth, `--smooth-aug 0.4`) and
/// the benchmark's own options; both are checked by [`bench_train`].
fn configs(b: &BenchTrainArgs) -> (TrainConfig, BenchOptions) {
    let defaults = TrainConfig::default();
    let method = match b.gmm {
        true => MethodConfig { gmm: true, loss: LossName::SampleSmooth, smooth_aug: 0.4, ..defaults.method },
        false => defaults.method,
    };
    let config = TrainConfig {
        data: b.data.config(None),
        aug: b.aug.config(b.prob),
        model: b.compute.config(b.model.model.clone()),
        optim: OptimConfig { batch_size: b.batch_size, ..defaults.optim },
        method,
        run: RunConfig {
            gpu: b.device.gpu,
            workers: b.device.workers,
            cuda_graphs: b.device.cuda_graphs,
            dist_timeout: b.device.dist_timeout,
            ..defaults.run
        },
    };
    let options = BenchOptions {
        steps: b.steps,
        warmup: b.warmup,
        eval_images: b.eval_images,
        optimizer: b.optimizer,
        synthetic: b.synthetic,
        checkpoint: std::env::temp_dir().join(format!("resmooth-bench-{}.safetensors", std::process::id())),
    };
    (config, options)
}
