//! `resmooth bench augment` (augmentation pairs per second) and `resmooth bench train` (training
//! throughput of the step and of the whole loop, with the share of time in each phase).

use super::augment::load_source;
use super::Terminal;
use crate::cli::{BenchArgs, BenchAugmentArgs, BenchCommand, BenchTrainArgs};
use anyhow::{bail, Result};
use resmooth::config::{LossName, MethodConfig, OptimConfig, RunConfig, TrainConfig};
use resmooth::dist::Launch;
use resmooth::engine::{
    self,
    bench::{bench_augment, bench_train, BenchOptions},
};

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
