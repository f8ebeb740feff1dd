//! The reference's loss histogram figure as a raster image: the density of the log-losses of the
//! original and of the augmented views over (-14, 4), one translucent filled histogram each
//! (matplotlib's first two colours), as `train.py` draws it for TensorBoard every epoch.

use super::epoch::RgbImage;
use super::font;

/// The range of log-losses the reference's figure shows.
pub const RANGE: (f64, f64) = (-14.0, 4.0);
const BINS: usize = 360;
/// The figure's size in pixels (matplotlib's 10 x 6.2 inches at 80 dpi).
const WIDTH: usize = 800;
const HEIGHT: usize = 496;
/// Margins around the plot area.
const LEFT: usize = 24;
const RIGHT: usize = 16;
const TOP: usize = 40;
const BOTTOM: usize = 36;
/// matplotlib's C0 and C1.
const COLOURS: [[u8; 3]; 2] = [[31, 119, 180], [255, 127, 14]];
const ALPHA: f64 = 0.3;

/// Densities (integrating to 1 over [`RANGE`], as numpy's `density=True` with that range) of
/// `values` in [`BINS`] equal bins; values outside the range are left out.
fn densities(values: &[f32]) -> Vec<f64> {
    let (lo, hi) = RANGE;
    let width = (hi - lo) / BINS as f64;
    let mut counts = vec![0usize; BINS];
    for &v in values {
        let v = v as f64;
        if (lo..=hi).contains(&v) {
            counts[(((v - lo) / width) as usize).min(BINS - 1)] += 1;
        }
    }
    let total: usize = counts.iter().sum();
    counts.iter().map(|&c| if total == 0 { 0.0 } else { c as f64 / (total as f64 * width) }).collect()
}

/// The figure for the log-losses of the original views (`origin`) and augmented views
/// (`augmentation`) of one epoch; an empty population draws nothing.
pub fn loss_histogram(origin: &[f32], augmentation: &[f32]) -> RgbImage {
    let mut px = vec![255u8; WIDTH * HEIGHT * 3];
    let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let populations = [densities(origin), densities(augmentation)];
    let top = populations.iter().flatten().copied().fold(0.0f64, f64::max);
    for (density, colour) in populations.iter().zip(COLOURS) {
        if top <= 0.0 {
            break;
        }
        for x in 0..plot_w {
            let d = density[x * BINS / plot_w];
            let bar = ((d / top) * plot_h as f64).round() as usize;
            for y in plot_h - bar.min(plot_h)..plot_h {
                let at = ((TOP + y) * WIDTH + LEFT + x) * 3;
                for c in 0..3 {
                    px[at + c] = (px[at + c] as f64 * (1.0 - ALPHA) + colour[c] as f64 * ALPHA).round() as u8;
                }
            }
        }
    }
    let grey = [90, 90, 90];
    // the x axis with a tick and a label every 2
    let axis_y = TOP + plot_h;
    for x in LEFT..LEFT + plot_w {
        px[(axis_y * WIDTH + x) * 3..][..3].copy_from_slice(&grey);
    }
    let scale = 2;
    for tick in (RANGE.0 as i32..=RANGE.1 as i32).step_by(2) {
        let x = LEFT + ((tick as f64 - RANGE.0) / (RANGE.1 - RANGE.0) * (plot_w - 1) as f64).round() as usize;
        for y in axis_y..axis_y + 5 {
            px[(y * WIDTH + x) * 3..][..3].copy_from_slice(&grey);
        }
        let text = tick.to_string();
        let half = text.len() * font::advance(scale) / 2;
        font::draw_text(&mut px, WIDTH, x.saturating_sub(half), axis_y + 9, &text, scale, grey);
    }
    let title = "log(loss) density";
    font::draw_text(&mut px, WIDTH, LEFT, 8, title, scale, [40, 40, 40]);
    let mut x = LEFT + (title.len() + 3) * font::advance(scale);
    for (name, (values, colour)) in ["original", "augmented"].iter().zip([origin, augmentation].iter().zip(COLOURS)) {
        for y in 8..18 {
            for dx in 0..14 {
                px[(y * WIDTH + x + dx) * 3..][..3].copy_from_slice(&colour);
            }
        }
        let label = format!("{name} ({})", values.len());
        font::draw_text(&mut px, WIDTH, x + 20, 8, &label, scale, [40, 40, 40]);
        x += 20 + (label.len() + 3) * font::advance(scale);
    }
    RgbImage { height: HEIGHT, width: WIDTH, pixels: px }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn densities_integrate_to_one_inside_the_range() {
        let values = [-13.9f32, -2.0, -2.0, 0.5, 3.99, 7.0, -20.0];
        let d = densities(&values);
        let width = (RANGE.1 - RANGE.0) / BINS as f64;
        assert!((d.iter().sum::<f64>() * width - 1.0).abs() < 1e-12);
        assert_eq!(d.iter().filter(|&&v| v > 0.0).count(), 4, "two values outside the range are left out");
        assert!(densities(&[]).iter().all(|&v| v == 0.0));
    }

    #[test]
    fn the_populations_are_drawn_in_their_colours_where_their_losses_are() {
        let origin: Vec<f32> = (0..500).map(|i| -10.0 + (i % 10) as f32 * 0.1).collect();
        let augmentation: Vec<f32> = (0..500).map(|i| 1.0 + (i % 10) as f32 * 0.1).collect();
        let img = loss_histogram(&origin, &augmentation);
        assert_eq!(img.pixels.len(), img.width * img.height * 3);
        let plot_w = WIDTH - LEFT - RIGHT;
        let column = |v: f64| LEFT + ((v - RANGE.0) / (RANGE.1 - RANGE.0) * plot_w as f64) as usize + 1;
        let at = |x: usize| {
            let y = HEIGHT - BOTTOM - 2;
            img.pixels[(y * WIDTH + x) * 3..][..3].to_vec()
        };
        // C0 (blue) at 30% over white is bluish, C1 (orange) reddish, and empty places stay white
        let blue = at(column(-9.5));
        assert!(blue[2] > blue[0], "{blue:?}");
        let orange = at(column(1.5));
        assert!(orange[0] > orange[2], "{orange:?}");
        assert_eq!(at(column(-5.0)), vec![255, 255, 255]);
    }
}
