//! The detection pass: the scorer's losses on the original and augmented view of every sample
//! of one epoch, the GMM fitted on their logs, and what is made of it: `losses.csv`, a per-op
//! OOD report, and the views exported as DAOOD/DAID trees.

use super::{score, Gmm, MethodError};
use crate::augment::{fill_cutout, Applied, Augmenter};
use crate::data::{ImageSet, MEAN};
use crate::model::Model;
use crate::pipeline::{make_view, EpochPlan, Loader, Views};
use crate::progress::{Progress, Unit};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use tch::Device;

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

impl Detection {
    /// The batches of the detection pass: both views of every sample, shuffled, the last
    /// partial batch dropped.
    pub fn plan(seed: u64, batch_size: usize) -> EpochPlan {
        EpochPlan { seed, epoch: DETECTION_EPOCH, batch_size, shuffle: true, drop_last: true, views: Views::Both }
    }
}

/// Runs the detection pass of `scorer` over the batches of `loader` (made with
/// [`Detection::plan`]) on `device`, reporting each batch to `progress`, and fits the GMM.
pub fn detect(
    scorer: &Model,
    mut loader: Loader,
    device: Device,
    progress: &mut dyn Progress,
) -> Result<Detection, MethodError> {
    let mut records = Vec::new();
    progress.start("detection pass", Some(loader.num_batches as u64), 0, Unit::Steps);
    let mut done = 0;
    while let Some(batch) = loader.next_batch() {
        let (x, y) = batch.to_device(device);
        let loss: Vec<f32> = Vec::<f32>::try_from(score(scorer, &x, &y).to_device(Device::Cpu))?;
        let b = batch.n_ori;
        for (k, l) in loss.iter().enumerate() {
            records.push(ViewRecord {
                index: batch.indices[k],
                label: batch.labels[k],
                original: k < b,
                applied: if k < b { Applied::default() } else { batch.applied[k - b].clone() },
                log_loss: super::gmm::log_loss(*l as f64),
                p_id: 0.0,
            });
        }
        loader.recycle(batch);
        done += 1;
        progress.advance(done, &format!("{} views", records.len()));
    }
    progress.finish();
    let values: Vec<f64> = records.iter().map(|r| r.log_loss).collect();
    let gmm = Gmm::fit(&values).map_err(MethodError::Fit)?;
    for (r, p) in records.iter_mut().zip(gmm.p_id_batch(&values)) {
        r.p_id = p;
    }
    Ok(Detection { records, gmm })
}

/// Writes the augmented views of a detection pass as PNG trees `dir/DAOOD/<class>/<index>.png`
/// (p_ID < 0.5) and `dir/DAID/<class>/<index>.png`, made again from their seeded draws (so
/// `seed` must be the pass's). A cutout box, zeroed after normalisation in training, is painted
/// in the normalisation mean colour. The trees are written beside and then renamed into place,
/// replacing older ones; returns the numbers of OOD and ID views.
pub fn export_views(
    det: &Detection,
    set: &ImageSet,
    aug: &Augmenter,
    seed: u64,
    classes: &[String],
    dir: &Path,
    pool: &rayon::ThreadPool,
) -> Result<(usize, usize), MethodError> {
    const TREES: [&str; 2] = ["DAOOD", "DAID"];
    fn file<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> MethodError + 'a {
        move |e| MethodError::File(crate::io::FileError::new(action, path, e))
    }
    let staging = dir.join(".export-partial");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(file("remove", &staging))?;
    }
    for tree in TREES {
        for class in classes {
            let d = staging.join(tree).join(class);
            std::fs::create_dir_all(&d).map_err(file("create", &d))?;
        }
    }
    let views: Vec<&ViewRecord> = det.records.iter().filter(|r| !r.original).collect();
    let mean = MEAN.map(|m| (m * 255.0).round() as u8);
    let (h, w) = (set.height, set.width);
    pool.install(|| {
        views.par_iter().try_for_each_init(
            || vec![0u8; set.image_bytes()],
            |img, r| {
                let applied =
                    make_view(set, aug, seed, DETECTION_EPOCH, r.index, false, img).expect("an augmented view");
                if let Some(cutout) = applied.cutout {
                    fill_cutout(img, w, cutout, &mean);
                }
                let tree = if r.p_id < 0.5 { TREES[0] } else { TREES[1] };
                let path = staging.join(tree).join(&classes[r.label as usize]).join(format!("{:05}.png", r.index));
                image::RgbImage::from_raw(w as u32, h as u32, img.clone())
                    .expect("an image of the set's size")
                    .save(&path)
                    .map_err(|source| MethodError::Image { path, source })
            },
        )
    })?;
    for tree in TREES {
        let target = dir.join(tree);
        if target.exists() {
            std::fs::remove_dir_all(&target).map_err(file("replace", &target))?;
        }
        std::fs::rename(staging.join(tree), &target).map_err(file("create", &target))?;
    }
    std::fs::remove_dir_all(&staging).map_err(file("remove", &staging))?;
    let ood = views.iter().filter(|r| r.p_id < 0.5).count();
    Ok((ood, views.len() - ood))
}

fn ops_text(a: &Applied) -> String {
    let mut parts: Vec<String> = a.ops.iter().map(|o| format!("{}({})", o.name, o.value)).collect();
    if let Some([y0, y1, x0, x1]) = a.cutout {
        parts.push(format!("Cutout({y0}:{y1},{x0}:{x1})"));
    }
    parts.join(" ")
}

impl Detection {
    /// Writes `losses.csv` atomically: sample index, label, view, ops applied, log-loss, p_ID.
    pub fn write_csv(&self, path: &Path) -> Result<(), MethodError> {
        let mut text = Vec::new();
        writeln!(text, "index,label,view,ops,log_loss,p_id").expect("writing to memory");
        for r in &self.records {
            let view = if r.original { "original" } else { "augmented" };
            writeln!(
                text,
                "{},{},{view},\"{}\",{:.6},{:.6}",
                r.index,
                r.label,
                ops_text(&r.applied),
                r.log_loss,
                r.p_id
            )
            .expect("writing to memory");
        }
        Ok(crate::io::write_atomic(path, &text)?)
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
