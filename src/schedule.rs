//! The reference's learning-rate schedule: GradualWarmupScheduler (x`multiplier` over
//! `warm_epoch` epochs) chained with CosineAnnealingLR(T_max = epochs), stepped once per epoch.
//!
//! Reproduced as the reference really runs it: epochs 1..=W+1 warm up linearly from `lr` to
//! `lr * multiplier`; at epoch W+2 the rate falls back to `lr` (the cosine scheduler's own last
//! rate) and from there follows PyTorch's recursive cosine form with that start.
//!
//! `--cosine ''` and `--warm ''` switch either part off as in the reference: warmup alone holds
//! `lr * multiplier` after warmup; cosine alone starts at epoch 1; with neither the rate stays
//! `lr` (where the reference itself crashes on its missing scheduler).

/// Learning rate of each epoch of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub lr: f64,
    pub warm_epoch: usize,
    pub multiplier: f64,
    pub epochs: usize,
    /// Cosine annealing over `epochs` (`--cosine`).
    pub cosine: bool,
    /// Warmup over `warm_epoch` epochs (`--warm`).
    pub warm: bool,
}

impl Schedule {
    /// The learning rate used while training epoch `epoch` (1-based).
    pub fn lr_at(&self, epoch: usize) -> f64 {
        assert!(epoch >= 1, "epochs are numbered from 1");
        let w = if self.warm { self.warm_epoch } else { 0 };
        if w > 0 && epoch <= w + 1 {
            let t = (epoch - 1) as f64 / w as f64;
            return if self.multiplier == 1.0 {
                // the reference's warmup with multiplier 1 ramps from 0
                self.lr * t
            } else {
                self.lr * ((self.multiplier - 1.0) * t + 1.0)
            };
        }
        if !self.cosine {
            return if w > 0 { self.lr * self.multiplier } else { self.lr };
        }
        // cosine steps taken so far; without warmup the cosine starts at epoch 1
        let steps = if w > 0 { epoch - w - 2 } else { epoch - 1 };
        let t_max = self.epochs as f64;
        let mut lr = self.lr;
        for t in 1..=steps {
            let (now, before) =
                (std::f64::consts::PI * t as f64 / t_max, std::f64::consts::PI * (t - 1) as f64 / t_max);
            if (1.0 + before.cos()).abs() < 1e-12 {
                lr += self.lr * (1.0 - (std::f64::consts::PI / t_max).cos()) / 2.0;
            } else {
                lr *= (1.0 + now.cos()) / (1.0 + before.cos());
            }
        }
        lr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_table() {
        let s = Schedule { lr: 0.1, warm_epoch: 5, multiplier: 2.0, epochs: 200, cosine: true, warm: true };
        let want = [
            (1, 0.1),
            (2, 0.12),
            (3, 0.14),
            (4, 0.16),
            (5, 0.18),
            (6, 0.2),
            (7, 0.1),
            (8, 0.099994),
            (9, 0.099975),
            (10, 0.099944),
            (11, 0.099901),
            (12, 0.099846),
            (100, 0.055487),
            (150, 0.018738),
            (200, 0.000302),
        ];
        for (epoch, lr) in want {
            let got = s.lr_at(epoch);
            assert!((got - lr).abs() < 5e-7, "epoch {epoch}: {got} != {lr}");
        }
    }

    #[test]
    fn no_warmup_is_plain_cosine_and_multiplier_one_ramps_from_zero() {
        let s = Schedule { lr: 0.1, warm_epoch: 0, multiplier: 2.0, epochs: 10, cosine: true, warm: true };
        assert_eq!(s.lr_at(1), 0.1);
        let closed = 0.05 * (1.0 + (std::f64::consts::PI * 4.0 / 10.0).cos());
        assert!((s.lr_at(5) - closed).abs() < 1e-12);
        let s = Schedule { lr: 0.1, warm_epoch: 4, multiplier: 1.0, epochs: 10, cosine: true, warm: true };
        assert_eq!(s.lr_at(1), 0.0);
        assert!((s.lr_at(3) - 0.05).abs() < 1e-12);
    }

    #[test]
    fn cosine_and_warm_switch_off_as_in_the_reference() {
        let both = Schedule { lr: 0.1, warm_epoch: 5, multiplier: 2.0, epochs: 10, cosine: true, warm: true };
        // --warm '': the cosine scheduler alone, from epoch 1
        let cosine = Schedule { warm: false, ..both.clone() };
        let plain = Schedule { warm_epoch: 0, ..both.clone() };
        for e in 1..=10 {
            assert_eq!(cosine.lr_at(e), plain.lr_at(e), "epoch {e}");
        }
        // --cosine '': GradualWarmupScheduler without an after-scheduler holds lr * multiplier
        let warm = Schedule { cosine: false, ..both.clone() };
        let got: Vec<f64> = (1..=9).map(|e| warm.lr_at(e)).collect();
        let want = [0.1, 0.12, 0.14, 0.16, 0.18, 0.2, 0.2, 0.2, 0.2];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{got:?}");
        }
        let neither = Schedule { cosine: false, warm: false, ..both };
        assert!((1..=10).all(|e| neither.lr_at(e) == 0.1));
    }
}
