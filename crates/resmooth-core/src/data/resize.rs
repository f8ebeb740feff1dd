//! torchvision's `Resize(S)` then `CenterCrop(S)` on a PIL image, pixel for pixel: the shorter side
//! to `S` (the longer to `int(S * long / short)`), Pillow's antialiased BILINEAR resampling
//! (`Image.resize`, torchvision's default interpolation), then the centre `S` x `S` square with
//! torchvision's `round()` of the offsets.

/// Bits of Pillow's fixed-point filter coefficients (`PRECISION_BITS` in its Resample.c).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's triangle filter of support 1.
fn bilinear(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// The source range and fixed-point weights of every output position of one axis, as Pillow's
/// `precompute_coeffs` and `normalize_coeffs_8bpc` compute them for a box `[0, in_size)`.
struct Coeffs {
    /// Per output position: first source index and number of taps.
    bounds: Vec<(usize, usize)>,
    /// `ksize` weights per output position.
    weights: Vec<i32>,
    ksize: usize,
}

impl Coeffs {
    fn new(in_size: usize, out_size: usize) -> Coeffs {
        let scale = in_size as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = filterscale; // the bilinear filter's support is 1
        let ksize = support.ceil() as usize * 2 + 1;
        let mut bounds = Vec::with_capacity(out_size);
        let mut weights = vec![0i32; out_size * ksize];
        let mut k = vec![0f64; ksize];
        for xx in 0..out_size {
            let center = (xx as f64 + 0.5) * scale;
            let ss = 1.0 / filterscale;
            // C's (int) truncates toward zero
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize - xmin;
            let mut ww = 0.0;
            for (x, kx) in k.iter_mut().enumerate().take(xmax) {
                let w = bilinear((x as f64 + xmin as f64 - center + 0.5) * ss);
                *kx = w;
                ww += w;
            }
            for (x, kx) in k.iter().enumerate().take(xmax) {
                let w = if ww != 0.0 { kx / ww } else { *kx };
                let scaled = w * (1u32 << PRECISION_BITS) as f64;
                weights[xx * ksize + x] = if w < 0.0 { (-0.5 + scaled) as i32 } else { (0.5 + scaled) as i32 };
            }
            bounds.push((xmin, xmax));
        }
        Coeffs { bounds, weights, ksize }
    }

    /// The weighted sum of `taps` source values, rounded and clipped to 0..=255 as Pillow's `clip8`.
    fn apply(&self, out: usize, tap: impl Fn(usize) -> u8) -> u8 {
        let (start, n) = self.bounds[out];
        let k = &self.weights[out * self.ksize..];
        let mut ss: i32 = 1 << (PRECISION_BITS - 1);
        for (x, w) in k.iter().take(n).enumerate() {
            ss = ss.wrapping_add(tap(start + x) as i32 * w);
        }
        (ss >> PRECISION_BITS).clamp(0, 255) as u8
    }
}

/// Pillow's `Image.resize((out_w, out_h), BILINEAR)` of an RGB HWC image: a horizontal pass, then
/// a vertical one, each skipped when its size does not change.
pub fn resize_bilinear(src: &[u8], h: usize, w: usize, out_h: usize, out_w: usize) -> Vec<u8> {
    let mut img = src[..h * w * 3].to_vec();
    let mut cur_w = w;
    if out_w != w {
        let c = Coeffs::new(w, out_w);
        let mut next = vec![0u8; h * out_w * 3];
        for y in 0..h {
            let row = &img[y * w * 3..(y + 1) * w * 3];
            for xx in 0..out_w {
                for ch in 0..3 {
                    next[(y * out_w + xx) * 3 + ch] = c.apply(xx, |x| row[x * 3 + ch]);
                }
            }
        }
        img = next;
        cur_w = out_w;
    }
    if out_h != h {
        let c = Coeffs::new(h, out_h);
        let mut next = vec![0u8; out_h * cur_w * 3];
        for yy in 0..out_h {
            for x in 0..cur_w {
                for ch in 0..3 {
                    next[(yy * cur_w + x) * 3 + ch] = c.apply(yy, |y| img[(y * cur_w + x) * 3 + ch]);
                }
            }
        }
        img = next;
    }
    img
}

/// Python's `int(round(v / 2.0))` for a non-negative integer `v`: halves round to even.
fn half_round_even(v: usize) -> usize {
    let q = v / 2;
    if v % 2 == 1 && q % 2 == 1 {
        q + 1
    } else {
        q
    }
}

/// The size torchvision's `Resize(size)` gives an `h` x `w` image: the shorter side becomes
/// `size`, the longer `int(size * long / short)`; returns (height, width).
pub fn resized_shape(h: usize, w: usize, size: usize) -> (usize, usize) {
    let (short, long) = if w <= h { (w, h) } else { (h, w) };
    let new_long = (size as f64 * long as f64 / short as f64) as usize;
    if w <= h {
        (new_long, size)
    } else {
        (size, new_long)
    }
}

/// torchvision's `CenterCrop(size)(Resize(size)(img))` of an RGB HWC image: a `size` x `size` HWC image.
pub fn resize_center_crop(src: &[u8], h: usize, w: usize, size: usize) -> Vec<u8> {
    let (rh, rw) = resized_shape(h, w, size);
    let resized = if (rh, rw) == (h, w) { src[..h * w * 3].to_vec() } else { resize_bilinear(src, h, w, rh, rw) };
    let (top, left) = (half_round_even(rh - size), half_round_even(rw - size));
    let mut out = Vec::with_capacity(size * size * 3);
    for y in top..top + size {
        out.extend_from_slice(&resized[(y * rw + left) * 3..(y * rw + left + size) * 3]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_offsets_follow_torchvision() {
        assert_eq!(resized_shape(32, 48, 16), (16, 24));
        assert_eq!(resized_shape(50, 30, 16), (26, 16)); // int(16 * 50 / 30) = int(26.67)
        assert_eq!(resized_shape(7, 7, 16), (16, 16));
        // round(0.5) = 0, round(1.5) = 2, round(2.5) = 2 in Python
        assert_eq!([1, 3, 5, 4].map(half_round_even), [0, 2, 2, 2]);
    }

    #[test]
    fn a_flat_image_stays_flat_and_same_size_is_a_copy() {
        let src = vec![77u8; 9 * 13 * 3];
        assert!(resize_bilinear(&src, 9, 13, 4, 5).iter().all(|&v| v == 77));
        assert!(resize_bilinear(&src, 9, 13, 20, 31).iter().all(|&v| v == 77));
        let ramp: Vec<u8> = (0..6 * 6 * 3).map(|i| i as u8).collect();
        assert_eq!(resize_center_crop(&ramp, 6, 6, 6), ramp);
    }

    #[test]
    fn halving_weights_the_taps_as_pillow() {
        // 2:1 down-scaling, support 2: taps 3/7 3/7 1/7 at the edge (Pillow gives 14 100 186 here)
        let src: Vec<u8> = [0u8, 0, 100, 100, 200, 200].iter().flat_map(|&v| [v, v, v]).collect();
        let out = resize_bilinear(&src, 1, 6, 1, 3);
        assert_eq!(out.chunks(3).map(|p| p[0]).collect::<Vec<_>>(), vec![14, 100, 186]);
    }
}
