//! Plots for the HTML report as inline SVG: curves over epochs, histograms with curves and
//! markers, axes with round ticks and a legend. No script and no font file: the text uses the
//! page's sans-serif.

use std::fmt::Write;

/// matplotlib's `tab10` colours, by series index.
pub const PALETTE: [&str; 10] =
    ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Style {
    /// A polyline through the points, with a dot on each when there are few.
    Line,
    /// A dashed polyline.
    Dashed,
    /// A filled translucent histogram: each point is the left edge of a bin of this width and
    /// its height.
    Bars { width: f64 },
}

/// One named series of (x, y) points; points with a non-finite coordinate are skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub style: Style,
    /// Index into [`PALETTE`].
    pub colour: usize,
}

/// A chart: axes, series, vertical markers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Vertical lines at x, labelled.
    pub markers: Vec<(f64, String)>,
    /// The y range to show; `None`: from the data (from 0 when all values are positive).
    pub y_range: Option<(f64, f64)>,
    /// Whether the x ticks are whole numbers (epochs).
    pub integer_x: bool,
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 360.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 52.0;
const BOTTOM: f64 = 44.0;

/// Text for an SVG or HTML text node or attribute value.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Round tick positions covering `lo..=hi`, about `target` of them, and the decimals they need.
pub fn ticks(lo: f64, hi: f64, target: usize) -> (Vec<f64>, usize) {
    let raw = (hi - lo) / target.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| *s >= raw).unwrap_or(10.0 * magnitude);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    let decimals = (-(step.log10().floor()) as i64 + i64::from((step / magnitude - 2.5).abs() < 1e-9)).max(0) as usize;
    ((first..=last).map(|k| k as f64 * step).collect(), decimals)
}

/// A tick label: `decimals` places, or a short exponent form for very large or small steps.
fn tick_label(t: f64, decimals: usize, lo: f64, hi: f64) -> String {
    let big = lo.abs().max(hi.abs());
    if t != 0.0 && (big >= 1e5 || decimals > 5) {
        let text = format!("{t:.2e}");
        // 2.50e6 -> 2.5e6, 3.00e6 -> 3e6
        let (mantissa, exponent) = text.split_once('e').expect("an exponent form");
        let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
        format!("{mantissa}e{exponent}")
    } else {
        format!("{t:.decimals$}")
    }
}

/// `lo..hi` widened when empty or degenerate.
fn padded(lo: f64, hi: f64) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite()) {
        (0.0, 1.0)
    } else if hi - lo <= f64::EPSILON * lo.abs().max(1.0) {
        let pad = (lo.abs() * 0.1).max(0.5);
        (lo - pad, hi + pad)
    } else {
        (lo, hi)
    }
}

impl Chart {
    /// The points of every series that are finite.
    fn finite(&self) -> impl Iterator<Item = (&Series, (f64, f64))> {
        self.series
            .iter()
            .flat_map(|s| s.points.iter().map(move |&p| (s, p)))
            .filter(|(_, (x, y))| x.is_finite() && y.is_finite())
    }

    /// Whether the chart has any point to draw.
    pub fn is_empty(&self) -> bool {
        self.finite().next().is_none()
    }

    fn x_range(&self) -> (f64, f64) {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for (s, (x, _)) in self.finite() {
            let right = match s.style {
                Style::Bars { width } => x + width,
                _ => x,
            };
            (lo, hi) = (lo.min(x), hi.max(right));
        }
        for &(x, _) in &self.markers {
            if x.is_finite() {
                (lo, hi) = (lo.min(x), hi.max(x));
            }
        }
        padded(lo, hi)
    }

    fn y_range(&self) -> (f64, f64) {
        if let Some(r) = self.y_range {
            return r;
        }
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for (s, (_, y)) in self.finite() {
            (lo, hi) = (lo.min(y), hi.max(y));
            if matches!(s.style, Style::Bars { .. }) {
                lo = lo.min(0.0);
            }
        }
        if lo > 0.0 && hi > 0.0 {
            lo = 0.0;
        }
        let (lo, hi) = padded(lo, hi);
        (lo, hi + (hi - lo) * 0.04)
    }

    /// The chart as an `<svg>` element.
    pub fn svg(&self) -> String {
        let mut out = String::new();
        let (x0, x1) = self.x_range();
        let (y0, y1) = self.y_range();
        let (pw, ph) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
        let sx = |x: f64| LEFT + (x - x0) / (x1 - x0) * pw;
        let sy = |y: f64| TOP + ph - (y.clamp(y0, y1) - y0) / (y1 - y0) * ph;
        let title = escape(&self.title);
        let _ = write!(
            out,
            r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{title}"><title>{title}</title>"#
        );
        let _ = write!(out, r#"<text class="title" x="{LEFT}" y="18">{title}</text>"#);
        // grid and tick labels
        let (xt, xd) = ticks(x0, x1, 8);
        for t in xt.iter().filter(|t| !self.integer_x || t.fract() == 0.0) {
            let x = sx(*t);
            let _ = write!(
                out,
                r#"<line class="grid" x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}"/><text class="tick" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                TOP + ph,
                TOP + ph + 16.0,
                tick_label(*t, if self.integer_x { 0 } else { xd }, x0, x1)
            );
        }
        let (yt, yd) = ticks(y0, y1, 5);
        for t in &yt {
            let y = sy(*t);
            let _ = write!(
                out,
                r#"<line class="grid" x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                LEFT + pw,
                LEFT - 6.0,
                y + 4.0,
                tick_label(*t, yd, y0, y1)
            );
        }
        let _ = write!(
            out,
            r#"<rect class="frame" x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}"/><text class="label" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text class="label" transform="translate(14 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            LEFT + pw / 2.0,
            HEIGHT - 6.0,
            escape(&self.x_label),
            TOP + ph / 2.0,
            escape(&self.y_label)
        );
        for s in &self.series {
            self.draw_series(&mut out, s, &sx, &sy);
        }
        for (k, (x, label)) in self.markers.iter().filter(|m| m.0.is_finite()).enumerate() {
            let x = sx(*x);
            let _ = write!(
                out,
                r#"<line class="marker" x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}"/><text class="marker-label" x="{:.1}" y="{:.1}">{}</text>"#,
                TOP + ph,
                x + 4.0,
                TOP + 14.0 * (k + 1) as f64,
                escape(label)
            );
        }
        self.legend(&mut out);
        if self.is_empty() {
            let _ = write!(
                out,
                r#"<text class="label" x="{:.1}" y="{:.1}" text-anchor="middle">no data</text>"#,
                LEFT + pw / 2.0,
                TOP + ph / 2.0
            );
        }
        out.push_str("</svg>");
        out
    }

    fn draw_series(&self, out: &mut String, s: &Series, sx: &dyn Fn(f64) -> f64, sy: &dyn Fn(f64) -> f64) {
        let colour = PALETTE[s.colour % PALETTE.len()];
        let points: Vec<(f64, f64)> =
            s.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
        if points.is_empty() {
            return;
        }
        match s.style {
            Style::Bars { width } => {
                // one closed outline over the bins: up, across and down each bin from the baseline
                let base = sy(0.0);
                let mut d = String::new();
                for &(x, y) in &points {
                    let (l, r, top) = (sx(x), sx(x + width), sy(y));
                    let _ = write!(d, "M{l:.1},{base:.1}V{top:.1}H{r:.1}V{base:.1}Z");
                }
                let _ = write!(out, r#"<path class="bars" d="{d}" fill="{colour}" stroke="{colour}"/>"#);
            }
            Style::Line | Style::Dashed => {
                let path: Vec<String> = points.iter().map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y))).collect();
                let dash = if s.style == Style::Dashed { r#" stroke-dasharray="6 4""# } else { "" };
                let _ = write!(out, r#"<polyline class="line" points="{}" stroke="{colour}"{dash}/>"#, path.join(" "));
                if points.len() <= 40 {
                    for &(x, y) in &points {
                        let _ = write!(out, r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{colour}"/>"#, sx(x), sy(y));
                    }
                }
            }
        }
    }

    fn legend(&self, out: &mut String) {
        let mut x = LEFT;
        for s in self.series.iter().filter(|s| !s.name.is_empty()) {
            let colour = PALETTE[s.colour % PALETTE.len()];
            let _ = write!(
                out,
                r#"<rect x="{x:.1}" y="30" width="14" height="8" fill="{colour}"/><text class="legend" x="{:.1}" y="38">{}</text>"#,
                x + 18.0,
                escape(&s.name)
            );
            // the page's sans-serif at 11px: about 6.2px per character
            x += 18.0 + s.name.chars().count() as f64 * 6.2 + 14.0;
        }
    }
}

/// The style sheet the charts need, for the page's `<style>`.
pub const CSS: &str = "svg.chart{width:100%;max-width:640px;height:auto;background:#fff}\
svg.chart text{font-family:sans-serif;fill:#333}\
svg.chart .title{font-size:14px;font-weight:bold}\
svg.chart .tick,svg.chart .legend,svg.chart .marker-label{font-size:11px}\
svg.chart .label{font-size:12px}\
svg.chart .grid{stroke:#e6e6e6;stroke-width:1}\
svg.chart .frame{fill:none;stroke:#999;stroke-width:1}\
svg.chart .line{fill:none;stroke-width:2}\
svg.chart .bars{fill-opacity:.35;stroke-width:.5;stroke-opacity:.6}\
svg.chart .marker{stroke:#333;stroke-width:1.5;stroke-dasharray:3 3}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 1.0, 5), (vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0], 1));
        let (t, d) = ticks(1.0, 200.0, 8);
        assert_eq!((t[0], t[t.len() - 1], d), (25.0, 200.0, 0));
        let (t, d) = ticks(-14.0, 4.0, 8);
        assert_eq!((t[0], d), (-12.5, 1), "steps of 2.5 need one decimal: {t:?}");
        assert_eq!(ticks(0.0, 0.25, 10).1, 3, "steps of 0.025 need three decimals");
        assert_eq!(tick_label(2.5e6, 0, 0.0, 3e6), "2.5e6");
        assert_eq!(tick_label(3e6, 0, 0.0, 3e6), "3e6");
        assert_eq!(tick_label(0.0, 0, 0.0, 3e6), "0");
        assert_eq!(tick_label(0.15, 2, 0.0, 0.2), "0.15");
        assert_eq!(tick_label(2e-7, 7, 0.0, 1e-6), "2e-7");
    }

    #[test]
    fn a_chart_draws_its_series_markers_and_legend_and_escapes_text() {
        let chart = Chart {
            title: "loss <train & test>".into(),
            x_label: "epoch".into(),
            y_label: "loss".into(),
            series: vec![
                Series {
                    name: "train".into(),
                    points: vec![(1.0, 2.0), (2.0, 1.0), (3.0, f64::NAN)],
                    style: Style::Line,
                    colour: 0,
                },
                Series {
                    name: "hist".into(),
                    points: vec![(0.0, 0.5), (0.5, 0.25)],
                    style: Style::Bars { width: 0.5 },
                    colour: 1,
                },
            ],
            markers: vec![(1.5, "boundary".into())],
            integer_x: true,
            ..Chart::default()
        };
        let svg = chart.svg();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("loss &lt;train &amp; test&gt;") && !svg.contains("<train"));
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_eq!(svg.matches("<circle").count(), 2, "the NaN point is skipped");
        assert!(svg.contains(r#"class="bars""#) && svg.contains(">boundary<") && svg.contains(">hist<"));
        assert!(!svg.contains("no data") && !svg.contains("NaN"));
        let empty = Chart { title: "t".into(), ..Chart::default() };
        assert!(empty.is_empty() && empty.svg().contains("no data"));
    }
}
