//! The HTML report of one or more run folders: one self-contained static page (inline SVG plots,
//! PNG views as data URIs, no script, no external font or style), built from plain data that the
//! report workflow gathers from the run folders (`workflow::review`).
//!
//! Sections: the comparison of the runs (a table and overlaid curves, with several runs), then
//! per run: its configuration and command lines, the accuracy, loss and learning-rate curves, ID
//! vs OOD training accuracy with the OOD fraction, and the detection pass: the log-loss
//! histograms of original and augmented views with the fitted Gaussians and the ID/OOD boundary,
//! the OOD fraction per op, and the most-OOD and most-ID augmented views.

use super::reproduce::command_lines;
use super::svg::{escape, Chart, Series, Style, CSS};
use super::tensorboard::{tags, HistogramProto};
use super::{EpochMetrics, Summary};
use crate::method::FitDiagnosis;
use crate::run_folder::{GMM, LOSSES, METRICS, SUMMARY};
use base64::Engine;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;

/// The fitted mixture of a detection pass, as plain numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Mixture {
    pub weights: [f64; 2],
    pub means: [f64; 2],
    pub variances: [f64; 2],
    /// The in-distribution component.
    pub id: usize,
    pub converged: bool,
    pub iterations: usize,
    /// The log-losses where p_ID = 0.5.
    pub boundaries: Vec<f64>,
}

impl Mixture {
    /// The weighted density of component `k` at `x`.
    fn density(&self, k: usize, x: f64) -> f64 {
        let v = self.variances[k];
        self.weights[k] * (-(x - self.means[k]).powi(2) / (2.0 * v)).exp() / (2.0 * std::f64::consts::PI * v).sqrt()
    }
}

/// Augmented views containing one op (or op and magnitude), and how many of them are OOD.
#[derive(Debug, Clone, PartialEq)]
pub struct OpRow {
    pub op: String,
    pub views: usize,
    pub ood: usize,
}

/// One augmented view shown in a grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Tile {
    /// PNG bytes.
    pub png: Vec<u8>,
    pub index: usize,
    pub class: String,
    /// The ops applied, with their values.
    pub ops: String,
    pub p_id: f64,
    pub log_loss: f64,
}

/// A detection pass: its mixture (gmm.json) and scored views (losses.csv).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DetectionView {
    pub mixture: Option<Mixture>,
    /// Log-losses of the original and of the augmented views.
    pub origin: Vec<f64>,
    pub augmentation: Vec<f64>,
    /// Views judged OOD (p_ID < 0.5) among the original and among the augmented views.
    pub ood: [usize; 2],
    pub ops: Vec<OpRow>,
    /// The augmented views of lowest and of highest p_ID.
    pub most_ood: Vec<Tile>,
    pub most_id: Vec<Tile>,
    /// The RandAugment magnitude (`--M`) and ops per image (`--N`), when known.
    pub magnitude: Option<(usize, usize)>,
    /// Whether the fit is degenerate, when both the mixture and the scored views are at hand.
    pub diagnosis: Option<FitDiagnosis>,
}

/// One run folder.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunReport {
    pub name: String,
    pub dir: PathBuf,
    pub summary: Option<Summary>,
    pub metrics: Vec<EpochMetrics>,
    /// The scalars of its TensorBoard events, by tag: (epoch, value).
    pub scalars: BTreeMap<String, Vec<(usize, f64)>>,
    /// The last histogram of each tag of its TensorBoard events: (epoch, histogram).
    pub histograms: BTreeMap<String, (usize, HistogramProto)>,
    pub detection: Option<DetectionView>,
    /// What is missing or could not be read, to say on the page.
    pub notes: Vec<String>,
}

/// The page.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    pub title: String,
    /// When it was made (a UTC stamp).
    pub generated: String,
    pub runs: Vec<RunReport>,
}

const PAGE_CSS: &str = "body{font-family:sans-serif;margin:0 auto;max-width:1340px;padding:16px;color:#222;background:#fafafa}\
h1{font-size:22px}h2{font-size:19px;border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:32px}h3{font-size:16px}\
table{border-collapse:collapse;margin:8px 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}\
th{background:#eee}td.l,th.l{text-align:left}code,pre{font-family:monospace;font-size:12px}\
pre{background:#f0f0f0;padding:8px;white-space:pre-wrap;word-break:break-all}\
.plots{display:flex;flex-wrap:wrap;gap:12px}.plots>div{flex:1 1 600px;max-width:660px}\
.note{background:#fff4d6;border-left:4px solid #e0a800;padding:6px 10px;margin:8px 0;font-size:13px}\
.warn{background:#fde2e1;border-left-color:#c62828}\
.grid{display:flex;flex-wrap:wrap;gap:8px}.tile{width:132px;font-size:11px;background:#fff;border:1px solid #ddd;padding:4px}\
.tile img{width:128px;height:128px;image-rendering:pixelated;display:block}\
nav a{margin-right:12px}summary{cursor:pointer;margin:8px 0}";

/// A `data:` URI of PNG bytes.
pub fn png_uri(png: &[u8]) -> String {
    format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(png))
}

fn note(out: &mut String, text: &str) {
    let _ = write!(out, r#"<p class="note">{}</p>"#, escape(text));
}

fn plot(out: &mut String, chart: &Chart) {
    let _ = write!(out, "<div>{}</div>", chart.svg());
}

/// `1h02m` or `3m07s` or `12.3s`.
fn hours(seconds: f64) -> String {
    let s = seconds.max(0.0);
    if s >= 3600.0 {
        format!("{}h{:02}m", (s / 3600.0) as u64, (s / 60.0) as u64 % 60)
    } else if s >= 60.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, s as u64 % 60)
    } else {
        format!("{s:.1}s")
    }
}

fn series(
    name: &str,
    colour: usize,
    style: Style,
    metrics: &[EpochMetrics],
    y: impl Fn(&EpochMetrics) -> Option<f64>,
) -> Series {
    let points = metrics.iter().filter_map(|m| y(m).map(|v| (m.epoch as f64, v))).collect();
    Series { name: name.into(), points, style, colour }
}

fn epochs_chart(title: &str, y_label: &str, series: Vec<Series>, y_range: Option<(f64, f64)>) -> Chart {
    Chart {
        title: title.into(),
        x_label: "epoch".into(),
        y_label: y_label.into(),
        series,
        y_range,
        integer_x: true,
        ..Chart::default()
    }
}

impl Report {
    /// The page as HTML.
    pub fn html(&self) -> String {
        let mut out = String::new();
        let title = escape(&self.title);
        let _ = writeln!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title><style>{PAGE_CSS}{CSS}</style></head><body>\n<h1>{title}</h1>\n<p>Made by resmooth {} on {}. Accuracies are fractions (0.93 = 93%).</p>",
            env!("CARGO_PKG_VERSION"),
            escape(&self.generated)
        );
        out.push_str("<nav><a href=\"#comparison\">Comparison</a>");
        for (i, run) in self.runs.iter().enumerate() {
            let _ = write!(out, "<a href=\"#run-{i}\">{}</a>", escape(&run.name));
        }
        out.push_str("</nav>\n");
        self.comparison(&mut out);
        for (i, run) in self.runs.iter().enumerate() {
            run.section(&mut out, i);
        }
        out.push_str("</body></html>\n");
        out
    }

    fn comparison(&self, out: &mut String) {
        out.push_str("<section id=\"comparison\"><h2>Comparison</h2>\n<table><tr><th class=\"l\">run</th><th class=\"l\">setting</th><th>epochs</th><th>last top1</th><th>best top1</th><th>best epoch</th><th>time</th><th>images/s</th><th class=\"l\">device</th></tr>\n");
        for run in &self.runs {
            let last = run.metrics.last();
            let best = run.metrics.iter().max_by(|a, b| a.test_top1.total_cmp(&b.test_top1));
            let (last_top1, best_top1, best_epoch, seconds, device) = match &run.summary {
                Some(s) => (
                    Some(s.last_test_top1),
                    Some(s.best_test_top1),
                    Some(s.best_epoch),
                    Some(s.total_seconds),
                    s.device.clone(),
                ),
                None => (
                    last.map(|m| m.test_top1),
                    best.map(|m| m.test_top1),
                    best.map(|m| m.epoch),
                    Some(run.metrics.iter().map(|m| m.seconds).sum()),
                    "-".into(),
                ),
            };
            let rate = if run.metrics.is_empty() {
                None
            } else {
                Some(run.metrics.iter().map(|m| m.images_per_sec).sum::<f64>() / run.metrics.len() as f64)
            };
            let f4 = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into());
            let _ = writeln!(
                out,
                "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
                escape(&run.name),
                escape(&run.setting()),
                last.map(|m| m.epoch).or(run.summary.as_ref().map(|s| s.epochs)).map(|e| e.to_string()).unwrap_or_else(|| "-".into()),
                f4(last_top1),
                f4(best_top1),
                best_epoch.map(|e| e.to_string()).unwrap_or_else(|| "-".into()),
                seconds.map(hours).unwrap_or_else(|| "-".into()),
                rate.map(|r| format!("{r:.0}")).unwrap_or_else(|| "-".into()),
                escape(&device)
            );
        }
        out.push_str("</table>\n");
        let with_curves: Vec<&RunReport> = self.runs.iter().filter(|r| !r.metrics.is_empty()).collect();
        if with_curves.len() >= 2 {
            out.push_str("<div class=\"plots\">");
            let overlay = |title: &str, y: &str, f: &dyn Fn(&EpochMetrics) -> f64, range| {
                let series = with_curves
                    .iter()
                    .enumerate()
                    .map(|(i, r)| self::series(&r.name, i, Style::Line, &r.metrics, |m| Some(f(m))))
                    .collect();
                epochs_chart(title, y, series, range)
            };
            plot(out, &overlay("Test top-1 accuracy", "top-1", &|m| m.test_top1, Some((0.0, 1.0))));
            plot(out, &overlay("Train top-1 accuracy", "top-1", &|m| m.train_top1, Some((0.0, 1.0))));
            plot(out, &overlay("Test loss", "loss", &|m| m.test_loss, None));
            plot(out, &overlay("Train loss", "loss", &|m| m.train_loss, None));
            out.push_str("</div>");
        }
        out.push_str("</section>\n");
    }
}

impl RunReport {
    /// A short description of what the run trained with (see [`super::setting`]).
    pub fn setting(&self) -> String {
        match &self.summary {
            Some(s) => super::setting(&s.config),
            None if self.detection.is_some() => "detection pass".into(),
            None => "-".into(),
        }
    }

    fn section(&self, out: &mut String, i: usize) {
        let _ = writeln!(
            out,
            "<section id=\"run-{i}\"><h2>{}</h2>\n<p><code>{}</code></p>",
            escape(&self.name),
            escape(&self.dir.to_string_lossy())
        );
        for n in &self.notes {
            note(out, n);
        }
        self.config(out, i);
        self.curves(out, i);
        self.id_ood(out, i);
        if let Some(d) = &self.detection {
            d.section(out, i);
        }
        out.push_str("</section>\n");
    }

    fn config(&self, out: &mut String, i: usize) {
        let _ = writeln!(out, "<h3 id=\"config-{i}\">Configuration</h3>");
        let Some(s) = &self.summary else {
            note(
                out,
                &format!("no {SUMMARY}: the configuration is not known (an unfinished run writes it at its end)"),
            );
            return;
        };
        let lines = command_lines(&s.config);
        let _ = writeln!(
            out,
            "<p>The reference's command line:</p><pre>{}</pre><p>resmooth's:</p><pre>{}</pre>",
            escape(&lines.reference),
            escape(&lines.resmooth)
        );
        for n in &lines.notes {
            note(out, n);
        }
        out.push_str("<details><summary>Every setting</summary><table><tr><th class=\"l\">setting</th><th class=\"l\">value</th></tr>");
        let mut rows =
            vec![("device".to_string(), s.device.clone()), ("parameters".to_string(), s.parameters.to_string())];
        if let Some(p) = &s.pretrained {
            rows.push(("pretrained baseline".into(), p.to_string_lossy().into_owned()));
        }
        if let serde_json::Value::Object(fields) = serde_json::to_value(&s.config).expect("a configuration serialises")
        {
            for (k, v) in fields {
                let v = match v {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Null => "-".into(),
                    v => v.to_string(),
                };
                rows.push((k, v));
            }
        }
        for (k, v) in rows {
            let _ = write!(out, "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>", escape(&k), escape(&v));
        }
        out.push_str("</table></details>\n");
    }

    fn curves(&self, out: &mut String, i: usize) {
        let _ = writeln!(out, "<h3 id=\"curves-{i}\">Training curves</h3>");
        if self.metrics.is_empty() {
            note(out, &format!("no {METRICS}: no epoch has finished"));
            return;
        }
        let m = &self.metrics;
        let mut acc = vec![
            series("train", 0, Style::Line, m, |e| Some(e.train_top1)),
            series("test", 1, Style::Line, m, |e| Some(e.test_top1)),
        ];
        if m.iter().any(|e| e.da.is_some()) {
            acc.push(series("DAOOD", 3, Style::Dashed, m, |e| e.da.map(|d| d.daood_top1)));
            acc.push(series("DAID", 2, Style::Dashed, m, |e| e.da.map(|d| d.daid_top1)));
        }
        out.push_str("<div class=\"plots\">");
        plot(out, &epochs_chart("Top-1 accuracy", "top-1", acc, Some((0.0, 1.0))));
        let loss = vec![
            series("train", 0, Style::Line, m, |e| Some(e.train_loss)),
            series("test", 1, Style::Line, m, |e| Some(e.test_loss)),
        ];
        plot(out, &epochs_chart("Loss", "loss", loss, None));
        plot(out, &epochs_chart("Learning rate", "lr", vec![series("lr", 2, Style::Line, m, |e| Some(e.lr))], None));
        self.loss_parts(out);
        out.push_str("</div>\n");
    }

    /// From the TensorBoard events: the losses of the original and augmented parts over the
    /// epochs, and the last epoch's log-losses of both populations.
    fn loss_parts(&self, out: &mut String) {
        let scalar = |tag: &str| self.scalars.get(tag).filter(|v| v.iter().any(|p| p.1 != 0.0));
        let parts =
            [("original views", tags::TRAIN_LOSS_ORIGIN, 0), ("augmented views", tags::TRAIN_LOSS_AUGMENTATION, 1)];
        let lines: Vec<Series> = parts
            .iter()
            .filter_map(|(name, tag, colour)| {
                let points = scalar(tag)?.iter().map(|&(e, v)| (e as f64, v)).collect();
                Some(Series { name: (*name).into(), points, style: Style::Line, colour: *colour })
            })
            .collect();
        if lines.len() == 2 {
            plot(out, &epochs_chart("Training loss: original vs augmented views", "loss", lines, None));
        }
        let hists = [("original views", tags::LOG_LOSS_ORIGIN, 0), ("augmented views", tags::LOG_LOSS_AUGMENTATION, 1)];
        let mut epoch = 0;
        let bars: Vec<Series> = hists
            .iter()
            .filter_map(|(name, tag, colour)| {
                let (e, h) = self.histograms.get(*tag)?;
                epoch = epoch.max(*e);
                let n = h.bucket.len();
                let width = if n > 1 { (h.max - h.min) / n as f64 } else { 1.0 };
                let points = h
                    .bucket
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (h.min + i as f64 * width, c / (h.num.max(1.0) * width)))
                    .collect();
                Some(Series {
                    name: format!("{name} ({})", h.num),
                    points,
                    style: Style::Bars { width },
                    colour: *colour,
                })
            })
            .collect();
        if !bars.is_empty() {
            let chart = Chart {
                title: format!("Log-loss of the training views, epoch {epoch}"),
                x_label: "log(loss + 1e-10)".into(),
                y_label: "density".into(),
                series: bars,
                ..Chart::default()
            };
            plot(out, &chart);
        }
    }

    fn id_ood(&self, out: &mut String, i: usize) {
        let m = &self.metrics;
        if !m.iter().any(|e| e.gmm.is_some()) {
            return;
        }
        let _ = write!(out, "<h3 id=\"id-ood-{i}\">ID vs OOD</h3>\n<p>Training top-1 on the views the GMM judges ID (originals included) and OOD, the OOD share of the augmented views, and their mean label smoothing.</p><div class=\"plots\">");
        let s = vec![
            series("train top-1 ID", 2, Style::Line, m, |e| e.gmm.and_then(|g| g.train_top1_id)),
            series("train top-1 OOD", 3, Style::Line, m, |e| e.gmm.and_then(|g| g.train_top1_ood)),
            series("OOD fraction", 4, Style::Dashed, m, |e| e.gmm.map(|g| g.ood_fraction)),
            series("mean smoothing", 7, Style::Dashed, m, |e| e.gmm.map(|g| g.mean_smooth)),
        ];
        plot(out, &epochs_chart("ID vs OOD training accuracy", "fraction", s, Some((0.0, 1.0))));
        out.push_str("</div>\n");
    }
}

impl DetectionView {
    /// The histogram of both populations, as densities over all views (so that they add up to
    /// the density the mixture models), with the weighted components and the boundary.
    fn histogram(&self) -> Chart {
        let all = self.origin.iter().chain(&self.augmentation).copied().filter(|v| v.is_finite());
        let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let total = (self.origin.len() + self.augmentation.len()).max(1) as f64;
        let bins = 60;
        let width = if hi > lo { (hi - lo) / bins as f64 } else { 1.0 };
        let bars = |values: &[f64]| {
            let mut counts = vec![0usize; bins];
            for &v in values.iter().filter(|v| v.is_finite()) {
                counts[(((v - lo) / width) as usize).min(bins - 1)] += 1;
            }
            counts
                .iter()
                .enumerate()
                .map(|(b, &c)| (lo + b as f64 * width, c as f64 / (total * width)))
                .collect::<Vec<_>>()
        };
        let mut series = vec![
            Series {
                name: format!("original views ({})", self.origin.len()),
                points: bars(&self.origin),
                style: Style::Bars { width },
                colour: 0,
            },
            Series {
                name: format!("augmented views ({})", self.augmentation.len()),
                points: bars(&self.augmentation),
                style: Style::Bars { width },
                colour: 1,
            },
        ];
        let mut markers = Vec::new();
        if let Some(g) = &self.mixture {
            let xs: Vec<f64> = (0..=200).map(|k| lo - width + (hi - lo + 2.0 * width) * k as f64 / 200.0).collect();
            for (k, name, colour) in [(g.id, "ID component", 2), (1 - g.id, "OOD component", 3)] {
                let points = xs.iter().map(|&x| (x, g.density(k, x))).collect();
                series.push(Series { name: name.into(), points, style: Style::Line, colour });
            }
            markers = g
                .boundaries
                .iter()
                .filter(|b| (lo - width..=hi + width).contains(*b))
                .map(|&b| (b, format!("p_ID = 0.5 at {b:.2}")))
                .collect();
        }
        Chart {
            title: "Log-loss of the detection pass".into(),
            x_label: "log(loss + 1e-10) under the pretrained baseline".into(),
            y_label: "density (share of all views)".into(),
            series,
            markers,
            ..Chart::default()
        }
    }

    fn section(&self, out: &mut String, i: usize) {
        let _ = writeln!(out, "<h3 id=\"detection-{i}\">Detection pass</h3>");
        let (n_ori, n_aug) = (self.origin.len(), self.augmentation.len());
        let pct =
            |a: usize, n: usize| if n == 0 { "-".to_string() } else { format!("{:.2}%", 100.0 * a as f64 / n as f64) };
        if n_ori + n_aug > 0 {
            let _ = writeln!(
                out,
                "<p>OOD (p_ID &lt; 0.5): {} of {} views; {} of the {n_ori} original views, {} of the {n_aug} augmented views.{}</p>",
                pct(self.ood[0] + self.ood[1], n_ori + n_aug),
                n_ori + n_aug,
                pct(self.ood[0], n_ori),
                pct(self.ood[1], n_aug),
                self.magnitude.map(|(m, n)| format!(" RandAugment magnitude M = {m}, N = {n} ops per view.")).unwrap_or_default()
            );
        } else {
            note(out, &format!("no {LOSSES}: the scored views are not at hand, only the mixture"));
        }
        if let Some(d) = &self.diagnosis {
            if let Some(w) = d.warning() {
                let _ = write!(
                    out,
                    r#"<p class="note warn">{}</p>"#,
                    escape(&format!("Warning: {w}")).replace('\n', "<br>")
                );
            }
            let _ = writeln!(out, "<p>{}.</p>", escape(&d.floor_line()));
        }
        if let Some(g) = &self.mixture {
            out.push_str("<table><tr><th class=\"l\">component</th><th>weight</th><th>mean</th><th>variance</th></tr>");
            for (k, name) in [(g.id, "ID"), (1 - g.id, "OOD")] {
                let _ = write!(
                    out,
                    "<tr><td class=\"l\">{name}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td></tr>",
                    g.weights[k], g.means[k], g.variances[k]
                );
            }
            let b: Vec<String> = g.boundaries.iter().map(|b| format!("{b:.3}")).collect();
            let _ = writeln!(
                out,
                "</table><p>{} after {} EM steps; p_ID = 0.5 at log-loss {}.</p>",
                if g.converged { "converged" } else { "not converged" },
                g.iterations,
                if b.is_empty() { "nowhere".into() } else { b.join(" and ") }
            );
        } else {
            note(out, &format!("no {GMM}: the fitted mixture is not at hand"));
        }
        if n_ori + n_aug > 0 {
            out.push_str("<div class=\"plots\">");
            plot(out, &self.histogram());
            out.push_str("</div>\n");
        }
        if !self.ops.is_empty() {
            out.push_str("<h3>OOD fraction per op</h3><p>Augmented views containing each op (value magnitude), most OOD first.</p><table><tr><th class=\"l\">op</th><th>views</th><th>OOD</th><th>OOD %</th></tr>");
            for r in &self.ops {
                let _ = write!(
                    out,
                    "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&r.op),
                    r.views,
                    r.ood,
                    pct(r.ood, r.views)
                );
            }
            out.push_str("</table>\n");
        }
        self.views(out, i);
    }

    fn views(&self, out: &mut String, i: usize) {
        if self.most_ood.is_empty() && self.most_id.is_empty() {
            return;
        }
        let _ = writeln!(out, "<h3 id=\"views-{i}\">Most OOD and most ID augmented views</h3>");
        for (title, tiles) in [("Most OOD (lowest p_ID)", &self.most_ood), ("Most ID (highest p_ID)", &self.most_id)] {
            let _ = write!(out, "<h4>{title}</h4><div class=\"grid\">");
            for t in tiles {
                let ops = if t.ops.is_empty() { "(no op)".to_string() } else { t.ops.clone() };
                let _ = write!(
                    out,
                    "<div class=\"tile\"><img src=\"{}\" alt=\"sample {}\"><b>{}</b> #{}<br>p_ID {:.3}, log-loss {:.2}<br>{}</div>",
                    png_uri(&t.png),
                    t.index,
                    escape(&t.class),
                    t.index,
                    t.p_id,
                    t.log_loss,
                    escape(&ops)
                );
            }
            out.push_str("</div>\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(epoch: usize) -> EpochMetrics {
        EpochMetrics {
            epoch,
            lr: 0.1,
            train_loss: 2.0 / epoch as f64,
            train_top1: 0.3 * epoch as f64,
            train_top5: 0.9,
            test_loss: 2.5 / epoch as f64,
            test_top1: 0.25 * epoch as f64,
            test_top5: 0.9,
            seconds: 65.0,
            images_per_sec: 1000.0,
            train_seconds: 60.0,
            data_wait_seconds: 1.0,
            eval_seconds: 5.0,
            step_mode: None,
            gmm: None,
            da: None,
        }
    }

    #[test]
    fn an_unfinished_run_and_a_detection_pass_without_views_say_what_is_missing() {
        let mixture = Mixture {
            weights: [0.6, 0.4],
            means: [-5.0, 1.0],
            variances: [1.0, 0.5],
            id: 0,
            converged: true,
            iterations: 7,
            boundaries: vec![-1.25],
        };
        let detection = DetectionView {
            mixture: Some(mixture),
            origin: vec![-6.0, -5.5, -4.0],
            augmentation: vec![-4.5, 0.5, 1.5],
            ood: [0, 2],
            ..DetectionView::default()
        };
        let run = RunReport {
            name: "c10/<b>rs</b>".into(),
            dir: "logs/c10/rs".into(),
            metrics: vec![metrics(1), metrics(2)],
            detection: Some(detection),
            notes: vec!["the training images are not at hand".into()],
            ..RunReport::default()
        };
        let html = Report { title: "t".into(), generated: "now".into(), runs: vec![run] }.html();
        assert!(html.contains("c10/&lt;b&gt;rs&lt;/b&gt;") && !html.contains("<b>rs</b>"));
        for needle in [
            "no summary.json",
            "the training images are not at hand",
            "id=\"curves-0\"",
            "Log-loss of the detection pass",
            "p_ID = 0.5 at -1.25",
            "66.67% of the 3 augmented views",
            "converged after 7 EM steps",
            "<td>0.6000</td><td>-5.0000</td>",
        ] {
            assert!(html.contains(needle), "{needle} missing");
        }
        // one run: no overlaid comparison plots, no grids, no ID/OOD plot without GMM metrics
        assert!(
            !html.contains("Test top-1 accuracy")
                && !html.contains("id=\"views-0\"")
                && !html.contains("id=\"id-ood-0\"")
        );
        assert_eq!(html.matches("<svg").count(), 4, "accuracy, loss, lr, the histogram");
        assert!(
            html.contains("<td>2</td><td>0.5000</td><td>0.5000</td><td>2</td><td>2m10s</td><td>1000</td>"),
            "the comparison row"
        );
    }
}
