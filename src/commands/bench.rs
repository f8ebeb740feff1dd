//! `resmooth bench augment` (augmentation pairs per second) and `resmooth bench train` (training
//! throughput of the step and of the whole loop, with the share of time in each phase).

use super::augment::load_source;
use super::Terminal;
use crate::cli::{BenchArgs, BenchAugmentArgs, BenchCommand, BenchTrainArgs};
use anyhow::{bail, Result};
use resmooth::config::{ModelSpec, Precision};
use resmooth::engine::bench::{bench_augment, bench_train, TrainBench};

/// Runs `resmooth bench ...`.
pub fn bench(args: BenchArgs) -> Result<()> {
    match args.command {
        BenchCommand::Augment(b) => augment(&b),
        BenchCommand::Train(b) => train(&b),
    }
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
    if !(0.0..=1.0).contains(&b.prob) {
        bail!("--prob {} is outside [0, 1]", b.prob);
    }
    if b.aug.m > 30 {
        bail!("--M {} is outside 0..=30", b.aug.m);
    }
    if b.batch_size == 0 || b.steps == 0 || b.eval_images == Some(0) {
        bail!("--batch-size, --steps and --eval-images must be at least 1");
    }
    if let (ModelSpec::TorchScript(_), Precision::Bf16) = (&b.model.model, b.compute.precision) {
        bail!("--precision bf16 needs a built-in model; --model {} runs in fp32", b.model.model);
    }
    let data = (!b.synthetic).then(|| b.data.config(b.eval_images));
    let mut terminal = Terminal::default();
    let device = resmooth::device::select(b.device.gpu)?;
    let checkpoint = std::env::temp_dir().join(format!("resmooth-bench-{}.safetensors", std::process::id()));
    let bench = TrainBench {
        model: b.model.model.clone(),
        data,
        batch_size: b.batch_size,
        steps: b.steps,
        warmup: b.warmup,
        prob: b.prob,
        aug: b.aug.aug,
        n: b.aug.n,
        m: b.aug.m,
        gmm: b.gmm,
        precision: b.compute.precision,
        memory_format: b.compute.memory_format,
        optimizer: b.optimizer,
        cuda_graphs: b.device.cuda_graphs,
        device,
        workers: b.device.workers,
        eval_images: b.eval_images.unwrap_or(10_000),
        checkpoint: checkpoint.clone(),
    };
    let result = bench_train(&bench, &mut terminal);
    let _ = std::fs::remove_file(&checkpoint);
    let r = result?;
    let shares: Vec<String> =
        r.share.named().iter().map(|(name, share)| format!("{name} {:.1}%", 100.0 * share)).collect();
    println!(
        "bench train: {} on {}, {} {}, {} SGD, {} steps, batch {}, prob {}{}: step {:.0} img/s; loop {:.0} img/s ({} images + evaluation of {} + checkpoint); time in {}",
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
