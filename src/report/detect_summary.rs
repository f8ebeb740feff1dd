//! `detect.json`: what `resmooth detect` scored, beside its `gmm.json` and `losses.csv`, so that
//! the report can remake the views it scored; and the diagnosis of a detection pass's fit.

use super::ReportError;
use crate::config::TrainConfig;
use crate::io::{write_atomic, FileError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The outcome of a detection pass and what it ran with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DetectSummary {
    /// The weights that scored the views.
    pub pretrained: PathBuf,
    /// Views scored (original and augmented).
    pub views: usize,
    pub seconds: f64,
    pub device: String,
    /// The data, augmentation, model and seed of the pass, as a training run's configuration
    /// (the other fields at their defaults).
    pub config: TrainConfig,
    /// Whether the fit is degenerate, and why (absent in files of earlier versions).
    #[serde(default)]
    pub diagnosis: Option<FitDiagnosis>,
    /// The diagnosis's warning, as the terminal showed it; null when the fit is sound.
    #[serde(default)]
    pub warning: Option<String>,
}

/// Writes `detect.json` atomically.
pub fn write_detect_summary(path: &Path, s: &DetectSummary) -> Result<(), ReportError> {
    Ok(write_atomic(path, serde_json::to_string_pretty(s).expect("a summary serialises").as_bytes())?)
}

/// Reads `detect.json`.
pub fn read_detect_summary(path: &Path) -> Result<DetectSummary, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|e| FileError::new("read", path, e))?;
    serde_json::from_str(&text).map_err(|source| ReportError::Parse { path: path.to_path_buf(), source })
}

/// Whether the GMM fit of a detection pass is degenerate: the losses at the underflow floor
/// (exactly 0 in fp32, so `log(0 + 1e-10)` = -23.03), a component collapsed onto that spike,
/// and how many original views the split puts OOD. Computed by the method from the scored
/// views and the fit (`method::diagnose`); the fit itself stays the reference's.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FitDiagnosis {
    /// Views scored.
    pub views: usize,
    /// Views whose loss is below 1e-10 (in fp32: exactly 0), at the floor of `log(loss + 1e-10)`.
    pub at_floor: usize,
    /// The floor, `log(1e-10)`.
    pub floor: f64,
    /// Original views scored, and how many of them are judged OOD (p_ID < 0.5).
    pub originals: usize,
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
    pub mean: f64,
    pub variance: f64,
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
