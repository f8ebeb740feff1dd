//! The reference's ImageNet transforms on uint8 RGB (HWC) images of any size, pixel for pixel as
//! torchvision applies them to a PIL image: training `RandomResizedCrop(224, scale=(0.08, 1.0),
//! interpolation=BICUBIC)` → `RandomHorizontalFlip()` → `ColorJitter(0.4, 0.4, 0.4)` → ToTensor
//! → `Lighting(0.1, eigval, eigvec)` → Normalize; evaluation `Resize(256, BICUBIC)` +
//! `CenterCrop(224)`. Every random draw comes from the view's seeded generator, in torchvision's
//! order (crop, flip, jitter order and factors, lighting alphas); Lighting adds a per-image RGB
//! offset to the [0, 1] floats, which the pipeline applies where it normalises the batch.

use super::color;
use crate::config::ConfigError;
use crate::data::resize::{resize_center_crop_into, resize_region_into, Filter, Region};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The reference's `_IMAGENET_PCA['eigval']`.
pub const IMAGENET_EIGVAL: [f32; 3] = [0.2175, 0.0188, 0.0045];
/// The reference's `_IMAGENET_PCA['eigvec']` (rows are R, G, B).
pub const IMAGENET_EIGVEC: [[f32; 3]; 3] =
    [[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]];

/// Side of the training and evaluation views.
pub const IMAGENET_SIZE: usize = 224;
/// Shorter side of the evaluation resize, before its centre crop.
pub const IMAGENET_EVAL_RESIZE: usize = 256;

/// torchvision's `RandomResizedCrop(size, scale, ratio)` with Pillow's bicubic resampling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomResizedCrop {
    pub size: usize,
    /// Bounds of the crop's area as a fraction of the image's.
    pub scale: (f64, f64),
    /// Bounds of the crop's aspect ratio (width / height).
    pub ratio: (f64, f64),
}

impl RandomResizedCrop {
    /// The reference's ImageNet crop: 224 px, scale (0.08, 1), ratio (3/4, 4/3).
    pub const IMAGENET: RandomResizedCrop =
        RandomResizedCrop { size: IMAGENET_SIZE, scale: (0.08, 1.0), ratio: (3.0 / 4.0, 4.0 / 3.0) };

    /// Draws the crop box of an `h` x `w` image as torchvision's `get_params`: up to 10 tries of
    /// an area fraction uniform in `scale` and a ratio log-uniform in `ratio` (both drawn as
    /// float32, as torch draws them), sides rounded half to even as Python's `round`, the box
    /// placed uniformly when it fits; else the centre box of the whole image clamped to `ratio`.
    pub fn draw(&self, h: usize, w: usize, rng: &mut ChaCha8Rng) -> Region {
        let area = (h * w) as f64;
        let log_ratio = (self.ratio.0.ln() as f32, self.ratio.1.ln() as f32);
        for _ in 0..10 {
            let target_area = area * uniform_f32(rng, self.scale.0 as f32, self.scale.1 as f32) as f64;
            let aspect_ratio = uniform_f32(rng, log_ratio.0, log_ratio.1).exp() as f64;
            let cw = (target_area * aspect_ratio).sqrt().round_ties_even() as usize;
            let ch = (target_area / aspect_ratio).sqrt().round_ties_even() as usize;
            if 0 < cw && cw <= w && 0 < ch && ch <= h {
                let top = rng.random_range(0..=h - ch);
                let left = rng.random_range(0..=w - cw);
                return Region { top, left, height: ch, width: cw };
            }
        }
        let in_ratio = w as f64 / h as f64;
        let (ch, cw) = if in_ratio < self.ratio.0 {
            ((w as f64 / self.ratio.0).round_ties_even() as usize, w)
        } else if in_ratio > self.ratio.1 {
            (h, (h as f64 * self.ratio.1).round_ties_even() as usize)
        } else {
            (h, w)
        };
        Region { top: (h - ch) / 2, left: (w - cw) / 2, height: ch, width: cw }
    }

    /// torchvision's `resized_crop` of a PIL image: the box cropped, then resized to `size` x
    /// `size` with Pillow's bicubic filter, into `out`.
    pub fn apply(&self, src: &[u8], (h, w): (usize, usize), region: Region, out: &mut [u8]) {
        resize_region_into(src, (h, w), region, (self.size, self.size), Filter::Bicubic, out);
    }
}

/// A float32 uniform in `[lo, hi)`, as `torch.empty(1).uniform_(lo, hi)` draws one.
fn uniform_f32(rng: &mut ChaCha8Rng, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * rng.random::<f32>()
}

/// A standard normal draw (Box-Muller on two uniforms of `rng`).
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>(); // in (0, 1]
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// One of ColorJitter's enhancements, each Pillow's `ImageEnhance` as torchvision calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enhancement {
    /// `adjust_brightness`: `ImageEnhance.Brightness`.
    Brightness,
    /// `adjust_contrast`: `ImageEnhance.Contrast`.
    Contrast,
    /// `adjust_saturation`: `ImageEnhance.Color`.
    Saturation,
}

impl Enhancement {
    /// The three, in torchvision's numbering (0 brightness, 1 contrast, 2 saturation).
    pub const ALL: [Enhancement; 3] = [Enhancement::Brightness, Enhancement::Contrast, Enhancement::Saturation];

    /// Writes the enhancement of `src` by `factor` into `out`.
    pub fn apply(self, src: &[u8], factor: f32, out: &mut [u8]) {
        let f = factor as f64;
        match self {
            Enhancement::Brightness => color::brightness(src, f, out),
            Enhancement::Contrast => color::contrast(src, f, out),
            Enhancement::Saturation => color::color(src, f, out),
        }
    }
}

/// torchvision's `ColorJitter(brightness, contrast, saturation)` (no hue): each factor uniform in
/// `[max(0, 1 - v), 1 + v]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColorJitter {
    pub brightness: f32,
    pub contrast: f32,
    pub saturation: f32,
}

/// One drawn jitter: the order of the enhancements and their factors (brightness, contrast,
/// saturation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Jitter {
    pub order: [Enhancement; 3],
    pub factors: [f32; 3],
}

impl ColorJitter {
    /// The reference's ImageNet jitter: 0.4 for brightness, contrast and saturation.
    pub const IMAGENET: ColorJitter = ColorJitter { brightness: 0.4, contrast: 0.4, saturation: 0.4 };

    /// Draws the order, then the three factors, as torchvision's `get_params`. torchvision
    /// permutes four slots and skips hue's; the order of the other three is the uniformly drawn
    /// permutation of three drawn here.
    pub fn draw(&self, rng: &mut ChaCha8Rng) -> Jitter {
        let mut order = Enhancement::ALL;
        order.shuffle(rng);
        let factors =
            [self.brightness, self.contrast, self.saturation].map(|v| uniform_f32(rng, (1.0 - v).max(0.0), 1.0 + v));
        Jitter { order, factors }
    }
}

impl Jitter {
    /// Applies the enhancements in order to `img` (HWC), using `scratch` as the second buffer.
    pub fn apply(&self, img: &mut [u8], scratch: &mut Vec<u8>) {
        scratch.resize(img.len(), 0);
        // each enhancement reads one buffer and writes the other; the last result is copied back
        // to `img` when it ends in `scratch`
        let (mut from, mut to) = (&mut *img, scratch.as_mut_slice());
        for e in self.order {
            e.apply(from, self.factors[e as usize], to);
            std::mem::swap(&mut from, &mut to);
        }
        if self.order.len() % 2 == 1 {
            to.copy_from_slice(from);
        }
    }
}

/// The reference's `Lighting(alphastd, eigval, eigvec)`: AlexNet's PCA colour noise, an RGB
/// offset `eigvec · (alpha * eigval)` added to the [0, 1] float image, `alpha ~ N(0, alphastd)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lighting {
    pub alphastd: f32,
    pub eigval: [f32; 3],
    pub eigvec: [[f32; 3]; 3],
}

impl Lighting {
    /// The reference's ImageNet lighting: alphastd 0.1 with its PCA constants.
    pub const IMAGENET: Lighting = Lighting { alphastd: 0.1, eigval: IMAGENET_EIGVAL, eigvec: IMAGENET_EIGVEC };

    /// Draws the three alphas (float32, as the reference's `normal_` on a float tensor); none
    /// when `alphastd` is 0, as the reference returns the image untouched.
    pub fn draw(&self, rng: &mut ChaCha8Rng) -> [f32; 3] {
        if self.alphastd == 0.0 {
            return [0.0; 3];
        }
        std::array::from_fn(|_| (standard_normal(rng) * self.alphastd as f64) as f32)
    }

    /// The RGB offset of `alphas`, with the reference's float32 operations in its order:
    /// `eigvec.mul(alpha).mul(eigval).sum(1)`, each product rounded, the row summed left to right
    /// from torch's +0 (so zero alphas give +0, not -0).
    pub fn offset(&self, alphas: [f32; 3]) -> [f32; 3] {
        std::array::from_fn(|i| {
            let t: [f32; 3] = std::array::from_fn(|j| self.eigvec[i][j] * alphas[j] * self.eigval[j]);
            0.0 + t[0] + t[1] + t[2]
        })
    }
}

/// The reference's ImageNet training transform up to ToTensor, and its Lighting offset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageNetTrain {
    pub crop: RandomResizedCrop,
    pub jitter: ColorJitter,
    pub lighting: Lighting,
}

/// What one training view drew: the crop box, the flip, the jitter and the lighting alphas.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainDraw {
    pub region: Region,
    pub flip: bool,
    pub jitter: Jitter,
    pub alphas: [f32; 3],
}

impl ImageNetTrain {
    /// The reference's transform.
    pub const REFERENCE: ImageNetTrain = ImageNetTrain {
        crop: RandomResizedCrop::IMAGENET,
        jitter: ColorJitter::IMAGENET,
        lighting: Lighting::IMAGENET,
    };

    /// The reference's transform with views of side `size` (`--image-size`; 224 is the reference's).
    pub fn at(size: usize) -> ImageNetTrain {
        ImageNetTrain { crop: RandomResizedCrop { size, ..RandomResizedCrop::IMAGENET }, ..ImageNetTrain::REFERENCE }
    }

    /// Side of the views.
    pub fn size(&self) -> usize {
        self.crop.size
    }

    /// Draws everything for one view of an `h` x `w` image, in torchvision's order.
    pub fn draw(&self, h: usize, w: usize, rng: &mut ChaCha8Rng) -> TrainDraw {
        let region = self.crop.draw(h, w, rng);
        let flip = rng.random_bool(0.5);
        let jitter = self.jitter.draw(rng);
        let alphas = self.lighting.draw(rng);
        TrainDraw { region, flip, jitter, alphas }
    }

    /// Writes the view `d` of `src` (HWC `h` x `w`) into `out` (`size` x `size` x 3): the crop
    /// resized, flipped, jittered. Returns the Lighting offset the batch adds to its floats.
    pub fn apply(&self, d: &TrainDraw, src: &[u8], (h, w): (usize, usize), out: &mut [u8]) -> [f32; 3] {
        let s = self.size();
        let out = &mut out[..s * s * 3];
        self.crop.apply(src, (h, w), d.region, out);
        if d.flip {
            flip_horizontal(out, s);
        }
        d.jitter.apply(out, &mut Vec::new());
        self.lighting.offset(d.alphas)
    }

    /// Draws and writes one view of `src` into `out`; returns what was drawn and the offset.
    pub fn view(
        &self,
        src: &[u8],
        (h, w): (usize, usize),
        rng: &mut ChaCha8Rng,
        out: &mut [u8],
    ) -> (TrainDraw, [f32; 3]) {
        let d = self.draw(h, w, rng);
        let offset = self.apply(&d, src, (h, w), out);
        (d, offset)
    }
}

/// Mirrors every row of an HWC image `w` pixels wide.
fn flip_horizontal(img: &mut [u8], w: usize) {
    for row in img.chunks_exact_mut(w * 3) {
        for x in 0..w / 2 {
            let (a, b) = (x * 3, (w - 1 - x) * 3);
            for c in 0..3 {
                row.swap(a + c, b + c);
            }
        }
    }
}

/// The reference's ImageNet evaluation view of `src` (HWC `h` x `w`) into `out` (224 x 224 x 3):
/// `Resize(256, BICUBIC)` then `CenterCrop(224)`.
pub fn eval_view(src: &[u8], (h, w): (usize, usize), out: &mut [u8]) {
    eval_view_at(src, (h, w), IMAGENET_SIZE, out);
}

/// The evaluation view at side `size` (`--image-size`): `Resize` of the shorter side to
/// [`eval_resize`]`(size)`, bicubic, then `CenterCrop(size)`; the reference's at 224.
pub fn eval_view_at(src: &[u8], (h, w): (usize, usize), size: usize, out: &mut [u8]) {
    resize_center_crop_into(src, (h, w), eval_resize(size), size, Filter::Bicubic, out);
}

/// The shorter side the evaluation view resizes to before its centre crop of `size`: the
/// reference's 256 / 224 ratio, rounded (256 at 224).
pub fn eval_resize(size: usize) -> usize {
    (size * IMAGENET_EVAL_RESIZE + IMAGENET_SIZE / 2) / IMAGENET_SIZE
}

/// One of the ImageNet transforms with every random draw given, as `resmooth augment apply`
/// runs it: the pixels torchvision gives for those parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ImageNetOp {
    /// torchvision's `resized_crop(img, top, left, height, width, (size, size), BICUBIC)`.
    RandomResizedCrop { region: Region, size: usize },
    /// ColorJitter with a drawn order and factors.
    ColorJitter(Jitter),
    /// `Resize(resize, BICUBIC)` then `CenterCrop(crop)` (the reference's test view is 256, 224).
    Eval { resize: usize, crop: usize },
    /// The reference's Lighting with given alphas: an RGB offset to the [0, 1] floats, no pixel.
    Lighting { alphas: [f32; 3] },
}

/// What an [`ImageNetOp`] gives: an image, or Lighting's offset.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageNetOutput {
    /// An HWC uint8 image.
    Image { height: usize, width: usize, pixels: Vec<u8> },
    /// Lighting's alphas and the RGB offset they add to every pixel's [0, 1] floats before
    /// normalisation.
    Offset { alphas: [f32; 3], offset: [f32; 3] },
}

impl ImageNetOp {
    /// The names `--op` takes for these ops.
    pub const NAMES: [&'static str; 4] = ["random-resized-crop", "color-jitter", "imagenet-eval", "lighting"];

    /// A jitter from torchvision's order numbers (a permutation of 0 brightness, 1 contrast,
    /// 2 saturation) and the three factors (finite, at least 0).
    pub fn jitter(order: [usize; 3], factors: [f32; 3]) -> Result<Jitter, ConfigError> {
        let mut sorted = order;
        sorted.sort_unstable();
        if sorted != [0, 1, 2] {
            return Err(ConfigError(format!(
                "--order {order:?} is not an order of the three enhancements; give 0, 1 and 2 each once \
                 (0 brightness, 1 contrast, 2 saturation)"
            )));
        }
        if let Some(f) = factors.iter().find(|f| !(f.is_finite() && **f >= 0.0)) {
            return Err(ConfigError(format!("--factors: {f} is not a factor; each must be a finite number >= 0")));
        }
        Ok(Jitter { order: order.map(|k| Enhancement::ALL[k]), factors })
    }

    /// Applies the op to `src` (HWC `h` x `w`); an error says which parameter does not fit the
    /// image and why.
    pub fn apply(&self, src: &[u8], (h, w): (usize, usize)) -> Result<ImageNetOutput, ConfigError> {
        let image = |side: usize, pixels: Vec<u8>| ImageNetOutput::Image { height: side, width: side, pixels };
        match *self {
            ImageNetOp::RandomResizedCrop { region: r, size } => {
                if r.height == 0 || r.width == 0 || r.top + r.height > h || r.left + r.width > w || size == 0 {
                    return Err(ConfigError(format!(
                        "--box {},{},{},{} (top, left, height, width) must be a non-empty box inside the {w}x{h} \
                         image, and --size {size} at least 1",
                        r.top, r.left, r.height, r.width
                    )));
                }
                let mut out = vec![0u8; size * size * 3];
                RandomResizedCrop { size, ..RandomResizedCrop::IMAGENET }.apply(src, (h, w), r, &mut out);
                Ok(image(size, out))
            }
            ImageNetOp::ColorJitter(j) => {
                let mut img = src[..h * w * 3].to_vec();
                j.apply(&mut img, &mut Vec::new());
                Ok(ImageNetOutput::Image { height: h, width: w, pixels: img })
            }
            ImageNetOp::Eval { resize, crop } => {
                if crop == 0 || crop > resize {
                    return Err(ConfigError(format!(
                        "--size {crop} (the centre crop) must be between 1 and --resize {resize} (the shorter side)"
                    )));
                }
                let mut out = vec![0u8; crop * crop * 3];
                resize_center_crop_into(src, (h, w), resize, crop, Filter::Bicubic, &mut out);
                Ok(image(crop, out))
            }
            ImageNetOp::Lighting { alphas } => {
                if let Some(a) = alphas.iter().find(|a| !a.is_finite()) {
                    return Err(ConfigError(format!("--alphas: {a} is not a finite number")));
                }
                Ok(ImageNetOutput::Offset { alphas, offset: Lighting::IMAGENET.offset(alphas) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn crops_fit_follow_the_scale_and_ratio_and_fall_back_to_the_centre() {
        let rrc = RandomResizedCrop::IMAGENET;
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (h, w) = (350, 400);
        for _ in 0..2000 {
            let r = rrc.draw(h, w, &mut rng);
            assert!(r.top + r.height <= h && r.left + r.width <= w, "{r:?}");
            let frac = (r.height * r.width) as f64 / (h * w) as f64;
            assert!((0.07..=1.01).contains(&frac), "{r:?} {frac}");
            let ratio = r.width as f64 / r.height as f64;
            assert!((0.70..=1.40).contains(&ratio), "{r:?} {ratio}");
        }
        // a 1 x 100 strip never fits a ratio in [3/4, 4/3]: the centre fallback, height kept
        let r = rrc.draw(1, 100, &mut rng);
        assert_eq!(r, Region { top: 0, left: 49, height: 1, width: 1 });
        // a tall strip: width kept, height int(round(w / (3/4)))
        let r = rrc.draw(100, 3, &mut rng);
        assert_eq!(r, Region { top: 48, left: 0, height: 4, width: 3 });
    }

    #[test]
    fn jitter_orders_are_all_drawn_and_factors_stay_in_range() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut orders = std::collections::HashSet::new();
        for _ in 0..600 {
            let j = ColorJitter::IMAGENET.draw(&mut rng);
            orders.insert(j.order.map(|e| e as usize));
            assert!(j.factors.iter().all(|f| (0.6..1.4).contains(f)), "{j:?}");
        }
        assert_eq!(orders.len(), 6);
        let none = ColorJitter { brightness: 0.0, contrast: 0.0, saturation: 0.0 }.draw(&mut rng);
        assert_eq!(none.factors, [1.0; 3]);
        let wide = ColorJitter { brightness: 2.0, contrast: 2.0, saturation: 2.0 }.draw(&mut rng);
        assert!(wide.factors.iter().all(|f| (0.0..3.0).contains(f)));
    }

    #[test]
    fn jitter_applies_its_order() {
        let src: Vec<u8> = (0..5 * 4 * 3).map(|i| (i * 37 % 256) as u8).collect();
        let j = Jitter {
            order: [Enhancement::Saturation, Enhancement::Brightness, Enhancement::Contrast],
            factors: [1.3, 0.7, 0.65],
        };
        let mut img = src.clone();
        j.apply(&mut img, &mut Vec::new());
        let (mut a, mut b) = (vec![0; src.len()], vec![0; src.len()]);
        color::color(&src, 0.65f32 as f64, &mut a);
        color::brightness(&a, 1.3f32 as f64, &mut b);
        color::contrast(&b, 0.7f32 as f64, &mut a);
        assert_eq!(img, a);
    }

    #[test]
    fn lighting_alphas_have_the_standard_deviation() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let draws: Vec<f32> = (0..4000).flat_map(|_| Lighting::IMAGENET.draw(&mut rng)).collect();
        let mean = draws.iter().map(|&v| v as f64).sum::<f64>() / draws.len() as f64;
        let var = draws.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / draws.len() as f64;
        assert!(mean.abs() < 0.005 && (var.sqrt() - 0.1).abs() < 0.005, "{mean} {}", var.sqrt());
        let off = Lighting { alphastd: 0.0, ..Lighting::IMAGENET };
        assert_eq!(off.draw(&mut rng), [0.0; 3]);
        assert_eq!(Lighting::IMAGENET.offset([0.0; 3]), [0.0; 3]);
    }

    #[test]
    fn explicit_ops_are_the_transforms_and_refuse_what_does_not_fit() {
        let (h, w) = (30, 40);
        let src: Vec<u8> = (0..h * w * 3).map(|i| (i * 7 % 251) as u8).collect();
        let region = Region { top: 3, left: 5, height: 20, width: 30 };
        let mut want = vec![0u8; 16 * 16 * 3];
        RandomResizedCrop { size: 16, ..RandomResizedCrop::IMAGENET }.apply(&src, (h, w), region, &mut want);
        let got = ImageNetOp::RandomResizedCrop { region, size: 16 }.apply(&src, (h, w)).unwrap();
        assert_eq!(got, ImageNetOutput::Image { height: 16, width: 16, pixels: want });
        let outside = ImageNetOp::RandomResizedCrop { region: Region { top: 20, ..region }, size: 16 };
        assert!(outside.apply(&src, (h, w)).unwrap_err().0.contains("--box 20,5,20,30"));
        let j = ImageNetOp::jitter([2, 0, 1], [1.2, 0.8, 0.5]).unwrap();
        assert_eq!(j.order, [Enhancement::Saturation, Enhancement::Brightness, Enhancement::Contrast]);
        assert!(ImageNetOp::jitter([0, 0, 1], [1.0; 3]).unwrap_err().0.contains("--order"));
        assert!(ImageNetOp::jitter([0, 1, 2], [1.0, -0.5, 1.0]).unwrap_err().0.contains("--factors"));
        assert!(ImageNetOp::Eval { resize: 16, crop: 20 }.apply(&src, (h, w)).is_err());
        let alphas = [0.1, -0.05, 0.2];
        let got = ImageNetOp::Lighting { alphas }.apply(&src, (h, w)).unwrap();
        assert_eq!(got, ImageNetOutput::Offset { alphas, offset: Lighting::IMAGENET.offset(alphas) });
    }

    #[test]
    fn a_view_is_its_draws_applied_and_the_flip_mirrors() {
        let (h, w) = (60, 80);
        let src: Vec<u8> = (0..h * w * 3).map(|i| (i * 13 % 253) as u8).collect();
        let t = ImageNetTrain::REFERENCE;
        let mut out = vec![0u8; 224 * 224 * 3];
        let (d, offset) = t.view(&src, (h, w), &mut ChaCha8Rng::seed_from_u64(5), &mut out);
        assert_eq!(d, t.draw(h, w, &mut ChaCha8Rng::seed_from_u64(5)));
        assert_eq!(offset, t.lighting.offset(d.alphas));
        let mut other = vec![0u8; 224 * 224 * 3];
        t.apply(&TrainDraw { flip: !d.flip, ..d }, &src, (h, w), &mut other);
        flip_horizontal(&mut other, 224);
        assert_eq!(out, other);
        let mut eval = vec![0u8; 224 * 224 * 3];
        eval_view(&src, (h, w), &mut eval);
        assert_ne!(eval, out);
    }
}
