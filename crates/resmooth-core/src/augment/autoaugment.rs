//! torchvision's AutoAugment (CIFAR-10 and SVHN policies) on uint8 RGB images: a policy of two
//! (op, probability, magnitude bin) steps drawn uniformly, each step applied with its probability
//! and, for signed ops, a random sign; magnitudes and Pillow calls as torchvision makes them.

use super::ops::Op;
use super::{color, geometry, AppliedOp};
use crate::config::DatasetName;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// One policy step: the op, its probability and its magnitude bin (0..10, unused by value-free ops).
type Step = (Op, f32, usize);

/// The AutoAugment CIFAR-10 policy (also used for CIFAR-100, as the reference does).
pub const CIFAR10_POLICY: [[Step; 2]; 25] = [
    [(Op::Invert, 0.1, 0), (Op::Contrast, 0.2, 6)],
    [(Op::Rotate, 0.7, 2), (Op::TranslateX, 0.3, 9)],
    [(Op::Sharpness, 0.8, 1), (Op::Sharpness, 0.9, 3)],
    [(Op::ShearY, 0.5, 8), (Op::TranslateY, 0.7, 9)],
    [(Op::AutoContrast, 0.5, 0), (Op::Equalize, 0.9, 0)],
    [(Op::ShearY, 0.2, 7), (Op::Posterize, 0.3, 7)],
    [(Op::Color, 0.4, 3), (Op::Brightness, 0.6, 7)],
    [(Op::Sharpness, 0.3, 9), (Op::Brightness, 0.7, 9)],
    [(Op::Equalize, 0.6, 0), (Op::Equalize, 0.5, 0)],
    [(Op::Contrast, 0.6, 7), (Op::Sharpness, 0.6, 5)],
    [(Op::Color, 0.7, 7), (Op::TranslateX, 0.5, 8)],
    [(Op::Equalize, 0.3, 0), (Op::AutoContrast, 0.4, 0)],
    [(Op::TranslateY, 0.4, 3), (Op::Sharpness, 0.2, 6)],
    [(Op::Brightness, 0.9, 6), (Op::Color, 0.2, 8)],
    [(Op::Solarize, 0.5, 2), (Op::Invert, 0.0, 0)],
    [(Op::Equalize, 0.2, 0), (Op::AutoContrast, 0.6, 0)],
    [(Op::Equalize, 0.2, 0), (Op::Equalize, 0.6, 0)],
    [(Op::Color, 0.9, 9), (Op::Equalize, 0.6, 0)],
    [(Op::AutoContrast, 0.8, 0), (Op::Solarize, 0.2, 8)],
    [(Op::Brightness, 0.1, 3), (Op::Color, 0.7, 0)],
    [(Op::Solarize, 0.4, 5), (Op::AutoContrast, 0.9, 0)],
    [(Op::TranslateY, 0.9, 9), (Op::TranslateY, 0.7, 9)],
    [(Op::AutoContrast, 0.9, 0), (Op::Solarize, 0.8, 3)],
    [(Op::Equalize, 0.8, 0), (Op::Invert, 0.1, 0)],
    [(Op::TranslateY, 0.7, 9), (Op::AutoContrast, 0.9, 0)],
];

/// The AutoAugment SVHN policy.
pub const SVHN_POLICY: [[Step; 2]; 25] = [
    [(Op::ShearX, 0.9, 4), (Op::Invert, 0.2, 0)],
    [(Op::ShearY, 0.9, 8), (Op::Invert, 0.7, 0)],
    [(Op::Equalize, 0.6, 0), (Op::Solarize, 0.6, 6)],
    [(Op::Invert, 0.9, 0), (Op::Equalize, 0.6, 0)],
    [(Op::Equalize, 0.6, 0), (Op::Rotate, 0.9, 3)],
    [(Op::ShearX, 0.9, 4), (Op::AutoContrast, 0.8, 0)],
    [(Op::ShearY, 0.9, 8), (Op::Invert, 0.4, 0)],
    [(Op::ShearY, 0.9, 5), (Op::Solarize, 0.2, 6)],
    [(Op::Invert, 0.9, 0), (Op::AutoContrast, 0.8, 0)],
    [(Op::Equalize, 0.6, 0), (Op::Rotate, 0.9, 3)],
    [(Op::ShearX, 0.9, 4), (Op::Solarize, 0.3, 3)],
    [(Op::ShearY, 0.8, 8), (Op::Invert, 0.7, 0)],
    [(Op::Equalize, 0.9, 0), (Op::TranslateY, 0.6, 6)],
    [(Op::Invert, 0.9, 0), (Op::Equalize, 0.6, 0)],
    [(Op::Contrast, 0.3, 3), (Op::Rotate, 0.8, 4)],
    [(Op::Invert, 0.8, 0), (Op::TranslateY, 0.0, 2)],
    [(Op::ShearY, 0.7, 6), (Op::Solarize, 0.4, 8)],
    [(Op::Invert, 0.6, 0), (Op::Rotate, 0.8, 4)],
    [(Op::ShearY, 0.3, 7), (Op::TranslateX, 0.9, 3)],
    [(Op::ShearX, 0.1, 6), (Op::Invert, 0.6, 0)],
    [(Op::Solarize, 0.7, 2), (Op::TranslateY, 0.6, 7)],
    [(Op::ShearY, 0.8, 4), (Op::Invert, 0.8, 0)],
    [(Op::ShearX, 0.7, 9), (Op::TranslateY, 0.8, 3)],
    [(Op::ShearY, 0.8, 5), (Op::AutoContrast, 0.7, 0)],
    [(Op::ShearX, 0.7, 2), (Op::Invert, 0.1, 0)],
];

const BINS: usize = 10;

/// `torch.linspace(start, end, 10)[i]` in float32 (the first half counted from `start`, the
/// second from `end`, as ATen's CPU kernel does).
fn linspace(start: f32, end: f32, i: usize) -> f32 {
    let step = (end - start) / (BINS - 1) as f32;
    if i < BINS / 2 {
        start + step * i as f32
    } else {
        end - step * (BINS - 1 - i) as f32
    }
}

/// The unsigned magnitude of `op` at `bin` for an `h` x `w` image, and whether it takes a sign.
pub fn magnitude(op: Op, bin: usize, h: usize, w: usize) -> (f64, bool) {
    let m = match op {
        Op::ShearX | Op::ShearY => linspace(0.0, 0.3, bin),
        Op::TranslateX => linspace(0.0, (150.0 / 331.0 * w as f64) as f32, bin),
        Op::TranslateY => linspace(0.0, (150.0 / 331.0 * h as f64) as f32, bin),
        Op::Rotate => linspace(0.0, 30.0, bin),
        Op::Brightness | Op::Color | Op::Contrast | Op::Sharpness => linspace(0.0, 0.9, bin),
        Op::Posterize => return (8.0 - (bin as f32 / ((BINS - 1) as f32 / 4.0)).round_ties_even() as f64, false),
        Op::Solarize => return (linspace(255.0, 0.0, bin) as f64, false),
        Op::Identity | Op::AutoContrast | Op::Equalize | Op::Invert => return (0.0, false),
    };
    (m as f64, true)
}

/// torchvision's `_get_inverse_affine_matrix(center, angle, translate, scale = 1, shear)`.
fn inverse_affine(center: [f64; 2], angle: f64, translate: [f64; 2], shear: [f64; 2]) -> [f64; 6] {
    let rad = |d: f64| d * (std::f64::consts::PI / 180.0);
    let (rot, sx, sy) = (rad(angle), rad(shear[0]), rad(shear[1]));
    let [cx, cy] = center;
    let [tx, ty] = translate;
    let a = (rot - sy).cos() / sy.cos();
    let b = -(rot - sy).cos() * sx.tan() / sy.cos() - rot.sin();
    let c = (rot - sy).sin() / sy.cos();
    let d = -(rot - sy).sin() * sx.tan() / sy.cos() + rot.cos();
    let mut m = [d, -b, 0.0, -c, a, 0.0];
    m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty);
    m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty);
    m[2] += cx;
    m[5] += cy;
    m
}

/// torchvision's `_apply_op(img, op, magnitude)` on a PIL image, written into `out`.
pub fn apply_op(op: Op, magnitude: f64, src: &[u8], h: usize, w: usize, out: &mut [u8]) {
    let degrees = |x: f64| x * (180.0 / std::f64::consts::PI);
    let centre = [w as f64 * 0.5, h as f64 * 0.5];
    match op {
        Op::ShearX => {
            let m = inverse_affine([0.0, 0.0], 0.0, [0.0, 0.0], [degrees(magnitude.atan()), 0.0]);
            geometry::affine_nearest(src, h, w, m, out)
        }
        Op::ShearY => {
            let m = inverse_affine([0.0, 0.0], 0.0, [0.0, 0.0], [0.0, degrees(magnitude.atan())]);
            geometry::affine_nearest(src, h, w, m, out)
        }
        Op::TranslateX => {
            let m = inverse_affine(centre, 0.0, [magnitude.trunc(), 0.0], [0.0, 0.0]);
            geometry::affine_nearest(src, h, w, m, out)
        }
        Op::TranslateY => {
            let m = inverse_affine(centre, 0.0, [0.0, magnitude.trunc()], [0.0, 0.0]);
            geometry::affine_nearest(src, h, w, m, out)
        }
        Op::Rotate => geometry::rotate(src, h, w, magnitude, out),
        Op::Brightness => color::brightness(src, 1.0 + magnitude, out),
        Op::Color => color::color(src, 1.0 + magnitude, out),
        Op::Contrast => color::contrast(src, 1.0 + magnitude, out),
        Op::Sharpness => color::sharpness(src, h, w, 1.0 + magnitude, out),
        Op::Posterize => color::posterize(src, magnitude.clamp(0.0, 8.0) as u32, out),
        Op::Solarize => color::solarize(src, magnitude, out),
        Op::AutoContrast => color::autocontrast(src, out),
        Op::Equalize => color::equalize(src, out),
        Op::Invert => color::invert(src, out),
        Op::Identity => out[..h * w * 3].copy_from_slice(&src[..h * w * 3]),
    }
}

/// AutoAugment with one of the policies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AutoAugment {
    pub policy: &'static [[Step; 2]; 25],
}

impl AutoAugment {
    /// The policy for `dataset`: SVHN's for svhn, CIFAR-10's otherwise (as the reference).
    pub fn for_dataset(dataset: DatasetName) -> Self {
        AutoAugment { policy: if dataset == DatasetName::Svhn { &SVHN_POLICY } else { &CIFAR10_POLICY } }
    }

    /// Draws a policy, the two probabilities and signs, and applies it to `img` in place.
    pub fn apply(
        &self,
        img: &mut Vec<u8>,
        h: usize,
        w: usize,
        scratch: &mut Vec<u8>,
        rng: &mut ChaCha8Rng,
    ) -> Vec<AppliedOp> {
        let id = rng.random_range(0..self.policy.len());
        let probs: [f32; 2] = [rng.random(), rng.random()];
        let signs: [bool; 2] = [rng.random_bool(0.5), rng.random_bool(0.5)];
        let mut applied = Vec::new();
        for (i, &(op, p, bin)) in self.policy[id].iter().enumerate() {
            if probs[i] <= p {
                let (m, signed) = magnitude(op, bin, h, w);
                let m = if signed && !signs[i] { -m } else { m };
                apply_op(op, m, img, h, w, scratch);
                std::mem::swap(img, scratch);
                applied.push(AppliedOp { name: op.into(), value: m as f32 });
            }
        }
        applied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posterize_bins_and_linspace_ends() {
        let bits: Vec<f64> = (0..10).map(|b| magnitude(Op::Posterize, b, 32, 32).0).collect();
        assert_eq!(bits, vec![8.0, 8.0, 7.0, 7.0, 6.0, 6.0, 5.0, 5.0, 4.0, 4.0]);
        assert_eq!(magnitude(Op::Rotate, 9, 32, 32), (30.0, true));
        assert_eq!(magnitude(Op::Solarize, 0, 32, 32), (255.0, false));
        assert_eq!(magnitude(Op::Solarize, 9, 32, 32), (0.0, false));
    }

    #[test]
    fn pure_translation_matrix_is_exact() {
        let m = inverse_affine([16.0, 16.0], 0.0, [14.0, 0.0], [0.0, 0.0]);
        assert_eq!((m[0], m[2], m[4], m[5]), (1.0, -14.0, 1.0, 0.0));
        assert_eq!(m[1], 0.0);
    }
}
