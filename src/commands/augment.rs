//! `resmooth augment apply` (one op, explicit value), `resmooth augment preview` (a PNG grid of
//! original and augmented views, labelled with the ops applied) and `resmooth augment views`
//! (chosen samples' views of one epoch as PNGs); also the image source that `bench augment`
//! shares.

use super::Terminal;
use crate::cli::{ApplyArgs, AugmentArgs, AugmentCommand, PreviewArgs, Source, ViewsArgs};
use anyhow::{bail, Context, Result};
use resmooth::augment::{Applied, Augmenter, Op, OpName};
use resmooth::config::{check_magnitude, DataConfig, DatasetName, TrainConfig};
use resmooth::data::{self, synthetic_set, ImageSet, Normalisation};
use resmooth::pipeline::{make_view, shown_view};
use resmooth::report::font;
use std::path::Path;

/// Runs `resmooth augment ...`.
pub fn augment(args: AugmentArgs) -> Result<()> {
    match args.command {
        AugmentCommand::Apply(a) => apply(&a),
        AugmentCommand::Preview(p) => preview(&p),
        AugmentCommand::Views(v) => views(&v),
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

/// The training images of `--dataset` (or `count` synthetic ones, normalised as CIFAR), their
/// normalisation and the augmentation of `s`.
pub fn load_source(s: &Source, count: usize) -> Result<(ImageSet, Normalisation, Augmenter)> {
    check_magnitude(s.aug.aug, s.aug.m)?;
    let dataset = s.dataset()?;
    let aug = Augmenter::new(s.aug.aug, s.aug.n, s.aug.m, s.aug.cutout, dataset.unwrap_or(DatasetName::Cifar10))
        .with_crop_padding(s.aug.crop_padding);
    let (set, norm) = match dataset {
        None => (synthetic_set(count, s.seed), Normalisation::CIFAR),
        Some(name) => {
            let config = DataConfig {
                dataset: name,
                dataroot: s.dataroot.clone(),
                image_size: s.image_size,
                ..TrainConfig::default().data
            };
            config.check()?;
            let ds =
                data::load(name, &config.dataroot, data::Size::from_flag(config.image_size), &mut Terminal::default())?;
            (ds.train, ds.normalisation)
        }
    };
    if set.is_empty() {
        bail!("--dataset {} has no training images", s.dataset);
    }
    Ok((set, norm, aug))
}

/// How a preview label names one applied op: ops whose value means nothing by name alone.
fn label(name: OpName, value: f32) -> String {
    match name {
        OpName::Op(Op::AutoContrast | Op::Invert | Op::Equalize | Op::Identity)
        | OpName::Sobel
        | OpName::VerticalFlip => name.to_string(),
        OpName::Jigsaw => format!("{name} {value:04}"),
        _ => format!("{name} {}", (value * 1000.0).round() / 1000.0),
    }
}

fn labels(a: &Applied) -> Vec<String> {
    let mut out: Vec<String> = a.ops.iter().map(|o| label(o.name, o.value)).collect();
    if let Some([y0, y1, x0, x1]) = a.cutout {
        out.push(format!("{} {y0}:{y1},{x0}:{x1}", OpName::Cutout));
    }
    out
}

fn preview(p: &PreviewArgs) -> Result<()> {
    if p.count == 0 {
        bail!("--count must be at least 1");
    }
    let (set, norm, aug) = load_source(&p.source, p.count)?;
    let (h, w) = (set.height, set.width);
    let scale = (96 / h.max(w)).max(1);
    let (th, tw) = (h * scale, w * scale);
    let text_scale = 2;
    let line = 6 * text_scale;
    let mut order: Vec<usize> = (0..set.len()).collect();
    let seed = p.source.seed;
    rand::seq::SliceRandom::shuffle(
        &mut order[..],
        &mut <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed),
    );
    // the cutout box, zeroed after normalisation in training, shows as the mean colour
    let mut tiles = Vec::new();
    for &i in order.iter().take(p.count) {
        let (ori, _) = shown_view(&set, &aug, norm, seed, 0, i, true);
        let (augd, applied) = shown_view(&set, &aug, norm, seed, 0, i, false);
        tiles.push((ori, augd, applied.expect("an augmented view")));
    }
    let lines = tiles.iter().map(|t| labels(&t.2).len()).max().unwrap_or(0).max(1);
    let (cell_w, cell_h) = (2 * tw + 12, th + 6 + lines * line + 8);
    let cols = p.count.min(8);
    let rows = p.count.div_ceil(cols);
    let (gw, gh) = (cols * cell_w, rows * cell_h);
    let mut grid = vec![32u8; gw * gh * 3];
    for (k, (ori, augd, applied)) in tiles.iter().enumerate() {
        let (x0, y0) = (k % cols * cell_w + 4, k / cols * cell_h + 4);
        for (img, dx) in [(ori, 0), (augd, tw + 4)] {
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

/// The views training makes of the chosen samples, written with `make_view` (the pipeline's own
/// function), and one JSON line per sample: its index, label, the ops applied and the cutout box.
fn views(v: &ViewsArgs) -> Result<()> {
    let largest = v.indices.iter().copied().max().unwrap_or(0);
    let (set, _, aug) = load_source(&v.source, largest + 1)?;
    if largest >= set.len() {
        bail!("--index {largest} is outside the {} training images (0..{})", set.len(), set.len());
    }
    std::fs::create_dir_all(&v.out).with_context(|| format!("cannot create {}", v.out.display()))?;
    let (h, w, seed) = (set.height, set.width, v.source.seed);
    for &i in &v.indices {
        let mut original = vec![0u8; set.image_bytes()];
        make_view(&set, &aug, seed, v.epoch, i, true, &mut original);
        let mut augmented = vec![0u8; set.image_bytes()];
        let applied = make_view(&set, &aug, seed, v.epoch, i, false, &mut augmented).unwrap_or_default();
        write_png(&v.out.join(format!("{i}_original.png")), h, w, original)?;
        write_png(&v.out.join(format!("{i}_augmented.png")), h, w, augmented)?;
        let ops: Vec<(&str, f32)> = applied.ops.iter().map(|o| (o.name.name(), o.value)).collect();
        let line = serde_json::json!({"index": i, "label": set.labels[i], "ops": ops, "cutout": applied.cutout});
        println!("{line}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use resmooth::augment::AppliedOp;

    #[test]
    fn labels_name_ops_and_cutout() {
        let a = Applied { ops: vec![AppliedOp { name: Op::ShearX.into(), value: -0.28 }], cutout: Some([0, 8, 3, 19]) };
        assert_eq!(labels(&a), vec!["ShearX -0.28".to_string(), "Cutout 0:8,3:19".to_string()]);
        let steps =
            [(OpName::Op(Op::Invert), 0.0), (OpName::Jigsaw, 123.0), (OpName::Cutout, 0.25), (OpName::Sobel, 0.0)];
        let a = Applied { ops: steps.map(|(name, value)| AppliedOp { name, value }).to_vec(), cutout: None };
        assert_eq!(labels(&a), ["Invert", "Jigsaw 0123", "Cutout 0.25", "Sobel"]);
    }
}
