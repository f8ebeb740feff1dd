//! The ReSmooth method proper: the pretrained scorer, the detection pass that fits the GMM on
//! log-losses of original and augmented views, and `p_ID` of augmented views during retraining.

use crate::augment::{Applied, Augmenter};
use crate::data::ImageSet;
use crate::gmm::Gmm;
use crate::model::Model;
use crate::pipeline::{EpochPlan, Loader, Views};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::{Device, Kind, Tensor};

/// The tag of a run's baseline by the reference's convention: the last component of the tag
/// replaced by `baseline` (`cifar10/res18/rs_ra` → `cifar10/res18/baseline`).
pub fn baseline_tag(tag: &str) -> String {
    match tag.rsplit_once('/') {
        Some((parent, _)) => format!("{parent}/baseline"),
        None => "baseline".to_string(),
    }
}

/// The file of a baseline's best-test-epoch weights in its run folder.
pub const BEST_WEIGHTS: &str = "best.safetensors";

/// The pretrained weights a run uses: `--pretrained`, else the baseline's best-test-epoch
/// weights, as the reference loads them (its `model.pth` is written only when test top1
/// improves): `<logdir>/<baseline tag>/best.safetensors`, or, with `--save DIR/RUN/FILE`, the
/// reference's lookup with the save path's parent folder replaced by `baseline`:
/// `DIR/baseline/best.safetensors`.
pub fn pretrained_path(logdir: &Path, tag: &str, save: Option<&Path>, pretrained: Option<&Path>) -> PathBuf {
    if let Some(p) = pretrained {
        return p.to_path_buf();
    }
    match save {
        Some(save) => {
            let run_dir = save.parent().unwrap_or(Path::new(""));
            run_dir.parent().unwrap_or(Path::new("")).join("baseline").join(BEST_WEIGHTS)
        }
        None => logdir.join(baseline_tag(tag)).join(BEST_WEIGHTS),
    }
}

/// Loads the pretrained baseline (the scorer or teacher); a missing or mismatched file is an
/// error naming the path and the command that makes it.
pub fn load_pretrained(
    path: &Path,
    model: &str,
    dataset: &str,
    num_classes: i64,
    tag: &str,
    device: Device,
) -> Result<Model> {
    let make = format!(
        "train it first with `resmooth train --dataset {dataset} --model {model} --prob 1.0 --tag {}` (or pass --pretrained PATH)",
        baseline_tag(tag)
    );
    if !path.is_file() {
        anyhow::bail!("the pretrained baseline {} does not exist; {make}", path.display());
    }
    let mut m = Model::new(model, num_classes, device)?;
    m.load(path).with_context(|| format!("loading the pretrained baseline; {make}"))?;
    Ok(m)
}

/// Per-sample cross-entropy of `model` in eval mode, without gradient.
pub fn score(model: &Model, x: &Tensor, y: &Tensor) -> Tensor {
    tch::no_grad(|| {
        let logits = model.forward_t(x, false);
        logits.cross_entropy_loss::<Tensor>(y, None, tch::Reduction::None, -100, 0.0)
    })
}

/// `p_ID` of per-sample losses on the device (no host synchronisation): the GMM posterior of
/// the lower-mean component for `log(loss + 1e-10)`, computed in float64.
pub fn p_id_tensor(gmm: &Gmm, loss: &Tensor) -> Tensor {
    let x = (loss.to_kind(Kind::Double) + 1e-10).log();
    let id = gmm.id_component();
    let log_prob = |k: usize| {
        let prec = 1.0 / gmm.variances[k].sqrt();
        let norm = gmm.weights[k].ln() + prec.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln();
        let z = (&x - gmm.means[k]) * prec;
        norm - z.square() * 0.5
    };
    (log_prob(id) - log_prob(1 - id)).sigmoid().to_kind(Kind::Float)
}

/// One scored view of the detection pass.
#[derive(Debug, Clone)]
pub struct ViewRecord {
    pub index: usize,
    pub label: i64,
    pub original: bool,
    pub applied: Applied,
    pub log_loss: f64,
    pub p_id: f64,
}

/// The detection pass: the scorer's losses on both views of one epoch of the training set
/// (shuffled, last partial batch dropped, as the reference's loader), and the GMM fitted on them.
pub struct Detection {
    pub records: Vec<ViewRecord>,
    pub gmm: Gmm,
}

/// The epoch number of the detection pass's views: 0, so its random streams differ from those
/// of every training epoch (numbered from 1).
pub const DETECTION_EPOCH: u64 = 0;

/// Runs the detection pass of `scorer` over `set` with augmentation `aug`.
pub fn detect(
    scorer: &Model,
    set: Arc<ImageSet>,
    aug: Arc<Augmenter>,
    pool: Arc<rayon::ThreadPool>,
    seed: u64,
    batch_size: usize,
    device: Device,
) -> Result<Detection> {
    let (h, w) = (set.height, set.width);
    let plan =
        EpochPlan { seed, epoch: DETECTION_EPOCH, batch_size, shuffle: true, drop_last: true, views: Views::Both };
    let mut loader = Loader::start(set.clone(), plan, aug, pool, 3);
    let mut records = Vec::with_capacity(2 * set.len());
    while let Some(batch) = loader.next_batch() {
        let (x, y) = batch.to_device(h, w, device);
        let loss: Vec<f32> = Vec::<f32>::try_from(score(scorer, &x, &y).to_device(Device::Cpu))?;
        let b = batch.n_ori;
        for (k, l) in loss.iter().enumerate() {
            records.push(ViewRecord {
                index: batch.indices[k],
                label: batch.labels[k],
                original: k < b,
                applied: if k < b { Applied::default() } else { batch.applied[k - b].clone() },
                log_loss: crate::gmm::log_loss(*l as f64),
                p_id: 0.0,
            });
        }
        loader.recycle(batch);
    }
    let values: Vec<f64> = records.iter().map(|r| r.log_loss).collect();
    let gmm = Gmm::fit(&values).context("fitting the GMM on the detection pass's log-losses")?;
    for (r, p) in records.iter_mut().zip(gmm.p_id_batch(&values)) {
        r.p_id = p;
    }
    Ok(Detection { records, gmm })
}

fn ops_text(a: &Applied) -> String {
    let mut parts: Vec<String> = a.ops.iter().map(|o| format!("{}({})", o.name, o.value)).collect();
    if let Some([y0, y1, x0, x1]) = a.cutout {
        parts.push(format!("Cutout({y0}:{y1},{x0}:{x1})"));
    }
    parts.join(" ")
}

impl Detection {
    /// Writes `losses.csv`: sample index, label, view, ops applied, log-loss, p_ID.
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("csv.tmp");
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
        );
        writeln!(f, "index,label,view,ops,log_loss,p_id")?;
        for r in &self.records {
            let view = if r.original { "original" } else { "augmented" };
            writeln!(f, "{},{},{view},\"{}\",{:.6},{:.6}", r.index, r.label, ops_text(&r.applied), r.log_loss, r.p_id)?;
        }
        f.into_inner().map_err(|e| anyhow::anyhow!("writing {}: {e}", tmp.display()))?.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
    }

    /// Fraction of views judged OOD (`p_ID < 0.5`) among `records` that pass `keep`.
    pub fn ood_fraction(&self, keep: impl Fn(&ViewRecord) -> bool) -> (usize, f64) {
        let chosen: Vec<&ViewRecord> = self.records.iter().filter(|r| keep(r)).collect();
        let ood = chosen.iter().filter(|r| r.p_id < 0.5).count();
        (chosen.len(), if chosen.is_empty() { 0.0 } else { ood as f64 / chosen.len() as f64 })
    }

    /// A text report: the GMM, the OOD fraction overall, per view, and per augmentation op
    /// (value as applied), so a user sees which ops make OOD samples.
    pub fn report(&self) -> String {
        let g = &self.gmm;
        let id = g.id_component();
        let mut out = format!(
            "GMM: ID component mean {:.4} var {:.4} weight {:.4}; OOD component mean {:.4} var {:.4} weight {:.4}; {} after {} EM steps\n",
            g.means[id],
            g.variances[id],
            g.weights[id],
            g.means[1 - id],
            g.variances[1 - id],
            g.weights[1 - id],
            if g.converged { "converged" } else { "not converged" },
            g.iterations
        );
        let (n, f) = self.ood_fraction(|_| true);
        out += &format!("OOD (p_ID < 0.5): {:.2}% of {n} views\n", 100.0 * f);
        let (n, f) = self.ood_fraction(|r| r.original);
        out += &format!("  original views:  {:.2}% of {n}\n", 100.0 * f);
        let (n, f) = self.ood_fraction(|r| !r.original);
        out += &format!("  augmented views: {:.2}% of {n}\n", 100.0 * f);
        // per op name, and per (op, value magnitude)
        let mut by_op: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for r in self.records.iter().filter(|r| !r.original) {
            let ood = usize::from(r.p_id < 0.5);
            let mut names: Vec<String> =
                r.applied.ops.iter().map(|o| format!("{} |{}|", o.name, o.value.abs())).collect();
            if r.applied.cutout.is_some() {
                names.push("Cutout".into());
            }
            names.sort();
            names.dedup();
            for name in names {
                let e = by_op.entry(name).or_default();
                e.0 += 1;
                e.1 += ood;
            }
        }
        if !by_op.is_empty() {
            out += "augmented views containing each op (value magnitude):\n";
            let mut rows: Vec<(&String, &(usize, usize))> = by_op.iter().collect();
            rows.sort_by(|a, b| (b.1 .1 as f64 / b.1 .0 as f64).total_cmp(&(a.1 .1 as f64 / a.1 .0 as f64)));
            for (name, (n, ood)) in rows {
                out += &format!("  {name:<28} {:>6.2}% OOD of {n}\n", 100.0 * *ood as f64 / *n as f64);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_by_the_reference_convention() {
        assert_eq!(baseline_tag("cifar10/res18/rs_ra"), "cifar10/res18/baseline");
        assert_eq!(baseline_tag("rs"), "baseline");
        assert_eq!(
            pretrained_path(Path::new("logs"), "cifar10/res18/rs_ra", None, None),
            Path::new("logs/cifar10/res18/baseline/best.safetensors")
        );
        assert_eq!(
            pretrained_path(Path::new("logs"), "x/y", None, Some(Path::new("w.safetensors"))),
            Path::new("w.safetensors")
        );
        // --save moves the lookup as the reference's does: the save path's folder becomes `baseline`
        assert_eq!(
            pretrained_path(Path::new("logs"), "x/y", Some(Path::new("ckpt/c10/rs/model.safetensors")), None),
            Path::new("ckpt/c10/baseline/best.safetensors")
        );
        assert_eq!(
            pretrained_path(Path::new("logs"), "x/y", Some(Path::new("rs/w.safetensors")), None),
            Path::new("baseline/best.safetensors")
        );
    }

    #[test]
    fn device_posterior_equals_the_gmm_posterior() {
        let gmm = Gmm {
            weights: [0.3, 0.7],
            means: [1.0, -2.0],
            variances: [0.5, 1.5],
            converged: true,
            iterations: 3,
            lower_bound: 0.0,
        };
        let losses = [1e-6f32, 0.01, 0.1, 0.5, 1.0, 3.0, 20.0];
        let got = Vec::<f32>::try_from(p_id_tensor(&gmm, &Tensor::from_slice(&losses))).unwrap();
        for (l, g) in losses.iter().zip(got) {
            assert!((gmm.p_id_loss(*l as f64) - g as f64).abs() < 1e-6, "loss {l}");
        }
    }

    #[test]
    fn missing_pretrained_names_the_path_and_the_command() {
        let err = load_pretrained(
            Path::new("logs/c/r/baseline/model.safetensors"),
            "resnet18",
            "cifar10",
            10,
            "c/r/rs",
            Device::Cpu,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("logs/c/r/baseline/model.safetensors") && err.contains("--tag c/r/baseline"), "{err}");
    }
}
