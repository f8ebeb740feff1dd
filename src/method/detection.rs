//! The detection pass: the scorer's losses on the original and augmented view of every sample
//! of one epoch, the GMM fitted on their logs, and what is made of it: `losses.csv`, a per-op
//! OOD report, and the views exported as DAOOD/DAID trees.

use super::diagnosis::{Collapsed, FitDiagnosis, COLLAPSE_FACTOR};
use super::gmm::{log_loss, LOG_EPS, REG_COVAR};
use super::{score, Gmm, MethodError};
use crate::augment::{Applied, AppliedOp, Augmenter, OpName};
use crate::data::Normalisation;
use crate::dist::{Dist, DistError};
use crate::model::Model;
use crate::pipeline::{EpochPlan, Loader, Part, Placement, Upload, Views};
use crate::progress::{Progress, Unit};
use crate::report::html::OpRow;
use crate::streaming::Split;
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use tch::{Device, Tensor};

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

/// Whether the fit `gmm` of the views `records` is degenerate (see [`FitDiagnosis`]): the
/// views at the underflow floor (loss below 1e-10, in fp32 exactly 0), a component of variance
/// within [`COLLAPSE_FACTOR`] of `reg_covar` whose mean is on that floor, and the original views
/// judged OOD. It only looks: the fit stays the reference's.
pub fn diagnose(records: &[ViewRecord], gmm: &Gmm) -> FitDiagnosis {
    let floor = log_loss(0.0);
    // a loss below 1e-10: log(loss + 1e-10) below log(2e-10)
    let at_floor = records.iter().filter(|r| r.log_loss < log_loss(LOG_EPS)).count();
    let originals: Vec<&ViewRecord> = records.iter().filter(|r| r.original).collect();
    let id = gmm.id_component();
    let collapsed = (0..2)
        .find(|&k| gmm.variances[k] <= COLLAPSE_FACTOR * REG_COVAR && (gmm.means[k] - floor).abs() < 0.5)
        .map(|k| Collapsed {
            id: k == id,
            mean: gmm.means[k],
            variance: gmm.variances[k],
            weight: gmm.weights[k],
            reg_covar: REG_COVAR,
        });
    FitDiagnosis {
        views: records.len(),
        at_floor,
        floor,
        originals: originals.len(),
        originals_ood: originals.iter().filter(|r| r.p_id < 0.5).count(),
        collapsed,
    }
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
    /// partial batch dropped; `part` of each (all of it, or one rank's).
    pub fn plan(seed: u64, batch_size: usize, part: Part) -> EpochPlan {
        EpochPlan { seed, epoch: DETECTION_EPOCH, batch_size, shuffle: true, drop_last: true, views: Views::Both, part }
    }
}

/// The processes sharing a detection pass: their group, and the batches of the pass (the
/// global ones, each rank having scored its part of every one).
pub struct Shared<'a> {
    pub dist: &'a Dist,
    pub batches: &'a [Vec<usize>],
}

/// Runs the detection pass of `scorer` over the batches of `loader` (made with
/// [`Detection::plan`]) placed as `to` says, reporting each batch to `progress`, and fits the
/// GMM. With several processes (`shared`), each scores its part of every batch and the views
/// are gathered in one process's order, so that every rank fits the same GMM on the same losses.
pub fn detect(
    scorer: &Model,
    mut loader: Loader,
    to: Placement,
    shared: Option<Shared>,
    progress: &mut dyn Progress,
) -> Result<Detection, MethodError> {
    let mut records = Vec::new();
    progress.start("detection pass", Some(loader.num_batches as u64), 0, Unit::Steps);
    let mut done = 0;
    while let Some(batch) = loader.try_next_batch().inspect_err(|_| progress.finish())? {
        if progress.stop_requested() {
            progress.finish();
            return Err(MethodError::Interrupted);
        }
        if batch.is_empty() {
            loader.recycle(batch); // every image of it left out (--on-bad-image skip)
            continue;
        }
        let (x, y) = batch.upload(to);
        let loss: Vec<f32> = Vec::<f32>::try_from(score(scorer, &x, &y).to_device(Device::Cpu))?;
        let b = batch.n_ori;
        for (k, l) in loss.iter().enumerate() {
            records.push(ViewRecord {
                index: batch.indices[k],
                label: batch.labels[k],
                original: k < b,
                applied: if k < b { Applied::default() } else { batch.applied[k - b].clone() },
                log_loss: log_loss(*l as f64),
                p_id: 0.0,
            });
        }
        loader.recycle(batch);
        done += 1;
        progress.advance(done, &format!("{} views", records.len()));
        crate::io::test_point("detect");
    }
    progress.finish();
    if let Some(shared) = shared {
        records = gather(&records, &shared)?;
    }
    let values: Vec<f64> = records.iter().map(|r| r.log_loss).collect();
    let gmm = Gmm::fit(&values).map_err(MethodError::Fit)?;
    for (r, p) in records.iter_mut().zip(gmm.p_id_batch(&values)) {
        r.p_id = p;
    }
    Ok(Detection { records, gmm })
}

/// Every rank's `records` of a shared detection pass, in the order one process scoring whole
/// batches makes them: batch by batch, its original views then its augmented views, each in
/// the batch's order. One all-gather of the records encoded as numbers ([`encode`]).
fn gather(records: &[ViewRecord], shared: &Shared) -> Result<Vec<ViewRecord>, MethodError> {
    let mine: Vec<f64> = records.iter().flat_map(encode).collect();
    let all = shared.dist.all_gather_varlen(&Tensor::from_slice(&mine))?;
    let all = Vec::<f64>::try_from(&all).expect("a 1-D f64 tensor");
    let mut gathered = Vec::with_capacity(records.len() * shared.dist.world_size());
    let mut rest = &all[..];
    while !rest.is_empty() {
        let (record, tail) = decode(rest).ok_or_else(|| DistError::BadTensor {
            op: "all-gather",
            message: "the detection pass's views came back cut short".into(),
        })?;
        gathered.push(record);
        rest = tail;
    }
    let place: HashMap<usize, (usize, usize)> = shared
        .batches
        .iter()
        .enumerate()
        .flat_map(|(b, batch)| batch.iter().enumerate().map(move |(k, &index)| (index, (b, k))))
        .collect();
    gathered.sort_by_key(|r| {
        let (b, k) = place.get(&r.index).copied().unwrap_or((usize::MAX, usize::MAX));
        (b, !r.original, k)
    });
    Ok(gathered)
}

/// A view record as numbers: index, label, view, log-loss, the ops (count, then each op's
/// place in [`OpName::all`] and value), and the cutout box (0, or 1 and its four sides).
fn encode(r: &ViewRecord) -> Vec<f64> {
    let mut out = vec![r.index as f64, r.label as f64, f64::from(u8::from(r.original)), r.log_loss];
    out.push(r.applied.ops.len() as f64);
    for op in &r.applied.ops {
        out.push(OpName::all().position(|name| name == op.name).unwrap_or(usize::MAX) as f64);
        out.push(f64::from(op.value));
    }
    match r.applied.cutout {
        Some(sides) => {
            out.push(1.0);
            out.extend(sides.map(f64::from));
        }
        None => out.push(0.0),
    }
    out
}

/// The record [`encode`] wrote at the start of `values`, and what follows it.
fn decode(values: &[f64]) -> Option<(ViewRecord, &[f64])> {
    let (head, mut rest) = values.split_at_checked(5)?;
    let mut take = |n: usize| {
        let (taken, tail) = rest.split_at_checked(n)?;
        rest = tail;
        Some(taken)
    };
    let mut ops = Vec::with_capacity(head[4] as usize);
    for _ in 0..head[4] as usize {
        let op = take(2)?;
        ops.push(AppliedOp { name: OpName::all().nth(op[0] as usize)?, value: op[1] as f32 });
    }
    let cutout = match take(1)?[0] {
        0.0 => None,
        _ => Some(<[f64; 4]>::try_from(take(4)?).ok()?.map(|side| side as u16)),
    };
    let record = ViewRecord {
        index: head[0] as usize,
        label: head[1] as i64,
        original: head[2] != 0.0,
        applied: Applied { ops, cutout },
        log_loss: head[3],
        p_id: 0.0,
    };
    Some((record, rest))
}

/// What the views of a detection pass are made again from: the training split and its class
/// names, the augmentation and seed of the pass, and the dataset's normalisation.
pub struct ViewSource<'a> {
    pub set: &'a Split,
    pub classes: &'a [String],
    pub aug: &'a Augmenter,
    pub seed: u64,
    pub norm: Normalisation,
}

/// Writes the augmented views of a detection pass as PNG trees `dir/DAOOD/<class>/<index>.png`
/// (p_ID < 0.5) and `dir/DAID/<class>/<index>.png`, made again from their seeded draws (so
/// `src.seed` must be the pass's). A cutout box, zeroed after normalisation in training, is
/// painted in the normalisation mean colour. The trees are written beside and then renamed into
/// place, replacing older ones; returns the numbers of OOD and ID views.
pub fn export_views(
    det: &Detection,
    src: &ViewSource,
    dir: &Path,
    pool: &rayon::ThreadPool,
) -> Result<(usize, usize), MethodError> {
    let ViewSource { set, classes, aug, seed, norm } = *src;
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
    let (h, w) = set.view_size();
    pool.install(|| {
        views.par_iter().try_for_each(|r| {
            let (img, _) = set.shown_view(aug, norm, (seed, DETECTION_EPOCH), r.index, false)?;
            let tree = if r.p_id < 0.5 { TREES[0] } else { TREES[1] };
            let path = staging.join(tree).join(&classes[r.label as usize]).join(format!("{:05}.png", r.index));
            image::RgbImage::from_raw(w as u32, h as u32, img)
                .expect("an image of the set's size")
                .save(&path)
                .map_err(|source| MethodError::Image { path, source })
        })
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

/// The ops of a view as `losses.csv` writes them: `ShearX(-0.28) Invert(0) Cutout(0:8,3:19)`
/// (the `--cutout` box last, its value `y0:y1,x0:x1`).
pub fn ops_text(a: &Applied) -> String {
    let mut parts: Vec<String> = a.ops.iter().map(|o| format!("{}({})", o.name, o.value)).collect();
    if let Some([y0, y1, x0, x1]) = a.cutout {
        parts.push(format!("{}({y0}:{y1},{x0}:{x1})", OpName::Cutout));
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

    /// Whether this pass's fit is degenerate (see [`diagnose`]).
    pub fn diagnosis(&self) -> FitDiagnosis {
        diagnose(&self.records, &self.gmm)
    }

    /// Fraction of views judged OOD (`p_ID < 0.5`) among `records` that pass `keep`.
    pub fn ood_fraction(&self, keep: impl Fn(&ViewRecord) -> bool) -> (usize, f64) {
        let chosen: Vec<&ViewRecord> = self.records.iter().filter(|r| keep(r)).collect();
        let ood = chosen.iter().filter(|r| r.p_id < 0.5).count();
        (chosen.len(), if chosen.is_empty() { 0.0 } else { ood as f64 / chosen.len() as f64 })
    }

    /// Reads the views of a `losses.csv` written by [`Detection::write_csv`].
    pub fn read_csv(path: &Path) -> Result<Vec<ViewRecord>, MethodError> {
        let text = std::fs::read_to_string(path).map_err(|e| crate::io::FileError::new("read", path, e))?;
        let mut lines = text.lines().enumerate();
        let bad = |line: usize, reason: String| MethodError::Csv { path: path.to_path_buf(), line: line + 1, reason };
        match lines.next() {
            Some((_, "index,label,view,ops,log_loss,p_id")) => {}
            _ => return Err(bad(0, "the header is not index,label,view,ops,log_loss,p_id".into())),
        }
        lines
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(k, l)| parse_record(l).map_err(|reason| bad(k, reason)))
            .collect()
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
        out += &format!("{}\n", self.diagnosis().floor_line());
        let rows = ood_by_op(&self.records);
        if !rows.is_empty() {
            out += "augmented views containing each op (value magnitude):\n";
            for r in rows {
                out += &format!("  {:<28} {:>6.2}% OOD of {}\n", r.op, 100.0 * r.ood as f64 / r.views as f64, r.views);
            }
        }
        out
    }
}

/// The augmented views containing each op at each value magnitude (`Cutout` whatever its box),
/// and how many of them are OOD (p_ID < 0.5); the most OOD first.
pub fn ood_by_op(records: &[ViewRecord]) -> Vec<OpRow> {
    let mut by_op: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for r in records.iter().filter(|r| !r.original) {
        let ood = usize::from(r.p_id < 0.5);
        let mut names: Vec<String> = r.applied.ops.iter().map(|o| format!("{} |{}|", o.name, o.value.abs())).collect();
        if r.applied.cutout.is_some() {
            names.push(OpName::Cutout.to_string());
        }
        names.sort();
        names.dedup();
        for name in names {
            let e = by_op.entry(name).or_default();
            e.0 += 1;
            e.1 += ood;
        }
    }
    let mut rows: Vec<OpRow> = by_op.into_iter().map(|(op, (views, ood))| OpRow { op, views, ood }).collect();
    rows.sort_by(|a, b| (b.ood as f64 / b.views as f64).total_cmp(&(a.ood as f64 / a.views as f64)));
    rows
}

/// The ops of a `losses.csv` line (see `ops_text`) back as what was applied.
fn parse_applied(text: &str) -> Result<Applied, String> {
    let mut applied = Applied::default();
    for token in text.split(' ').filter(|t| !t.is_empty()) {
        let (name, value) = token
            .strip_suffix(')')
            .and_then(|t| t.split_once('('))
            .ok_or_else(|| format!("op '{token}' is not NAME(VALUE)"))?;
        let name = name.parse::<OpName>().map_err(|e| e.to_string())?;
        // the `--cutout` box has a box for its value; SevereAugment's square a number
        if name == OpName::Cutout && value.contains(':') {
            let b: Vec<u16> = value
                .split([':', ','])
                .map(str::parse)
                .collect::<Result<_, _>>()
                .map_err(|_| format!("bad cutout box '{value}'"))?;
            let [y0, y1, x0, x1] = b[..] else { return Err(format!("bad cutout box '{value}'")) };
            applied.cutout = Some([y0, y1, x0, x1]);
        } else {
            let value = value.parse().map_err(|_| format!("bad value in '{token}'"))?;
            applied.ops.push(AppliedOp { name, value });
        }
    }
    Ok(applied)
}

/// One line of `losses.csv`: `index,label,view,"ops",log_loss,p_id`.
fn parse_record(line: &str) -> Result<ViewRecord, String> {
    let mut head = line.splitn(4, ',');
    let (index, label, view, rest) = match (head.next(), head.next(), head.next(), head.next()) {
        (Some(a), Some(b), Some(c), Some(d)) => (a, b, c, d),
        _ => return Err("fewer than six fields".into()),
    };
    let (ops, tail) = rest.strip_prefix('"').and_then(|r| r.split_once("\",")).ok_or("the ops field is not quoted")?;
    let (log_loss, p_id) = tail.split_once(',').ok_or("fewer than six fields")?;
    let number = |what: &str, v: &str| v.trim().parse::<f64>().map_err(|_| format!("{what} '{v}' is not a number"));
    Ok(ViewRecord {
        index: index.parse().map_err(|_| format!("index '{index}' is not a count"))?,
        label: label.parse().map_err(|_| format!("label '{label}' is not a number"))?,
        original: match view {
            "original" => true,
            "augmented" => false,
            v => return Err(format!("view '{v}' is neither original nor augmented")),
        },
        applied: parse_applied(ops)?,
        log_loss: number("log_loss", log_loss)?,
        p_id: number("p_id", p_id)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::Op;
    use crate::method::gmm::REG_COVAR;

    fn record(index: usize, original: bool, ops: Vec<AppliedOp>, cutout: Option<[u16; 4]>, p_id: f64) -> ViewRecord {
        let applied = Applied { ops, cutout };
        ViewRecord { index, label: (index % 3) as i64, original, applied, log_loss: -3.25 + index as f64, p_id }
    }

    /// Views of a detection pass from raw losses (`original` for the first `originals`), with
    /// the GMM fitted on them and p_ID from it.
    fn pass(losses: &[f32], originals: usize) -> Detection {
        let mut records: Vec<ViewRecord> = losses
            .iter()
            .enumerate()
            .map(|(i, &l)| {
                let mut r = record(i, i < originals, vec![], None, 0.0);
                r.log_loss = log_loss(l as f64);
                r
            })
            .collect();
        let values: Vec<f64> = records.iter().map(|r| r.log_loss).collect();
        let gmm = Gmm::fit(&values).unwrap();
        for (r, p) in records.iter_mut().zip(gmm.p_id_batch(&values)) {
            r.p_id = p;
        }
        Detection { records, gmm }
    }

    /// Deterministic losses spread log-uniformly over [lo, hi].
    fn spread(n: usize, lo: f32, hi: f32, seed: u32) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let u = (state >> 8) as f32 / (1u32 << 24) as f32;
                (lo.ln() + u * (hi.ln() - lo.ln())).exp()
            })
            .collect()
    }

    #[test]
    fn a_fit_collapsed_onto_underflowed_losses_is_diagnosed_and_left_as_it_is() {
        // a baseline that fits its training set: 60% of the views (most originals) have a loss
        // that underflowed to exactly 0 in fp32; the rest are small but above 0, a few large
        let mut losses = vec![0.0f32; 180];
        losses.extend(spread(20, 1e-6, 1e-3, 1));
        losses.extend(vec![0.0f32; 60]);
        losses.extend(spread(30, 1e-7, 1e-2, 2));
        losses.extend(spread(10, 1.0, 20.0, 3));
        let det = pass(&losses, 200);
        let d = det.diagnosis();
        assert_eq!((d.views, d.at_floor, d.originals), (300, 240, 200));
        // the reference's fit, untouched: the ID component sits on the spike at log(1e-10)
        let id = det.gmm.id_component();
        assert!((det.gmm.means[id] - log_loss(0.0)).abs() < 1e-9, "{:?}", det.gmm);
        assert!(det.gmm.variances[id] <= COLLAPSE_FACTOR * REG_COVAR, "{:?}", det.gmm);
        let c = d.collapsed.as_ref().expect("the collapse is found");
        assert!(c.id && (c.mean - det.gmm.means[id]).abs() < 1e-12);
        // every original above 0 is OOD under that fit: 20 of 200, not most of them
        assert_eq!(d.originals_ood, 20);
        let w = d.warning().expect("a degenerate fit is reported");
        for part in ["240 of 300 views", "-23.03", "collapsed", "what to do", "--pretrained", "earlier epoch"] {
            assert!(w.contains(part), "{part} missing from: {w}");
        }
        assert!(det.report().contains("underflow floor") && det.report().contains("240 of 300"), "{}", det.report());
    }

    #[test]
    fn a_sound_fit_gets_no_warning_and_most_originals_ood_does() {
        // originals confident, augmented views spread higher: no zero loss, no collapse
        let mut losses = spread(200, 1e-4, 1e-2, 4);
        losses.extend(spread(100, 0.05, 5.0, 5));
        let det = pass(&losses, 200);
        let d = det.diagnosis();
        assert_eq!((d.at_floor, d.collapsed.is_some()), (0, false), "{:?}", det.gmm);
        assert!(d.warning().is_none() && d.originals_ood < 20, "{d:?}");
        // a split that puts most originals OOD is degenerate even without underflow
        let mut records = det.records.clone();
        for r in records.iter_mut().filter(|r| r.original).take(150) {
            r.p_id = 0.2;
        }
        let d = diagnose(&records, &det.gmm);
        assert_eq!(d.originals_ood, 150);
        let w = d.warning().expect("most originals OOD is reported");
        assert!(w.contains("150 of the 200 original views") && w.contains("do not separate"), "{w}");
    }

    #[test]
    fn records_shared_between_ranks_come_back_as_they_were_sent() {
        let op = |name: Op, value| AppliedOp { name: name.into(), value };
        let records = vec![
            record(4, true, vec![], None, 0.0),
            record(9, false, vec![op(Op::ShearX, -0.28), AppliedOp { name: OpName::Jigsaw, value: 2301.0 }], None, 0.0),
            record(2, false, vec![AppliedOp { name: OpName::Cutout, value: 0.7 }], Some([0, 8, 3, 19]), 0.0),
        ];
        let numbers: Vec<f64> = records.iter().flat_map(encode).collect();
        let mut rest = &numbers[..];
        for want in &records {
            let (got, tail) = decode(rest).unwrap();
            assert_eq!(
                (got.index, got.label, got.original, got.log_loss),
                (want.index, want.label, want.original, want.log_loss)
            );
            assert_eq!(got.applied, want.applied);
            rest = tail;
        }
        assert!(rest.is_empty());
        assert!(decode(&numbers[6..12]).is_none(), "a record cut short is refused");
    }

    #[test]
    fn losses_csv_reads_back_what_it_wrote_and_names_a_bad_line() {
        let op = |name: Op, value| AppliedOp { name: name.into(), value };
        let step = |name, value| AppliedOp { name, value };
        let records = vec![
            record(0, true, vec![], None, 0.99),
            record(1, false, vec![op(Op::ShearX, -0.28), op(Op::Invert, 0.0)], Some([0, 8, 3, 19]), 0.125),
            record(2, false, vec![step(OpName::Jigsaw, 2301.0)], None, 0.75),
            record(3, false, vec![op(Op::Rotate, 17.5), op(Op::Posterize, 4.0)], None, 0.25),
            // every policy's steps read back, SevereAugment's grey square beside a --cutout box
            record(4, false, vec![op(Op::TranslateY, 0.5), step(OpName::Cutout, 0.7)], None, 0.25),
            record(5, false, vec![step(OpName::GaussianBlur, 1.375)], None, 0.25),
            record(6, false, vec![step(OpName::Sobel, 0.0)], None, 0.25),
            record(7, false, vec![step(OpName::VerticalFlip, 1.0)], None, 0.25),
        ];
        let gmm = Gmm {
            weights: [0.5, 0.5],
            means: [-4.0, 0.0],
            variances: [1.0, 1.0],
            converged: true,
            iterations: 3,
            lower_bound: 0.0,
        };
        let det = Detection { records: records.clone(), gmm };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("losses.csv");
        det.write_csv(&path).unwrap();
        let back = Detection::read_csv(&path).unwrap();
        assert_eq!(back.len(), records.len());
        for (a, b) in back.iter().zip(&records) {
            assert_eq!((a.index, a.label, a.original, &a.applied), (b.index, b.label, b.original, &b.applied));
            assert!((a.log_loss - b.log_loss).abs() < 1e-6 && (a.p_id - b.p_id).abs() < 1e-6);
        }
        // the per-op table: the inverted view is OOD, the rotated one too, the jigsaw one not
        let rows = ood_by_op(&back);
        let row = |name: &str| rows.iter().find(|r| r.op == name).unwrap_or_else(|| panic!("{name}: {rows:?}"));
        assert_eq!((row("Invert |0|").views, row("Invert |0|").ood), (1, 1));
        assert_eq!((row("Cutout").views, row("Jigsaw |2301|").ood), (1, 0));
        assert_eq!((row("Cutout |0.7|").views, row("GaussianBlur |1.375|").ood), (1, 1));
        assert_eq!(rows.last().unwrap().op, "Jigsaw |2301|", "the most OOD first");
        std::fs::write(&path, "index,label,view,ops,log_loss,p_id\n0,1,augmented,\"Warp(3)\",0.1,0.5\n").unwrap();
        let err = Detection::read_csv(&path).unwrap_err().to_string();
        assert!(err.contains("losses.csv, line 2") && err.contains("Warp"), "{err}");
    }
}
