//! The reference's other augmentations on uint8 RGB (HWC) images: Pillow's `GaussianBlur`
//! (three extended box blurs per axis, in its 8.24 fixed point), scikit-image's Sobel edge
//! magnitude over the three axes of the HxWx3 array (as `filters.sobel(np.array(img))` computes
//! it, in f64 with scipy's summation order), and the vertical flip.

/// Pillow's passes of box blur per axis in `GaussianBlur`.
const PASSES: i32 = 3;

/// Pillow's `_gaussian_blur_radius`: the extended box radius whose `passes` box blurs have the
/// variance of a Gaussian of standard deviation `sigma` (its float and double steps kept).
fn box_radius(sigma: f32, passes: i32) -> f32 {
    let sigma2 = sigma * sigma / passes as f32;
    let big_l = (12.0 * sigma2 as f64 + 1.0).sqrt() as f32;
    let l = ((big_l as f64 - 1.0) / 2.0).floor() as f32;
    let mut a = (2.0 * l + 1.0) * (l * (l + 1.0) - 3.0 * sigma2);
    a /= 6.0 * (sigma2 - (l + 1.0) * (l + 1.0));
    l + a
}

/// One line of Pillow's `ImagingLineBoxBlur`: `input` and `out` hold `n` values `stride` apart.
struct BoxLine {
    radius: usize,
    edge_a: usize,
    edge_b: usize,
    ww: u32,
    fw: u32,
}

impl BoxLine {
    fn new(float_radius: f32, n: usize) -> BoxLine {
        let radius = float_radius as usize;
        let ww = ((1u32 << 24) as f32 / (float_radius * 2.0 + 1.0)) as u32;
        let fw = (1u32 << 24).wrapping_sub((radius as u32 * 2 + 1).wrapping_mul(ww)) / 2;
        BoxLine { radius, edge_a: (radius + 1).min(n), edge_b: n.saturating_sub(radius + 1), ww, fw }
    }

    fn blur(&self, line: &[u8], out: &mut [u8]) {
        let (r, ww, fw) = (self.radius, self.ww, self.fw);
        let last = line.len() - 1;
        let px = |i: usize| line[i] as u32;
        // the running sum of the box around pixel -1: the first pixel repeated beyond the edge
        let mut acc = px(0) * (r as u32 + 1);
        for x in 0..self.edge_a.saturating_sub(1) {
            acc = acc.wrapping_add(px(x));
        }
        acc = acc.wrapping_add(px(last).wrapping_mul((r + 1 - self.edge_a) as u32));
        let mut step = |x: usize, sub: usize, add: usize, far: usize| {
            acc = acc.wrapping_add(px(add)).wrapping_sub(px(sub));
            let bulk = acc.wrapping_mul(ww).wrapping_add((px(sub) + px(far)).wrapping_mul(fw));
            out[x] = (bulk.wrapping_add(1 << 23) >> 24) as u8;
        };
        let (a, b) = (self.edge_a, self.edge_b);
        if a <= b {
            for x in 0..a {
                step(x, 0, x + r, x + r + 1);
            }
            for x in a..b {
                step(x, x - r - 1, x + r, x + r + 1);
            }
            for x in b..=last {
                step(x, x - r - 1, last, last);
            }
        } else {
            for x in 0..b {
                step(x, 0, x + r, x + r + 1);
            }
            for x in b..a {
                step(x, 0, last, last);
            }
            for x in a..=last {
                step(x, x - r - 1, last, last);
            }
        }
    }
}

/// `PASSES` box blurs of radius `radius` along every line of `img` (HWC `h` x `w`): rows when
/// `rows`, else columns.
fn box_blur_lines(img: &mut [u8], h: usize, w: usize, radius: f32, rows: bool) {
    let (lines, n) = if rows { (h, w) } else { (w, h) };
    let at = |line: usize, c: usize, i: usize| if rows { (line * w + i) * 3 + c } else { (i * w + line) * 3 + c };
    let blur = BoxLine::new(radius, n);
    let (mut line, mut out) = (vec![0u8; n], vec![0u8; n]);
    for l in 0..lines {
        for c in 0..3 {
            for (i, v) in line.iter_mut().enumerate() {
                *v = img[at(l, c, i)];
            }
            for _ in 0..PASSES {
                blur.blur(&line, &mut out);
                std::mem::swap(&mut line, &mut out);
            }
            for (i, v) in line.iter().enumerate() {
                img[at(l, c, i)] = *v;
            }
        }
    }
}

/// `img.filter(ImageFilter.GaussianBlur(radius=sigma))`: Pillow's three extended box blurs along
/// the rows, then three along the columns.
pub fn gaussian_blur(src: &[u8], h: usize, w: usize, sigma: f64, out: &mut [u8]) {
    let n = h * w * 3;
    out[..n].copy_from_slice(&src[..n]);
    // Python passes the radius to C as a float
    let sigma = sigma as f32;
    if sigma == 0.0 {
        return;
    }
    let radius = box_radius(sigma, PASSES);
    if radius != 0.0 {
        box_blur_lines(&mut out[..n], h, w, radius, true);
        box_blur_lines(&mut out[..n], h, w, radius, false);
    }
}

/// scipy's `reflect` boundary (half-sample symmetric): index `i` of an axis of length `n`.
fn reflect(i: isize, n: usize) -> usize {
    if i < 0 {
        0
    } else if i as usize >= n {
        n - 1
    } else {
        i as usize
    }
}

/// `np.uint8(skimage.filters.sobel(np.array(img)) * 255)` as an RGB image: the Sobel magnitude
/// over the three axes of the HxWx3 array (height, width and channel), on `img / 255` in f64,
/// `sqrt(sum of the squared axis derivatives) / sqrt(3)`, truncated.
pub fn sobel(src: &[u8], h: usize, w: usize, out: &mut [u8]) {
    let dims = [h, w, 3];
    let x: Vec<f64> = src[..h * w * 3].iter().map(|&v| v as f64 * (1.0 / 255.0)).collect();
    let edge = [1.0, 0.0, -1.0];
    let smooth = [0.25, 0.5, 0.25];
    // scipy's convolve correlates with the flipped kernel, summing its non-zero taps in C order
    let kernels: Vec<Vec<([isize; 3], f64)>> = (0..3)
        .map(|axis| {
            let mut taps = Vec::new();
            for i in 0..3 {
                for j in 0..3 {
                    for k in 0..3 {
                        let flipped = [2 - i, 2 - j, 2 - k];
                        let weight = (0..3)
                            .map(|d| if d == axis { edge[flipped[d]] } else { smooth[flipped[d]] })
                            .fold(1.0, |acc, v| acc * v);
                        if weight != 0.0 {
                            taps.push(([i as isize - 1, j as isize - 1, k as isize - 1], weight));
                        }
                    }
                }
            }
            taps
        })
        .collect();
    for y in 0..h {
        for xx in 0..w {
            for c in 0..3 {
                let mut sum = 0.0f64;
                for taps in &kernels {
                    let mut d = 0.0f64;
                    for &([dy, dx, dc], weight) in taps {
                        let (sy, sx, sc) = (
                            reflect(y as isize + dy, dims[0]),
                            reflect(xx as isize + dx, dims[1]),
                            reflect(c as isize + dc, dims[2]),
                        );
                        d += weight * x[(sy * w + sx) * 3 + sc];
                    }
                    sum += d * d;
                }
                let magnitude = sum.sqrt() / 3f64.sqrt();
                out[(y * w + xx) * 3 + c] = (magnitude * 255.0) as u8;
            }
        }
    }
}

/// Flips `img` (HWC `h` x `w`) upside down in place: torchvision's `RandomVerticalFlip(p=1.)`.
pub fn flip_vertical(img: &mut [u8], h: usize, w: usize) {
    let row = w * 3;
    for y in 0..h / 2 {
        let (top, bottom) = img.split_at_mut((h - 1 - y) * row);
        top[y * row..(y + 1) * row].swap_with_slice(&mut bottom[..row]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_images_stay_flat_under_blur_and_have_no_edges() {
        let (h, w) = (7, 5);
        let src = vec![200u8; h * w * 3];
        let mut out = vec![0u8; src.len()];
        for sigma in [0.6, 1.0, 2.0, 3.5] {
            gaussian_blur(&src, h, w, sigma, &mut out);
            assert_eq!(out, src, "{sigma}");
        }
        let grey: Vec<u8> = (0..h * w).flat_map(|_| [90, 90, 90]).collect();
        sobel(&grey, h, w, &mut out);
        assert!(out.iter().all(|&v| v == 0));
    }

    #[test]
    fn blur_spreads_a_point_symmetrically_and_keeps_the_mass() {
        let (h, w) = (15, 15);
        let mut src = vec![0u8; h * w * 3];
        src[(7 * w + 7) * 3] = 255;
        let mut out = vec![0u8; src.len()];
        gaussian_blur(&src, h, w, 1.0, &mut out);
        let at = |y: usize, x: usize| out[(y * w + x) * 3];
        assert!(at(7, 7) < 255 && at(7, 6) > 0 && at(6, 7) == at(7, 6) && at(7, 8) == at(7, 6));
        let mass: u32 = out.iter().step_by(3).map(|&v| v as u32).sum();
        assert!(mass.abs_diff(255) < 20, "{mass}");
        // the radius grows with sigma
        assert!(box_radius(2.0, 3) > box_radius(0.6, 3));
    }

    #[test]
    fn sobel_sees_a_vertical_step_on_both_sides() {
        let (h, w) = (4, 6);
        let src: Vec<u8> = (0..h * w).flat_map(|p| if p % w < 3 { [0; 3] } else { [255; 3] }).collect();
        let mut out = vec![0u8; src.len()];
        sobel(&src, h, w, &mut out);
        for y in 0..h {
            let row: Vec<u8> = (0..w).map(|x| out[(y * w + x) * 3]).collect();
            // d/dx = 1 at x = 2, 3 (kernel 1 0 -1), 0 elsewhere: sqrt(1 / 3) * 255 = 147.2
            assert_eq!(row, vec![0, 0, 147, 147, 0, 0]);
        }
    }

    #[test]
    fn vertical_flip_reverses_rows() {
        let (h, w) = (3, 2);
        let mut img: Vec<u8> = (0..h * w * 3).map(|i| i as u8).collect();
        flip_vertical(&mut img, h, w);
        assert_eq!(&img[..6], &[12, 13, 14, 15, 16, 17]);
        assert_eq!(&img[6..12], &[6, 7, 8, 9, 10, 11]);
        flip_vertical(&mut img, h, w);
        assert_eq!(img, (0..18).collect::<Vec<u8>>());
    }
}
