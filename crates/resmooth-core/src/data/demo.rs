//! The built-in `demo` dataset: 10 classes of 32x32 striped, ringed and spotted textures in two
//! colour families, generated in memory from a fixed seed (no file, no download), so that the
//! whole method runs anywhere in minutes and its detection pass has something to find.
//!
//! # The design: which augmentations should make out-of-distribution views, and why
//!
//! A class is a *pattern* and a *colour family*: 5 patterns x 2 families.
//!
//! - Patterns: `horizontal`, `vertical` and `diagonal` stripes (diagonal: 45 or 135 degrees,
//!   half each, so that the horizontal flip of the crop-and-flip maps the class onto itself),
//!   concentric `rings` and scattered `spots`. Each stripe orientation is jittered by at most
//!   6 degrees; the stripe period, phase, ring centre and spots are drawn per image.
//! - Colour families: `warm` (reds to yellows) and `cool` (cyans to blues). Every colour is
//!   `127.5 + lightness * (1, 1, 1) + chroma` with a lightness symmetric about 0, and a cool
//!   chroma is exactly the negated warm one: the RGB inverse `255 - x` of a warm image is
//!   distributed as a cool image of the same pattern, and the other way round.
//! - Each image is a pattern mask blending a foreground and a background shade of its family
//!   (contrast drawn per image, some images faint), plus independent pixel noise of +-10. Every
//!   channel stays in 20..=235 (a range `255 - x` maps onto itself).
//!
//! Against the reference's RandAugment at Table 1's magnitude (M = 28), that gives:
//!
//! 1. **Invert** turns every view into a well-formed image of the *other* colour family, the
//!    class's partner: the baseline predicts the partner with confidence, so nearly every view
//!    with Invert should be OOD. It should rank first.
//! 2. **Rotate** by +-28 degrees carries horizontal stripes to 28 degrees (nearer the diagonal
//!    class's 45 than their own 0), vertical ones to 62 or 118 degrees and diagonal ones to 17 or
//!    73 (nearer horizontal or vertical): the three stripe patterns, 60% of the classes, cross
//!    into another class; rings and spots do not care. It should rank second, below Invert.
//! 3. **AutoContrast** and **Equalize** stretch each channel on its own: the two shades of one
//!    hue become nearly black and white, which washes out the colour family; faint images also
//!    get their noise amplified. They should come next.
//! 4. **TranslateX/Y** (13 of 32 pixels) and **ShearX/Y** (0.28: stripes tilt by at most 16
//!    degrees, less than halfway to another class) keep the cues but bring black bands and
//!    corners never seen in training (the crop pads 4 pixels): some views, a middle rank.
//! 5. **Identity**, **Solarize**, **Posterize**, **Sharpness**, **Color** and **Brightness**
//!    should rank last: at M = 28 the reference's Solarize threshold is 239, above every pixel
//!    here (it changes nothing unless Brightness came first), its Posterize keeps 7 bits, Color
//!    (x1.78 saturation) and Brightness (x1.78) keep the hue, Sharpness only sharpens the noise.
//!
//! With N = 2 ops per view a view holds two ops, so each op's share is diluted by the other op
//! drawn with it (a view with Identity is as OOD as its other op makes it).
//!
//! What `resmooth run --dataset demo` measured against this design is in the README ("The demo
//! dataset"); `tests/demo_cli.rs` checks, at a smaller size, that Invert and Rotate views are
//! judged OOD more often than Identity's.
//!
//! The generator uses only additions, multiplications, divisions and square roots (correctly
//! rounded in IEEE arithmetic, no library trigonometry) and ChaCha8 streams, so the images are
//! the same bytes on every machine.

use super::{pixel_statistics, Dataset, ImageSet};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The dataset's name, as `--dataset` spells it.
pub const DEMO: &str = "demo";
/// Training images (500 per class).
pub const DEMO_TRAIN: usize = 5000;
/// Test images (100 per class).
pub const DEMO_TEST: usize = 1000;
/// The seed every demo image is drawn from: the same dataset for every run and `--seed`.
pub const DEMO_SEED: u64 = 26;

const SIDE: usize = 32;
/// The 5 patterns, in label order within a colour family.
const PATTERNS: [Pattern; 5] =
    [Pattern::Horizontal, Pattern::Vertical, Pattern::Diagonal, Pattern::Rings, Pattern::Spots];
/// The 2 colour families, in label order.
const FAMILIES: [Family; 2] = [Family::Warm, Family::Cool];
/// Every channel of a demo image lies in `LOW..=255 - LOW`, a range `255 - x` maps onto itself.
const LOW: f64 = 20.0;
/// Pixel noise: uniform in `-NOISE..=NOISE` per channel.
const NOISE: f64 = 10.0;

/// The class names in label order: `warm-horizontal`, …, `cool-spots`; label =
/// `family * 5 + pattern`.
pub fn demo_classes() -> Vec<String> {
    FAMILIES.iter().flat_map(|f| PATTERNS.iter().map(move |p| format!("{}-{}", f.name(), p.name()))).collect()
}

/// The demo dataset: [`DEMO_TRAIN`] training and [`DEMO_TEST`] test images drawn from
/// [`DEMO_SEED`], normalised with the statistics of its training images.
pub fn demo() -> Dataset {
    demo_sized(DEMO_TRAIN, DEMO_TEST, DEMO_SEED)
}

/// A demo dataset of `train` and `test` images (labels `i % 10`) drawn from `seed`.
pub fn demo_sized(train: usize, test: usize, seed: u64) -> Dataset {
    let train = demo_split(train, seed, 0);
    Dataset {
        name: DEMO.into(),
        classes: demo_classes(),
        normalisation: pixel_statistics(&train),
        test: demo_split(test, seed, 1),
        train,
    }
}

/// What `resmooth data fetch demo` says: there is nothing to fetch.
pub(super) fn described() -> String {
    format!(
        "{DEMO} is built in: its {DEMO_TRAIN} training and {DEMO_TEST} test images are generated in memory from seed \
         {DEMO_SEED} whenever a command uses it; nothing to download (`resmooth data info {DEMO}` describes it)"
    )
}

/// What `resmooth data check demo` says, having generated the dataset.
pub(super) fn checked() -> String {
    let d = demo();
    let k = d.num_classes();
    format!(
        "ok {DEMO}: built in, generated in memory from seed {DEMO_SEED}: {} training and {} test images in {k} classes \
         (nothing on disk to check)",
        d.train.len(),
        d.test.len(),
    )
}

/// `count` images of split `split` (labels `i % 10`); image `i` depends only on the seed, the
/// split and `i`.
fn demo_split(count: usize, seed: u64, split: u64) -> ImageSet {
    let mut set = ImageSet::new(SIDE, SIDE);
    set.pixels.reserve(count * SIDE * SIDE * 3);
    for i in 0..count {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream((split << 32) | i as u64);
        let label = i % (PATTERNS.len() * FAMILIES.len());
        let (family, pattern) = (FAMILIES[label / PATTERNS.len()], PATTERNS[label % PATTERNS.len()]);
        set.push(&draw(family, pattern, &mut rng), label as i64);
    }
    set
}

/// A colour family: the hue range of its chroma.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Family {
    Warm,
    Cool,
}

impl Family {
    fn name(self) -> &'static str {
        match self {
            Family::Warm => "warm",
            Family::Cool => "cool",
        }
    }
}

/// What the mask of an image looks like.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pattern {
    Horizontal,
    Vertical,
    Diagonal,
    Rings,
    Spots,
}

impl Pattern {
    fn name(self) -> &'static str {
        match self {
            Pattern::Horizontal => "horizontal",
            Pattern::Vertical => "vertical",
            Pattern::Diagonal => "diagonal",
            Pattern::Rings => "rings",
            Pattern::Spots => "spots",
        }
    }
}

/// The chroma (a zero-sum RGB direction, largest channel 1 - mean) of hue `h` in `[0, 6)` on
/// the hexcone (0 red, 1 yellow, 2 green, 3 cyan, 4 blue, 5 magenta), piecewise linear.
fn chroma(h: f64) -> [f64; 3] {
    let ramp = |d: f64| (2.0 - d).clamp(0.0, 1.0);
    let dist = |c: f64| {
        let d = (h - c).abs();
        d.min(6.0 - d)
    };
    // red peaks at hue 0, green at 2, blue at 4
    let rgb = [ramp(dist(0.0)), ramp(dist(2.0)), ramp(dist(4.0))];
    let mean = (rgb[0] + rgb[1] + rgb[2]) / 3.0;
    rgb.map(|c| c - mean)
}

/// One shade of a family: `127.5 + lightness + amount * chroma`, the cool family's chroma the
/// negated warm one (hues 0..1, red to yellow, become 3..4, cyan to blue).
fn shade(family: Family, hue: f64, amount: f64, lightness: f64) -> [f64; 3] {
    let sign = if family == Family::Warm { 1.0 } else { -1.0 };
    let c = chroma(hue);
    [0, 1, 2].map(|k| 127.5 + lightness + sign * amount * c[k])
}

/// A unit vector for angle `base` (an exact unit vector) turned by a small jitter `j` (radians,
/// about): `base + j * perpendicular`, normalised.
fn jittered(base: [f64; 2], j: f64) -> [f64; 2] {
    let (x, y) = (base[0] - j * base[1], base[1] + j * base[0]);
    let n = (x * x + y * y).sqrt();
    [x / n, y / n]
}

/// A soft stripe profile of coordinate `t` (in periods): 1 on the stripe, 0 between.
fn stripe(t: f64) -> f64 {
    let f = t - t.floor();
    let tri = (2.0 * f - 1.0).abs(); // 1 at the stripe centre, 0 half a period away
    ((tri - 0.5) * 3.0 + 0.5).clamp(0.0, 1.0)
}

/// The pattern's mask over the image, row-major, values in [0, 1].
fn mask(pattern: Pattern, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let period: f64 = rng.random_range(4.5..8.0);
    let phase: f64 = rng.random();
    let jitter: f64 = rng.random_range(-0.1..0.1); // about +-6 degrees
    let centre = [rng.random_range(-4.0..36.0), rng.random_range(-4.0..36.0)];
    let spots: Vec<([f64; 2], f64)> = (0..rng.random_range(6..12))
        .map(|_| ([rng.random_range(0.0..32.0), rng.random_range(0.0..32.0)], rng.random_range(2.0..4.0)))
        .collect();
    let h = std::f64::consts::FRAC_1_SQRT_2;
    // the direction across the stripes: horizontal stripes vary along y
    let across = match pattern {
        Pattern::Horizontal => jittered([0.0, 1.0], jitter),
        Pattern::Vertical => jittered([1.0, 0.0], jitter),
        Pattern::Diagonal if rng.random_bool(0.5) => jittered([h, h], jitter),
        _ => jittered([h, -h], jitter),
    };
    let mut m = Vec::with_capacity(SIDE * SIDE);
    for y in 0..SIDE {
        for x in 0..SIDE {
            let (px, py) = (x as f64 + 0.5, y as f64 + 0.5);
            m.push(match pattern {
                Pattern::Horizontal | Pattern::Vertical | Pattern::Diagonal => {
                    stripe((px * across[0] + py * across[1]) / period + phase)
                }
                Pattern::Rings => {
                    let (dx, dy) = (px - centre[0], py - centre[1]);
                    stripe((dx * dx + dy * dy).sqrt() / period + phase)
                }
                Pattern::Spots => spots
                    .iter()
                    .map(|(c, r)| {
                        let (dx, dy) = (px - c[0], py - c[1]);
                        (r + 0.5 - (dx * dx + dy * dy).sqrt()).clamp(0.0, 1.0)
                    })
                    .fold(0.0, f64::max),
            });
        }
    }
    m
}

/// One HWC image of `family` and `pattern`.
fn draw(family: Family, pattern: Pattern, rng: &mut ChaCha8Rng) -> Vec<u8> {
    let hue: f64 = rng.random_range(0.0..1.0);
    let amount: f64 = rng.random_range(70.0..110.0);
    // the two shades' lightness: symmetric about 0, apart by the contrast, faint for some images
    let contrast: f64 = rng.random_range(15.0..80.0);
    let middle: f64 = rng.random_range(-25.0..25.0);
    let (light, dark) = (middle + contrast / 2.0, middle - contrast / 2.0);
    let (fg, bg) = if rng.random_bool(0.5) { (light, dark) } else { (dark, light) };
    let fg = shade(family, hue, amount, fg);
    let bg = shade(family, hue, amount * rng.random_range(0.6..1.0), bg);
    let m = mask(pattern, rng);
    let mut img = vec![0u8; SIDE * SIDE * 3];
    for (p, &a) in m.iter().enumerate() {
        for k in 0..3 {
            let noise = rng.random_range(-NOISE..=NOISE);
            let v = a * fg[k] + (1.0 - a) * bg[k] + noise;
            img[p * 3 + k] = v.clamp(LOW, 255.0 - LOW).round() as u8;
        }
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_balanced_classes_the_same_bytes_every_time() {
        let a = demo_sized(40, 20, 3);
        assert_eq!(a.classes.len(), 10);
        assert_eq!((a.classes[0].as_str(), a.classes[9].as_str()), ("warm-horizontal", "cool-spots"));
        assert_eq!(a.train.class_counts(10), vec![4; 10]);
        assert_eq!(a.test.class_counts(10), vec![2; 10]);
        let b = demo_sized(40, 20, 3);
        assert_eq!((&a.train, &a.test), (&b.train, &b.test));
        assert_ne!(a.train, demo_sized(40, 20, 4).train);
        // image i does not depend on how many are drawn, and the splits differ
        assert_eq!(demo_sized(10, 1, 3).train.image(7), a.train.image(7));
        assert_ne!(a.train.image(0), a.test.image(0));
    }

    #[test]
    fn pixels_stay_where_invert_maps_them_onto_themselves_and_solarize_does_nothing() {
        let d = demo_sized(200, 0, DEMO_SEED);
        let (lo, hi) = d.train.pixels.iter().fold((255, 0), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        assert!(lo as f64 >= LOW && hi as f64 <= 255.0 - LOW, "{lo}..{hi}");
        // the reference's Solarize at M = 28 inverts pixels from 239 on: none here
        assert!(hi < 239);
    }

    #[test]
    fn inverting_a_warm_image_gives_the_colours_of_a_cool_one() {
        // the mean chroma of each class (red minus blue): warm images positive, cool ones negative,
        // and an inverted warm image as cool as a cool one
        let d = demo_sized(400, 0, 5);
        let red_minus_blue =
            |img: &[u8]| img.chunks_exact(3).map(|p| p[0] as f64 - p[2] as f64).sum::<f64>() / (SIDE * SIDE) as f64;
        let mean = |warm: bool, invert: bool| {
            let picked: Vec<f64> = (0..d.train.len())
                .filter(|&i| (d.train.labels[i] < 5) == warm)
                .map(|i| {
                    let img: Vec<u8> = d.train.image(i).iter().map(|&v| if invert { 255 - v } else { v }).collect();
                    red_minus_blue(&img)
                })
                .collect();
            picked.iter().sum::<f64>() / picked.len() as f64
        };
        let (warm, cool, inverted) = (mean(true, false), mean(false, false), mean(true, true));
        assert!(warm > 60.0 && cool < -60.0, "{warm} {cool}");
        assert!((inverted - cool).abs() < 0.1 * cool.abs(), "inverted warm {inverted}, cool {cool}");
    }

    #[test]
    fn stripes_run_along_their_class_orientation() {
        // along horizontal stripes (a row) the mask changes little, across them (a column) a lot;
        // vertical stripes the other way round
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let variation = |m: &[f64], along_rows: bool| {
            let mut total = 0.0;
            for a in 0..SIDE {
                for b in 1..SIDE {
                    let (i, j) =
                        if along_rows { (a * SIDE + b, a * SIDE + b - 1) } else { (b * SIDE + a, (b - 1) * SIDE + a) };
                    total += (m[i] - m[j]).abs();
                }
            }
            total
        };
        for _ in 0..20 {
            let h = mask(Pattern::Horizontal, &mut rng);
            assert!(variation(&h, true) * 3.0 < variation(&h, false));
            let v = mask(Pattern::Vertical, &mut rng);
            assert!(variation(&v, false) * 3.0 < variation(&v, true));
        }
    }
}
