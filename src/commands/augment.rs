//! `resmooth augment apply` (one op, explicit value), `resmooth augment preview` (a PNG grid of
//! original and augmented views, labelled with the ops applied) and `resmooth augment views`
//! (chosen samples' views of one epoch as PNGs); also the image source that `bench augment`
//! shares.

use super::Terminal;
use crate::cli::{ApplyArgs, AugmentArgs, AugmentCommand, PreviewArgs, Source, ViewsArgs};
use anyhow::{bail, Context, Result};
use resmooth::augment::imagenet::{ImageNetOp, ImageNetOutput, IMAGENET_EVAL_RESIZE, IMAGENET_SIZE};
use resmooth::augment::{Applied, Augmenter, Op, OpName};
use resmooth::config::{check_magnitude, DataConfig, DatasetName, TrainConfig};
use resmooth::data::resize::Region;
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
    if ImageNetOp::NAMES.contains(&a.op.as_str()) {
        return apply_imagenet(a);
    }
    let op = Op::from_name(&a.op).with_context(|| {
        format!(
            "unknown --op '{}'; expected one of {}, {}",
            a.op,
            Op::ALL.map(Op::name).join(", "),
            ImageNetOp::NAMES.join(", ")
        )
    })?;
    let given = [("--box", a.crop_box.is_some()), ("--size", a.size.is_some()), ("--resize", a.resize.is_some())]
        .into_iter()
        .chain([("--factors", a.factors.is_some()), ("--order", a.order.is_some()), ("--alphas", a.alphas.is_some())]);
    if let Some((flag, _)) = given.into_iter().find(|(_, g)| *g) {
        bail!(
            "{flag} is a parameter of the ImageNet ops ({}); --op {} takes --value",
            ImageNetOp::NAMES.join(", "),
            a.op
        );
    }
    let value = a.value.unwrap_or(0.0);
    if !value.is_finite() {
        bail!("--value {value} must be a finite number");
    }
    let (h, w, src) = read_rgb(&a.input)?;
    let mut out = vec![0u8; src.len()];
    op.apply(&src, h, w, value, &mut out);
    write_png(&a.output, h, w, out)
}

fn read_rgb(path: &Path) -> Result<(usize, usize, Vec<u8>)> {
    let img = image::open(path).with_context(|| format!("cannot read {}", path.display()))?.to_rgb8();
    Ok((img.height() as usize, img.width() as usize, img.into_raw()))
}

/// Exactly `N` comma-separated values of `flag` (required by `op`).
fn exactly<T: Copy + std::fmt::Debug, const N: usize>(values: &Option<Vec<T>>, flag: &str, op: &str) -> Result<[T; N]> {
    let Some(v) = values else { bail!("--op {op} needs {flag} with {N} comma-separated values") };
    <[T; N]>::try_from(v.as_slice())
        .map_err(|_| anyhow::anyhow!("{flag} takes {N} comma-separated values, not {}", v.len()))
}

/// `augment apply` of an ImageNet op: its flags into an [`ImageNetOp`], the result as a PNG, or
/// for Lighting (which changes the [0, 1] floats, no uint8 pixel) its alphas and offset as JSON.
fn apply_imagenet(a: &ApplyArgs) -> Result<()> {
    let op = a.op.as_str();
    if a.value.is_some() {
        bail!("--op {op} takes no --value; its parameters are --box/--size, --factors/--order, --resize/--size or --alphas");
    }
    let imagenet_op = match op {
        "random-resized-crop" => {
            let [top, left, height, width] = exactly(&a.crop_box, "--box", op)?;
            ImageNetOp::RandomResizedCrop {
                region: Region { top, left, height, width },
                size: a.size.unwrap_or(IMAGENET_SIZE),
            }
        }
        "color-jitter" => {
            let order = match &a.order {
                None => [0, 1, 2],
                Some(_) => exactly(&a.order, "--order", op)?,
            };
            ImageNetOp::ColorJitter(ImageNetOp::jitter(order, exactly(&a.factors, "--factors", op)?)?)
        }
        "imagenet-eval" => {
            ImageNetOp::Eval { resize: a.resize.unwrap_or(IMAGENET_EVAL_RESIZE), crop: a.size.unwrap_or(IMAGENET_SIZE) }
        }
        _ => {
            if a.output.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")) {
                bail!(
                    "--op lighting adds an RGB offset to the [0, 1] floats after ToTensor and changes no uint8 pixel, \
                     so it writes no PNG; give a .json OUTPUT for its alphas and offset instead of {}",
                    a.output.display()
                );
            }
            ImageNetOp::Lighting { alphas: exactly(&a.alphas, "--alphas", op)? }
        }
    };
    let (h, w, src) = read_rgb(&a.input)?;
    match imagenet_op.apply(&src, (h, w))? {
        ImageNetOutput::Image { height, width, pixels } => write_png(&a.output, height, width, pixels),
        ImageNetOutput::Offset { alphas, offset } => {
            let text = serde_json::json!({"op": op, "alphas": alphas, "offset": offset});
            resmooth::io::write_atomic(&a.output, serde_json::to_string_pretty(&text)?.as_bytes())
                .with_context(|| format!("cannot write {}", a.output.display()))
        }
    }
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
