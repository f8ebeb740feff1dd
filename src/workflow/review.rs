//! The report of run folders: reads what the runs wrote (`summary.json` or `detect.json`,
//! `metrics.jsonl`, the TensorBoard events, `gmm.json`, `losses.csv`), remakes the augmented views the detection pass
//! scored from their seeded draws when the training images are at hand, and writes the HTML page.
//! What is missing or unreadable becomes a note on the page, not a failure.

use super::WorkflowError;
use crate::config::{AugName, DataConfig, DataInMemory, DatasetName, TrainConfig};
use crate::data;
use crate::engine::{augmenter, checkpoint, open_splits, subsets, EngineError};
use crate::io::write_atomic;
use crate::method::{diagnose, ood_by_op, ops_text, Detection, Gmm, ViewRecord, DETECTION_EPOCH};
use crate::progress::Progress;
use crate::report::detect_summary::read_detect_summary;
use crate::report::html::{DetectionView, Mixture, Report, RunReport, Tile};
use crate::report::tensorboard::{event_files, read_events, ValueKind, What};
use crate::report::train_log::utc_stamp;
use crate::report::{self, ReportError, RgbImage};
use crate::run_folder::{RunFolder, GMM, LOSSES, RECORDS, SUMMARY};
use crate::splits::Splits;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How the report is made.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOptions {
    /// Where the training images are, instead of the `--dataroot` the runs recorded.
    pub dataroot: Option<PathBuf>,
    /// Views in each grid (most OOD, most ID); 0 leaves the grids out.
    pub views: usize,
}

/// Writes the report of the run folders `dirs` to `out` (a file; its folder is made) and
/// returns the page. A folder that does not exist or holds none of a run's files is an error.
pub fn write_report(
    dirs: &[PathBuf],
    out: &Path,
    opts: &ReportOptions,
    progress: &mut dyn Progress,
) -> Result<Report, WorkflowError> {
    let mut data = DataCache::default();
    let mut runs = Vec::new();
    for dir in dirs {
        if !dir.is_dir() {
            return Err(WorkflowError::NotARun { dir: dir.clone(), reason: "it is not a folder".into() });
        }
        let folder = RunFolder::at(dir);
        if !folder.holds_a_run() {
            return Err(WorkflowError::NotARun {
                dir: dir.clone(),
                reason: format!("it holds none of {}", RECORDS.join(", ")),
            });
        }
        progress.note(&format!("reading {}", dir.display()));
        runs.push(read_run(&folder, opts, &mut data, progress));
    }
    let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
    let report = Report {
        title: format!("resmooth report: {}", names.join(", ")),
        generated: utc_stamp(std::time::SystemTime::now()),
        runs,
    };
    write_atomic(out, report.html().as_bytes())?;
    Ok(report)
}

/// A run folder as the page shows it.
fn read_run(folder: &RunFolder, opts: &ReportOptions, data: &mut DataCache, progress: &mut dyn Progress) -> RunReport {
    let dir = &folder.dir;
    let mut run = RunReport { name: dir.display().to_string(), dir: dir.clone(), ..RunReport::default() };
    if folder.summary.is_file() {
        match report::read_summary(&folder.summary) {
            Ok(s) => run.summary = Some(s),
            Err(e) => run.notes.push(chain(&e)),
        }
    }
    if folder.metrics.is_file() {
        match report::read_metrics(&folder.metrics) {
            Ok(m) => run.metrics = m,
            Err(e) => run.notes.push(chain(&e)),
        }
    }
    if let Err(e) = read_events_of(dir, &mut run) {
        run.notes.push(chain(&e));
    }
    let config = run_config(folder, run.summary.as_ref().map(|s| &s.config), &mut run.notes);
    if let Some(c) = &config {
        if !c.run.tag.is_empty() {
            run.name = c.run.tag.clone();
        }
    }
    run.detection = read_detection(folder, config.as_ref(), opts, data, &mut run.notes, progress);
    run
}

/// The scalars and the last histograms of the run's TensorBoard events (a later file's value
/// of a step replaces an earlier one's).
fn read_events_of(dir: &Path, run: &mut RunReport) -> Result<(), ReportError> {
    let mut scalars: BTreeMap<String, BTreeMap<usize, f64>> = BTreeMap::new();
    for path in event_files(dir)? {
        for event in read_events(&path)?.events {
            let (step, Some(What::Summary(summary))) = (event.step.max(0) as usize, event.what) else { continue };
            for value in summary.value {
                match value.value {
                    Some(ValueKind::SimpleValue(v)) => {
                        scalars.entry(value.tag).or_default().insert(step, v as f64);
                    }
                    Some(ValueKind::Histo(h)) if run.histograms.get(&value.tag).is_none_or(|(s, _)| *s <= step) => {
                        run.histograms.insert(value.tag, (step, h));
                    }
                    _ => {}
                }
            }
        }
    }
    run.scalars = scalars.into_iter().map(|(tag, steps)| (tag, steps.into_iter().collect())).collect();
    Ok(())
}

/// An error with its sources, for a note.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text += &format!(": {s}");
        source = s.source();
    }
    text
}

/// What the run ran with: its summary's configuration, else `detect.json`'s, else the identity in
/// its checkpoint (an unfinished run; without its `--dataroot`).
fn run_config(folder: &RunFolder, summary: Option<&TrainConfig>, notes: &mut Vec<String>) -> Option<TrainConfig> {
    if let Some(c) = summary {
        return Some(c.clone());
    }
    if folder.detect.is_file() {
        match read_detect_summary(&folder.detect) {
            Ok(s) => return Some(s.config),
            Err(e) => notes.push(chain(&e)),
        }
    }
    let ckpt = &folder.checkpoint;
    if ckpt.is_file() {
        match checkpoint::read_meta(ckpt).map(|m| serde_json::from_value::<TrainConfig>(m.config)) {
            Ok(Ok(mut c)) => {
                c.data.dataroot = TrainConfig::default().data.dataroot;
                notes.push(format!(
                    "the run has not finished (no {SUMMARY}); its configuration comes from its checkpoint"
                ));
                return Some(c);
            }
            Ok(Err(e)) => notes.push(format!("{}: the configuration in it cannot be read: {e}", ckpt.display())),
            Err(e) => notes.push(chain(&e)),
        }
    }
    None
}

/// The detection pass of a run folder: its `gmm.json` and `losses.csv`, and the grids of views.
fn read_detection(
    folder: &RunFolder,
    config: Option<&TrainConfig>,
    opts: &ReportOptions,
    data: &mut DataCache,
    notes: &mut Vec<String>,
    progress: &mut dyn Progress,
) -> Option<DetectionView> {
    let (gmm_path, csv_path) = (&folder.gmm, &folder.losses);
    if !gmm_path.is_file() && !csv_path.is_file() {
        return None;
    }
    let mut view = DetectionView::default();
    let mut gmm = None;
    if gmm_path.is_file() {
        match Gmm::load(gmm_path) {
            Ok(g) => {
                view.mixture = Some(mixture(&g));
                gmm = Some(g);
            }
            Err(e) => notes.push(chain(&e)),
        }
    }
    let records = if csv_path.is_file() {
        Detection::read_csv(csv_path).unwrap_or_else(|e| {
            notes.push(chain(&e));
            Vec::new()
        })
    } else {
        notes.push(format!(
            "no {LOSSES} beside {GMM} (runs before this version wrote none): no histogram, op table or views"
        ));
        Vec::new()
    };
    for r in &records {
        let values = if r.original { &mut view.origin } else { &mut view.augmentation };
        values.push(r.log_loss);
        view.ood[usize::from(!r.original)] += usize::from(r.p_id < 0.5);
    }
    view.ops = ood_by_op(&records);
    if let Some(g) = gmm.as_ref().filter(|_| !records.is_empty()) {
        view.diagnosis = Some(diagnose(&records, g));
    }
    if let Some(c) = config.filter(|c| c.aug.aug == AugName::RandAugment && c.aug.prob < 1.0) {
        view.magnitude = Some((c.aug.m, c.aug.n));
    }
    if opts.views > 0 && records.iter().any(|r| !r.original) {
        match config {
            None => {
                notes.push("the configuration of the run is not known: the views it scored cannot be made again".into())
            }
            Some(c) => match tiles(c, &records, opts, data, progress) {
                Ok((ood, id)) => (view.most_ood, view.most_id) = (ood, id),
                Err(note) => notes.push(note),
            },
        }
    }
    Some(view)
}

fn mixture(g: &Gmm) -> Mixture {
    Mixture {
        weights: g.weights,
        means: g.means,
        variances: g.variances,
        id: g.id_component(),
        converged: g.converged,
        iterations: g.iterations,
        boundaries: g.boundaries(),
    }
}

/// The grids of most-OOD and most-ID augmented views, made again from their seeded draws and
/// checked against the ops the run recorded; a note when that cannot be done.
fn tiles(
    c: &TrainConfig,
    records: &[ViewRecord],
    opts: &ReportOptions,
    cache: &mut DataCache,
    progress: &mut dyn Progress,
) -> Result<(Vec<Tile>, Vec<Tile>), String> {
    let mut data = c.data.clone();
    if let Some(root) = &opts.dataroot {
        data.dataroot = root.clone();
    }
    let ds = cache.get(&data, c.run.seed, progress).map_err(|e| {
        format!(
            "the training images are not at hand ({e}); the grids of views need them: pass --dataroot DIR with the run's {} data",
            data.dataset
        )
    })?;
    let mut augmented: Vec<&ViewRecord> = records.iter().filter(|r| !r.original).collect();
    augmented.sort_by(|a, b| a.p_id.total_cmp(&b.p_id).then(b.log_loss.total_cmp(&a.log_loss)));
    let n = opts.views.min(augmented.len() / 2).max(1);
    let aug = augmenter(c);
    let make = |r: &&ViewRecord| -> Result<Tile, String> {
        let set = &ds.train;
        let norm = ds.dataset.normalisation;
        if r.index >= set.len() {
            return Err(format!(
                "the run scored sample {} but {} holds {} training images: it is not the run's data",
                r.index,
                data.dataroot.display(),
                set.len()
            ));
        }
        let (pixels, applied) = set
            .shown_view(&aug, norm, (c.run.seed, DETECTION_EPOCH), r.index, false)
            .map_err(|e| format!("making sample {}'s view again: {e}", r.index))?;
        let applied = applied.unwrap_or_default();
        if applied != r.applied || set.label(r.index) != r.label {
            return Err(format!(
                "the views made again from {} are not those the run scored (sample {}: {} instead of {}): it is not the run's data",
                data.dataroot.display(),
                r.index,
                ops_text(&applied),
                ops_text(&r.applied)
            ));
        }
        let (height, width) = set.view_size();
        let png = RgbImage { height, width, pixels }.png();
        let class = ds.dataset.classes.get(r.label as usize).cloned().unwrap_or_else(|| r.label.to_string());
        Ok(Tile { png, index: r.index, class, ops: ops_text(&r.applied), p_id: r.p_id, log_loss: r.log_loss })
    };
    let most_ood = augmented.iter().take(n).map(make).collect::<Result<Vec<_>, _>>()?;
    let most_id = augmented.iter().rev().take(n).map(make).collect::<Result<Vec<_>, _>>()?;
    Ok((most_ood, most_id))
}

/// Datasets read for the grids, each once.
#[derive(Default)]
struct DataCache {
    loaded: Vec<(DataConfig, u64, Result<Splits, String>)>,
}

impl DataCache {
    /// The training data of `data` with its subsets drawn with `seed`, read without downloading;
    /// a folder dataset streamed (the grids need a few views, not every image decoded).
    fn get(&mut self, data: &DataConfig, seed: u64, progress: &mut dyn Progress) -> Result<&Splits, String> {
        let at = match self.loaded.iter().position(|(d, s, _)| d == data && *s == seed) {
            Some(at) => at,
            None => {
                let place = match data.dataset {
                    DatasetName::Demo => "(built in, generated in memory)".to_string(),
                    _ => format!("in {}", data.dataroot.display()),
                };
                progress.note(&format!("reading the {} training images {place}", data.dataset));
                let ds = match data.dataset {
                    DatasetName::ImageFolder | DatasetName::ImageNet => {
                        let streamed = DataConfig { data_in_memory: DataInMemory::No, ..data.clone() };
                        open_splits(&streamed, seed, progress)
                    }
                    _ => data::load_configured(data, progress)
                        .map_err(EngineError::from)
                        .and_then(|ds| subsets(ds, data, seed))
                        .map(Splits::in_memory),
                };
                let ds = ds.map_err(|e| chain(&e));
                self.loaded.push((data.clone(), seed, ds));
                self.loaded.len() - 1
            }
        };
        self.loaded[at].2.as_ref().map_err(Clone::clone)
    }
}
