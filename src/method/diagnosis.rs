//! Whether a detection pass's GMM fit is degenerate: the losses at the underflow floor of
//! `log(loss + 1e-10)`, a component collapsed onto them, the original views judged OOD, and
//! what the user is told about it. It only looks: the fit stays the reference's.

use serde::{Deserialize, Serialize};

/// A component within this factor of `reg_covar` in variance has collapsed onto one value.
pub const COLLAPSE_FACTOR: f64 = 4.0;

/// Whether the GMM fit of a detection pass is degenerate: the losses at the underflow floor
/// (exactly 0 in fp32, so `log(0 + 1e-10)` = -23.03), a component collapsed onto that spike,
/// and how many original views the split puts OOD. Computed by the method from the scored
/// views and the fit ([`diagnose`](super::diagnose)); the fit itself stays the reference's.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FitDiagnosis {
    /// Views scored.
    pub views: usize,
    /// Views whose loss is below 1e-10 (in fp32: exactly 0), at the floor of `log(loss + 1e-10)`.
    pub at_floor: usize,
    /// The floor, `log(1e-10)`.
    pub floor: f64,
    /// Original views scored.
    pub originals: usize,
    /// Original views judged OOD (p_ID < 0.5).
    pub originals_ood: usize,
    /// The component that collapsed onto the floor, if one did.
    pub collapsed: Option<Collapsed>,
}

/// A GMM component that sits on the spike of losses at the floor: its variance is within a
/// small factor of `reg_covar`, the least a component can have.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Collapsed {
    /// Whether it is the ID component (the lower mean, as the reference takes it).
    pub id: bool,
    /// Its mean, on the floor.
    pub mean: f64,
    /// Its variance, `reg_covar` or within [`COLLAPSE_FACTOR`] of it.
    pub variance: f64,
    /// Its weight: about the share of views at the floor.
    pub weight: f64,
    /// scikit-learn's `reg_covar`, added to every variance.
    pub reg_covar: f64,
}

impl FitDiagnosis {
    /// Whether the fit is degenerate: a component collapsed onto the floor, or most original
    /// views judged OOD.
    pub fn degenerate(&self) -> bool {
        self.collapsed.is_some() || self.most_originals_ood()
    }

    fn most_originals_ood(&self) -> bool {
        self.originals > 0 && 2 * self.originals_ood > self.originals
    }

    /// One line counting the losses at the floor (for every detection pass's report).
    pub fn floor_line(&self) -> String {
        format!(
            "losses at the underflow floor (0 in fp32, log(0 + 1e-10) = {:.2}): {} of {} views ({:.2}%)",
            self.floor,
            self.at_floor,
            self.views,
            percent(self.at_floor, self.views)
        )
    }

    /// What a user must be told when the fit is degenerate: what happened, why, and what to
    /// do; `None` when it is not.
    pub fn warning(&self) -> Option<String> {
        if !self.degenerate() {
            return None;
        }
        let mut what = Vec::new();
        if let Some(c) = &self.collapsed {
            what.push(format!(
                "{} of {} views ({:.1}%) have a loss of exactly 0 in fp32, all at log(0 + 1e-10) = {:.2}, and the {} component collapsed onto that spike (mean {:.2}, variance {:.5}, where reg_covar {} is the least a component can have; weight {:.3})",
                self.at_floor,
                self.views,
                percent(self.at_floor, self.views),
                self.floor,
                if c.id { "ID" } else { "OOD" },
                c.mean,
                c.variance,
                c.reg_covar,
                c.weight
            ));
            if c.id {
                what.push(
                    "so p_ID says whether a view's loss underflowed to 0, not how far out of distribution it is: any view with a loss above 0 is judged OOD".into(),
                );
            }
        }
        if self.most_originals_ood() {
            what.push(format!(
                "{} of the {} original views ({:.1}%) are judged OOD",
                self.originals_ood,
                self.originals,
                percent(self.originals_ood, self.originals)
            ));
        }
        let why = if self.at_floor > 0 {
            "the baseline fits its training images so closely (logit margins past ~15) that its fp32 cross-entropy underflows to exactly 0. The reference fits log(loss + 1e-10) and takes the lower mean as ID in the same way, so this fit is kept as the reference makes it"
        } else {
            "the two components do not separate the original views from the augmented ones: the baseline may be too weak to score them, or the augmented views too close to the originals. The fit is kept as the reference makes it"
        };
        Some(format!(
            "the GMM fit of the detection pass is degenerate.\n  what happened: {}.\n  why: {why}.\n  what to do: score with a baseline that has not converged this far: pass --pretrained with the weights of an earlier epoch or of another checkpoint (a baseline trained for fewer --epochs, or with a lower --lr), and check its test top1; the OOD fractions and p_ID of this pass say little about the augmentation.",
            what.join("; ")
        ))
    }
}

fn percent(a: usize, n: usize) -> f64 {
    if n == 0 {
        0.0
    } else {
        100.0 * a as f64 / n as f64
    }
}
