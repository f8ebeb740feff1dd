//! The reference's own RandAugment(N, M): N ops drawn with replacement from 14, each applied with
//! `M / 30 * (max - min) + min`; the geometric ops flip their sign with probability 0.5.

use super::ops::Op;
use super::AppliedOp;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The 14 ops with their (min, max) value range and whether the sign is flipped at random.
pub const RA_OPS: [(Op, f64, f64, bool); 14] = [
    (Op::Identity, 0.0, 1.0, false),
    (Op::ShearX, 0.0, 0.3, true),
    (Op::ShearY, 0.0, 0.3, true),
    (Op::TranslateX, 0.0, 0.45, true),
    (Op::TranslateY, 0.0, 0.45, true),
    (Op::Rotate, 0.0, 30.0, true),
    (Op::AutoContrast, 0.0, 1.0, false),
    (Op::Invert, 0.0, 1.0, false),
    (Op::Equalize, 0.0, 1.0, false),
    (Op::Solarize, 0.0, 256.0, false),
    (Op::Posterize, 4.0, 8.0, false),
    (Op::Color, 0.1, 1.9, false),
    (Op::Brightness, 0.1, 1.9, false),
    (Op::Sharpness, 0.1, 1.9, false),
];

/// RandAugment with `n` ops at magnitude `m` (0..=30).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandAugment {
    pub n: usize,
    pub m: usize,
}

/// The unsigned value of the op at `RA_OPS[k]` for magnitude `m`, computed as the reference does.
pub fn ra_value(k: usize, m: usize) -> f64 {
    let (_, min, max, _) = RA_OPS[k];
    (m as f64 / 30.0) * (max - min) + min
}

impl RandAugment {
    /// Draws the ops (indices into `RA_OPS`, all before any sign) and their signed values.
    pub fn draw(&self, rng: &mut ChaCha8Rng) -> Vec<(Op, f64)> {
        let picks: Vec<usize> = (0..self.n).map(|_| rng.random_range(0..RA_OPS.len())).collect();
        picks
            .into_iter()
            .map(|k| {
                let (op, _, _, signed) = RA_OPS[k];
                let v = ra_value(k, self.m);
                (op, if signed && rng.random_bool(0.5) { -v } else { v })
            })
            .collect()
    }

    /// Applies a drawn sequence to `img` (HWC `h` x `w`) in place, using `scratch` (same size).
    pub fn apply(ops: &[(Op, f64)], img: &mut Vec<u8>, h: usize, w: usize, scratch: &mut Vec<u8>) -> Vec<AppliedOp> {
        for &(op, v) in ops {
            if op == Op::Identity {
                continue;
            }
            op.apply(img, h, w, v, scratch);
            std::mem::swap(img, scratch);
        }
        ops.iter().map(|&(op, v)| AppliedOp { name: op.into(), value: v as f32 }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::collections::HashMap;

    #[test]
    fn values_follow_the_reference_formula() {
        assert_eq!(ra_value(1, 28), 28.0 / 30.0 * 0.3);
        assert_eq!(ra_value(10, 30), 8.0);
        assert_eq!(ra_value(10, 0), 4.0);
        // Python gives 0.5 * (1.9 - 0.1) + 0.1 = 0.9999999999999999, not 1
        assert_eq!(ra_value(11, 15), 0.9999999999999999);
        assert_eq!(ra_value(9, 30), 256.0);
    }

    #[test]
    fn ops_are_uniform_with_replacement_and_signs_fair() {
        let ra = RandAugment { n: 2, m: 28 };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut count: HashMap<&str, usize> = HashMap::new();
        let (mut neg, mut signed, mut repeats) = (0usize, 0usize, 0usize);
        let draws = 28_000;
        for _ in 0..draws {
            let ops = ra.draw(&mut rng);
            assert_eq!(ops.len(), 2);
            repeats += (ops[0].0 == ops[1].0) as usize;
            for (op, v) in ops {
                *count.entry(op.name()).or_default() += 1;
                let k = RA_OPS.iter().position(|e| e.0 == op).unwrap();
                assert_eq!(v.abs(), ra_value(k, 28));
                if RA_OPS[k].3 {
                    signed += 1;
                    neg += (v < 0.0) as usize;
                } else {
                    assert!(v >= 0.0);
                }
            }
        }
        assert_eq!(count.len(), 14);
        // each op: 2 * draws / 14 = 4000 expected, sd ~ 61
        for (name, c) in &count {
            assert!((c.abs_diff(4000)) < 300, "{name}: {c}");
        }
        // drawn with replacement: the same op twice in 1/14 of the draws (2000, sd ~ 43)
        assert!(repeats.abs_diff(2000) < 200, "{repeats}");
        let frac = neg as f64 / signed as f64;
        assert!((frac - 0.5).abs() < 0.02, "{frac}");
    }
}
