//! The augmentation commands: `resmooth augment apply` (one op, explicit value), `resmooth augment
//! preview` (a PNG grid of original and augmented views) and `resmooth bench augment` (pairs/s).

use super::font;
use super::{original_view, Applied, Augmenter, Op, AUGMENTATIONS};
use crate::data::{self, ImageSet, MEAN, STD};
use crate::pipeline::sample_rng;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `resmooth augment ...`.
#[derive(Debug, Args)]
pub struct AugmentArgs {
    #[command(subcommand)]
    pub command: AugmentCommand,
}

/// The `augment` subcommands.
#[derive(Debug, Subcommand)]
pub enum AugmentCommand {
    /// Apply one op with an explicit signed value (no random sign) to a PNG: the pixels Pillow gives
    /// for the reference's op function with that value.
    Apply(ApplyArgs),
    /// Write a PNG grid of original and augmented training views, labelled with the ops applied.
    Preview(PreviewArgs),
}

/// Flags of `resmooth augment apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Op: Identity, ShearX, ShearY, TranslateX, TranslateY, Rotate, AutoContrast, Invert, Equalize,
    /// Solarize, Posterize, Color, Brightness, Sharpness or Contrast.
    #[arg(long)]
    pub op: String,
    /// The op's value as the reference passes it: shear coefficient, translation as a fraction of
    /// the size, degrees, solarize threshold, posterize bits, or enhancement factor.
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.0)]
    pub value: f64,
    /// Input image (any format the image crate reads; converted to RGB).
    pub input: PathBuf,
    /// Output PNG.
    pub output: PathBuf,
}

/// Which images the preview and the benchmark use.
#[derive(Debug, Clone, Args)]
pub struct Source {
    /// Dataset (as `resmooth train --dataset`), or `synthetic` for random 32x32 images.
    #[arg(long, default_value = "synthetic")]
    pub dataset: String,
    /// Folder holding the dataset files.
    #[arg(long, default_value = "data")]
    pub dataroot: PathBuf,
    /// Augmentation of the augmented view: ra, aa, rotate, jigsaw or default.
    #[arg(long, default_value = "ra")]
    pub aug: String,
    /// RandAugment: number of ops per image.
    #[arg(long = "N", default_value_t = 2)]
    pub n: usize,
    /// RandAugment: magnitude, 0..=30.
    #[arg(long = "M", default_value_t = 28)]
    pub m: usize,
    /// Cutout square side in pixels (0 = off).
    #[arg(long, default_value_t = 0)]
    pub cutout: usize,
    /// Seed of the views.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Flags of `resmooth augment preview`.
#[derive(Debug, Args)]
pub struct PreviewArgs {
    #[command(flatten)]
    pub source: Source,
    /// Number of training images shown.
    #[arg(long, default_value_t = 32)]
    pub count: usize,
    /// Output PNG.
    #[arg(long, default_value = "grid.png")]
    pub out: PathBuf,
}

/// `resmooth bench ...`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Original + augmented view pairs per second (crop, flip, augmentation and normalisation to
    /// float CHW), made in parallel on `--threads` threads.
    Augment(BenchAugmentArgs),
    /// Training images per second: the model step alone and the whole pipeline, with a breakdown.
    Train(crate::bench::BenchTrainArgs),
}

/// Flags of `resmooth bench augment`.
#[derive(Debug, Args)]
pub struct BenchAugmentArgs {
    #[command(flatten)]
    pub source: Source,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Seconds to measure (after one warm-up batch).
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Pairs per batch.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
}

/// Runs `resmooth augment ...`.
pub fn run_augment(args: AugmentArgs) -> Result<()> {
    match args.command {
        AugmentCommand::Apply(a) => apply(&a),
        AugmentCommand::Preview(p) => preview(&p),
    }
}

/// Runs `resmooth bench ...`.
pub fn run_bench(args: BenchArgs) -> Result<()> {
    match args.command {
        BenchCommand::Augment(b) => {
            let rate = bench_augment(&b)?;
            println!(
                "bench augment: aug {} N {} M {} cutout {} threads {}: {rate:.0} pairs/s",
                b.source.aug, b.source.n, b.source.m, b.source.cutout, b.threads
            );
            Ok(())
        }
        BenchCommand::Train(b) => crate::bench::run_train_bench(b).map(|_| ()),
    }
}

fn write_png(path: &Path, h: usize, w: usize, hwc: Vec<u8>) -> Result<()> {
    image::RgbImage::from_raw(w as u32, h as u32, hwc)
        .context("image buffer size")?
        .save(path)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn apply(a: &ApplyArgs) -> Result<()> {
    let op = Op::from_name(&a.op)
        .with_context(|| format!("unknown --op '{}'; expected one of {}", a.op, Op::ALL.map(Op::name).join(", ")))?;
    if !a.value.is_finite() {
        bail!("--value {} must be a finite number", a.value);
    }
    let img = image::open(&a.input).with_context(|| format!("cannot read {}", a.input.display()))?.to_rgb8();
    let (h, w, src) = (img.height() as usize, img.width() as usize, img.into_raw());
    let mut out = vec![0u8; src.len()];
    op.apply(&src, h, w, a.value, &mut out);
    write_png(&a.output, h, w, out)
}

/// Random 32x32 images with smooth structure (gradients and blocks), so ops have an effect.
pub fn synthetic_set(count: usize, seed: u64) -> ImageSet {
    let (h, w) = (32, 32);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut set = ImageSet::new(h, w);
    let mut img = vec![0u8; h * w * 3];
    for i in 0..count {
        let base: [f32; 3] = [rng.random(), rng.random(), rng.random()];
        let (gy, gx): (f32, f32) = (rng.random_range(-4.0..4.0), rng.random_range(-4.0..4.0));
        let (by, bx) = (rng.random_range(0..24), rng.random_range(0..24));
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    let mut v = base[c] * 200.0 + gy * y as f32 * (c as f32 - 1.0) + gx * x as f32;
                    if (by..by + 9).contains(&y) && (bx..bx + 9).contains(&x) {
                        v = 255.0 - v;
                    }
                    img[(y * w + x) * 3 + c] = v.clamp(0.0, 255.0) as u8 ^ (rng.random::<u8>() & 7);
                }
            }
        }
        set.push(&img, (i % 10) as i64);
    }
    set
}

fn load_source(s: &Source, count: usize) -> Result<(ImageSet, Augmenter)> {
    if !AUGMENTATIONS.contains(&s.aug.as_str()) {
        bail!("unknown --aug '{}'; expected one of {}", s.aug, AUGMENTATIONS.join(", "));
    }
    let aug = Augmenter::from_flags(&s.aug, s.n, s.m, s.cutout, &s.dataset).map_err(anyhow::Error::msg)?;
    let set = if s.dataset == "synthetic" {
        synthetic_set(count, s.seed)
    } else {
        data::load(&s.dataset, &s.dataroot)?.train
    };
    if set.is_empty() {
        bail!("--dataset {} has no training images", s.dataset);
    }
    Ok((set, aug))
}

/// How a preview label names one applied op.
fn label(name: &str, value: f32) -> String {
    match name {
        "AutoContrast" | "Invert" | "Equalize" | "Identity" => name.to_string(),
        "Jigsaw" => format!("{name} {value:04}"),
        _ => format!("{name} {}", (value * 1000.0).round() / 1000.0),
    }
}

fn preview(p: &PreviewArgs) -> Result<()> {
    if p.count == 0 {
        bail!("--count must be at least 1");
    }
    let (set, aug) = load_source(&p.source, p.count)?;
    let (h, w) = (set.height, set.width);
    let scale = (96 / h.max(w)).max(1);
    let (th, tw) = (h * scale, w * scale);
    let text_scale = 2;
    let line = 6 * text_scale;
    let mut order: Vec<usize> = (0..set.len()).collect();
    rand::seq::SliceRandom::shuffle(&mut order[..], &mut ChaCha8Rng::seed_from_u64(p.source.seed));
    let mut tiles = Vec::new();
    for &i in order.iter().take(p.count) {
        let (mut ori, mut augd) = (vec![0u8; h * w * 3], vec![0u8; h * w * 3]);
        original_view(set.image(i), h, w, &mut sample_rng(p.source.seed, 0, i as u64, 0), &mut ori);
        let applied = aug.augmented_view(set.image(i), h, w, &mut sample_rng(p.source.seed, 0, i as u64, 1), &mut augd);
        tiles.push((ori, augd, applied));
    }
    let lines = tiles.iter().map(|t| labels(&t.2).len()).max().unwrap_or(0).max(1);
    let (cell_w, cell_h) = (2 * tw + 12, th + 6 + lines * line + 8);
    let cols = p.count.min(8);
    let rows = p.count.div_ceil(cols);
    let (gw, gh) = (cols * cell_w, rows * cell_h);
    let mut grid = vec![32u8; gw * gh * 3];
    for (k, (ori, augd, applied)) in tiles.iter().enumerate() {
        let (x0, y0) = (k % cols * cell_w + 4, k / cols * cell_h + 4);
        let mut shown = augd.clone();
        if let Some([cy0, cy1, cx0, cx1]) = applied.cutout {
            // zero after normalisation is the mean colour
            for y in cy0 as usize..cy1 as usize {
                for x in cx0 as usize..cx1 as usize {
                    for c in 0..3 {
                        shown[(y * w + x) * 3 + c] = (MEAN[c] * 255.0).round() as u8;
                    }
                }
            }
        }
        for (img, dx) in [(ori, 0), (&shown, tw + 4)] {
            for y in 0..th {
                for x in 0..tw {
                    let s = ((y / scale) * w + x / scale) * 3;
                    let d = ((y0 + y) * gw + x0 + dx + x) * 3;
                    grid[d..d + 3].copy_from_slice(&img[s..s + 3]);
                }
            }
        }
        for (j, text) in labels(applied).iter().enumerate() {
            font::draw_text(&mut grid, gw, x0, y0 + th + 6 + j * line, text, text_scale, [235, 235, 235]);
        }
    }
    write_png(&p.out, gh, gw, grid)?;
    println!("wrote {} ({} images, original | augmented)", p.out.display(), tiles.len());
    Ok(())
}

fn labels(a: &Applied) -> Vec<String> {
    let mut out: Vec<String> = a.ops.iter().map(|o| label(o.name, o.value)).collect();
    if let Some([y0, y1, x0, x1]) = a.cutout {
        out.push(format!("Cutout {y0}:{y1},{x0}:{x1}"));
    }
    out
}

/// `(x / 255 - mean) / std` per channel, HWC uint8 to CHW float.
pub fn normalise_chw(src: &[u8], h: usize, w: usize, out: &mut [f32]) {
    let plane = h * w;
    for c in 0..3 {
        let (scale, shift) = (1.0 / (255.0 * STD[c]), MEAN[c] / STD[c]);
        for (o, px) in out[c * plane..(c + 1) * plane].iter_mut().zip(src.chunks_exact(3)) {
            *o = px[c] as f32 * scale - shift;
        }
    }
}

/// Makes the normalised original and augmented views of image `i` (one training pair), zeroing
/// the augmented view's cutout box.
pub fn make_pair(
    set: &ImageSet,
    aug: &Augmenter,
    seed: u64,
    i: usize,
    bytes: &mut [u8],
    ori: &mut [f32],
    augd: &mut [f32],
) {
    let (h, w) = (set.height, set.width);
    original_view(set.image(i), h, w, &mut sample_rng(seed, 0, i as u64, 0), bytes);
    normalise_chw(bytes, h, w, ori);
    let applied = aug.augmented_view(set.image(i), h, w, &mut sample_rng(seed, 0, i as u64, 1), bytes);
    normalise_chw(bytes, h, w, augd);
    if let Some([y0, y1, x0, x1]) = applied.cutout {
        for c in 0..3 {
            for y in y0 as usize..y1 as usize {
                augd[c * h * w + y * w + x0 as usize..c * h * w + y * w + x1 as usize].fill(0.0);
            }
        }
    }
}

/// Pairs per second made by `threads` workers over the source's images.
pub fn bench_augment(b: &BenchAugmentArgs) -> Result<f64> {
    if b.threads == 0 || b.batch_size == 0 {
        bail!("--threads and --batch-size must be at least 1");
    }
    let (set, aug) = load_source(&b.source, 4096)?;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(b.threads).build()?;
    let per = set.image_bytes();
    let bs = b.batch_size;
    let (mut ori, mut augd) = (vec![0f32; bs * per], vec![0f32; bs * per]);
    let mut batch = |start: usize| {
        pool.install(|| {
            ori.par_chunks_mut(per).zip(augd.par_chunks_mut(per)).enumerate().for_each_init(
                || vec![0u8; per],
                |bytes, (k, (o, a))| make_pair(&set, &aug, b.source.seed, (start + k) % set.len(), bytes, o, a),
            )
        })
    };
    batch(0);
    let (t, mut pairs) = (Instant::now(), 0usize);
    while t.elapsed().as_secs_f64() < b.seconds {
        batch(pairs + bs);
        pairs += bs;
    }
    Ok(pairs as f64 / t.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_matches_the_formula() {
        let src = [0u8, 128, 255];
        let mut out = [0f32; 3];
        normalise_chw(&src, 1, 1, &mut out);
        for c in 0..3 {
            let want = (src[c] as f32 / 255.0 - MEAN[c]) / STD[c];
            assert!((out[c] - want).abs() < 1e-5, "{c}: {} {want}", out[c]);
        }
    }

    #[test]
    fn labels_name_ops_and_cutout() {
        let a = Applied {
            ops: vec![super::super::AppliedOp { name: "ShearX", value: -0.28 }],
            cutout: Some([0, 8, 3, 19]),
        };
        assert_eq!(labels(&a), vec!["ShearX -0.28".to_string(), "Cutout 0:8,3:19".to_string()]);
    }
}
