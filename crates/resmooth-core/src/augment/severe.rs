//! The reference's SevereAugment(N, M): N ops drawn with replacement from its severe list (large
//! ShearX/ShearY up to 2, TranslateX/TranslateY up to the whole side, and a grey Cutout square),
//! each with the value `M / 10 * (max - min) + min` (M in 0..=10); the geometric ops flip their
//! sign with probability 0.5. Applied before the crop, as `--aug severe`.

use super::cutout::cutout_abs;
use super::ops::{Op, OpName};
use super::AppliedOp;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// One op of the severe list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SevereOp {
    /// A geometric op of RandAugment, with a random sign.
    Geometric(Op),
    /// A grey square of side `sqrt(v) * width` (`Cutout` of the reference's augmentations).
    Cutout,
}

/// The severe list: op, min and max value.
pub const SEVERE_OPS: [(SevereOp, f64, f64); 5] = [
    (SevereOp::Geometric(Op::ShearX), 0.0, 2.0),
    (SevereOp::Geometric(Op::ShearY), 0.0, 2.0),
    (SevereOp::Geometric(Op::TranslateX), 0.0, 1.0),
    (SevereOp::Geometric(Op::TranslateY), 0.0, 1.0),
    (SevereOp::Cutout, 0.0, 1.0),
];

/// SevereAugment with `n` ops at magnitude `m` (0..=10, checked with the configuration).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SevereAugment {
    pub n: usize,
    pub m: usize,
}

/// One drawn op with everything random about it chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Drawn {
    /// A geometric op and its signed value.
    Geometric(Op, f64),
    /// The cutout of value `v` with its two uniform draws (of the centre's x, then y).
    Cutout { v: f64, x: f64, y: f64 },
}

/// The value of `SEVERE_OPS[k]` at magnitude `m`, computed as the reference does.
pub fn severe_value(k: usize, m: usize) -> f64 {
    let (_, min, max) = SEVERE_OPS[k];
    (m as f64 / 10.0) * (max - min) + min
}

impl SevereAugment {
    /// Draws the ops (all picks first, as `random.choices`), then each op's sign or cutout
    /// centre in order. The reference draws the centre with `np.random.uniform(w)`, which is
    /// `uniform(low=w, high=1.0)`: a value in (1, w], not [0, w); kept on purpose.
    pub fn draw(&self, h: usize, w: usize, rng: &mut ChaCha8Rng) -> Vec<Drawn> {
        let picks: Vec<usize> = (0..self.n).map(|_| rng.random_range(0..SEVERE_OPS.len())).collect();
        picks
            .into_iter()
            .map(|k| {
                let v = severe_value(k, self.m);
                match SEVERE_OPS[k].0 {
                    SevereOp::Geometric(op) => Drawn::Geometric(op, if rng.random_bool(0.5) { -v } else { v }),
                    SevereOp::Cutout => {
                        let mut centre = |side: usize| side as f64 + (1.0 - side as f64) * rng.random::<f64>();
                        let x = centre(w);
                        let y = centre(h);
                        Drawn::Cutout { v, x, y }
                    }
                }
            })
            .collect()
    }

    /// Applies a drawn sequence to `img` (HWC `h` x `w`) in place, using `scratch` (same size).
    pub fn apply(drawn: &[Drawn], img: &mut Vec<u8>, h: usize, w: usize, scratch: &mut Vec<u8>) -> Vec<AppliedOp> {
        drawn
            .iter()
            .map(|d| match *d {
                Drawn::Geometric(op, v) => {
                    op.apply(img, h, w, v, scratch);
                    std::mem::swap(img, scratch);
                    AppliedOp { name: op.into(), value: v as f32 }
                }
                Drawn::Cutout { v, x, y } => {
                    cutout_abs(img, h, w, v, x, y);
                    AppliedOp { name: OpName::Cutout, value: v as f32 }
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::collections::HashMap;

    #[test]
    fn values_follow_the_reference_formula() {
        assert_eq!(severe_value(0, 10), 2.0);
        assert_eq!(severe_value(2, 5), 0.5);
        assert_eq!(severe_value(4, 0), 0.0);
        assert_eq!(severe_value(1, 3), 0.3 * 2.0);
    }

    #[test]
    fn ops_are_uniform_signs_fair_and_centres_in_one_to_the_side() {
        let sa = SevereAugment { n: 2, m: 7 };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut count: HashMap<String, usize> = HashMap::new();
        let (mut neg, mut signed) = (0, 0);
        for _ in 0..10_000 {
            for d in sa.draw(24, 40, &mut rng) {
                match d {
                    Drawn::Geometric(op, v) => {
                        *count.entry(op.name().into()).or_default() += 1;
                        signed += 1;
                        neg += usize::from(v < 0.0);
                    }
                    Drawn::Cutout { v, x, y } => {
                        *count.entry("Cutout".into()).or_default() += 1;
                        assert_eq!(v, 0.7);
                        assert!(x > 1.0 && x <= 40.0 && y > 1.0 && y <= 24.0, "{x} {y}");
                    }
                }
            }
        }
        assert_eq!(count.len(), 5);
        // 20,000 draws over 5 ops: 4,000 each, sd ~ 57
        assert!(count.values().all(|&c| c.abs_diff(4000) < 250), "{count:?}");
        assert!((neg as f64 / signed as f64 - 0.5).abs() < 0.02);
    }
}
