//! Pillow's antialiased resampling (`Image.resize` with BILINEAR or BICUBIC, as its Resample.c
//! computes it: the filter's support widened by the reduction factor, fixed-point weights, a
//! horizontal pass over the rows the vertical pass needs, then the vertical pass), and the
//! torchvision transforms built on it: `Resize(S)` + `CenterCrop(C)` (`--image-size`, ImageNet's
//! evaluation view) and the resize of a crop box (`RandomResizedCrop`).

/// Bits of Pillow's fixed-point filter coefficients (`PRECISION_BITS` in its Resample.c).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's resampling filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// The triangle filter of support 1 (`Image.BILINEAR`, torchvision's default).
    Bilinear,
    /// Keys' cubic convolution with a = -0.5, support 2 (`Image.BICUBIC`).
    Bicubic,
}

impl Filter {
    /// The filter's support (half-width) at scale 1.
    fn support(self) -> f64 {
        match self {
            Filter::Bilinear => 1.0,
            Filter::Bicubic => 2.0,
        }
    }

    /// The filter's weight at distance `x`, as Pillow's `bilinear_filter` / `bicubic_filter`.
    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Filter::Bilinear if x < 1.0 => 1.0 - x,
            Filter::Bicubic if x < 1.0 => ((-0.5 + 2.0) * x - (-0.5 + 3.0)) * x * x + 1.0,
            Filter::Bicubic if x < 2.0 => (((x - 5.0) * x + 8.0) * x - 4.0) * -0.5,
            _ => 0.0,
        }
    }
}

/// A crop box of an image: rows `top..top + height`, columns `left..left + width`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub top: usize,
    pub left: usize,
    pub height: usize,
    pub width: usize,
}

impl Region {
    /// The whole of an `h` x `w` image.
    pub fn whole(h: usize, w: usize) -> Region {
        Region { top: 0, left: 0, height: h, width: w }
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
    fn new(in_size: usize, out_size: usize, filter: Filter) -> Coeffs {
        let scale = in_size as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = filter.support() * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let mut bounds = Vec::with_capacity(out_size);
        let mut weights = vec![0i32; out_size * ksize];
        let mut k = vec![0f64; ksize];
        let ss = 1.0 / filterscale;
        for xx in 0..out_size {
            let center = (xx as f64 + 0.5) * scale;
            // C's (int) truncates toward zero
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize - xmin;
            let mut ww = 0.0;
            for (x, kx) in k.iter_mut().enumerate().take(xmax) {
                let w = filter.weight((x as f64 + xmin as f64 - center + 0.5) * ss);
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

    /// The taps (first source index, weights) of output position `out`.
    #[inline]
    fn taps(&self, out: usize) -> (usize, &[i32]) {
        let (start, n) = self.bounds[out];
        (start, &self.weights[out * self.ksize..out * self.ksize + n])
    }

    /// The source positions `[first, last)` that some output position reads.
    fn span(&self) -> (usize, usize) {
        let first = self.bounds.first().map_or(0, |b| b.0);
        let last = self.bounds.last().map_or(0, |b| b.0 + b.1);
        (first, last)
    }
}

/// A fixed-point sum rounded and clipped to 0..=255, as Pillow's `clip8`.
#[inline]
fn clip8(ss: i32) -> u8 {
    (ss >> PRECISION_BITS).clamp(0, 255) as u8
}

/// The rounding constant every fixed-point sum starts from.
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// `acc[i] += row[i] * wt` for every `i`, wrapping as Pillow's C `int` sums do: the inner loop of
/// both passes, compiled for AVX2 too and run that way where the CPU has it (same integers).
#[inline]
fn accumulate(acc: &mut [i32], row: &[u8], wt: i32) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { accumulate_avx2(acc, row, wt) };
    }
    accumulate_plain(acc, row, wt)
}

#[inline(always)]
fn accumulate_plain(acc: &mut [i32], row: &[u8], wt: i32) {
    for (a, &v) in acc.iter_mut().zip(row) {
        *a = a.wrapping_add(v as i32 * wt);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn accumulate_avx2(acc: &mut [i32], row: &[u8], wt: i32) {
    accumulate_plain(acc, row, wt)
}

/// Resamples rows `rows` of `src` (an RGB image `src_w` wide, columns `left..` of the box)
/// horizontally with `c` into `out` (`rows.len()` rows of `c.bounds.len()` pixels). The columns
/// are transposed into rows first, so that each output column is a weighted sum of whole
/// contiguous rows, which vectorises as the vertical pass does; the integer sums are Pillow's.
fn horizontal(src: &[u8], src_w: usize, left: usize, rows: std::ops::Range<usize>, c: &Coeffs, out: &mut [u8]) {
    let out_w = c.bounds.len();
    let (first, last) = c.span();
    let n = rows.len();
    // t holds source column first + x as row x: n pixels, one per source row
    let mut t = vec![0u8; (last - first) * n * 3];
    for (r, y) in rows.enumerate() {
        let row = &src[(y * src_w + left + first) * 3..(y * src_w + left + last) * 3];
        for (x, px) in row.chunks_exact(3).enumerate() {
            t[(x * n + r) * 3..(x * n + r) * 3 + 3].copy_from_slice(px);
        }
    }
    let mut acc = vec![0i32; n * 3];
    for xx in 0..out_w {
        let (start, k) = c.taps(xx);
        acc.fill(HALF);
        for (i, &wt) in k.iter().enumerate() {
            let x = start + i - first;
            accumulate(&mut acc, &t[x * n * 3..(x + 1) * n * 3], wt);
        }
        for (r, px) in acc.chunks_exact(3).enumerate() {
            let o = (r * out_w + xx) * 3;
            out[o] = clip8(px[0]);
            out[o + 1] = clip8(px[1]);
            out[o + 2] = clip8(px[2]);
        }
    }
}

/// Resamples `src` (an RGB image `w` wide whose row 0 is source row `first` of the axis `c`
/// was made for, columns `left..left + out_w`) vertically into `out` (`out_w` wide).
fn vertical(src: &[u8], w: usize, left: usize, first: usize, c: &Coeffs, out_w: usize, out: &mut [u8]) {
    let mut acc = vec![0i32; out_w * 3];
    for (yy, out_row) in out.chunks_exact_mut(out_w * 3).enumerate() {
        let (start, k) = c.taps(yy);
        acc.fill(HALF);
        for (i, &wt) in k.iter().enumerate() {
            let y = start + i - first;
            accumulate(&mut acc, &src[(y * w + left) * 3..(y * w + left + out_w) * 3], wt);
        }
        for (o, &a) in out_row.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
}

/// Whether Pillow 13 runs the vertical pass first when resizing `(h, w)` to `(out_h, out_w)`
/// (both passes needed): when the height shrinks by more than twice as many pixels as the
/// width does (Pillow's pull request 9549). Which pass runs first changes the intermediate
/// rounding, so the pixels follow the pinned Pillow; earlier Pillows always went horizontal first.
fn vertical_first((h, w): (usize, usize), (out_h, out_w): (usize, usize)) -> bool {
    out_h < h && (h - out_h) as i64 > 2 * (w as i64 - out_w as i64)
}

/// Pillow's `img.crop(box).resize((out_w, out_h), filter)` of an RGB HWC image `h` x `w`, written
/// into `out` (`out_h * out_w * 3` bytes): the taps stop at the crop's edges, as they do on the
/// cropped copy torchvision resizes. A pass whose size does not change is skipped, as Pillow
/// skips it; the passes run in Pillow's order ([`vertical_first`]), and a first horizontal pass
/// covers only the rows the vertical one reads.
pub fn resize_region_into(
    src: &[u8],
    (h, w): (usize, usize),
    region: Region,
    (out_h, out_w): (usize, usize),
    filter: Filter,
    out: &mut [u8],
) {
    let Region { top, left, height, width } = region;
    debug_assert!(top + height <= h && left + width <= w && src.len() >= h * w * 3);
    let out = &mut out[..out_h * out_w * 3];
    let vert = (out_h != height).then(|| Coeffs::new(height, out_h, filter));
    let horiz = (out_w != width).then(|| Coeffs::new(width, out_w, filter));
    match (horiz, vert) {
        (None, None) => {
            for (y, o) in out.chunks_exact_mut(out_w * 3).enumerate() {
                let at = ((top + y) * w + left) * 3;
                o.copy_from_slice(&src[at..at + out_w * 3]);
            }
        }
        (Some(hc), None) => horizontal(src, w, left, top..top + height, &hc, out),
        (None, Some(vc)) => vertical(&src[top * w * 3..], w, left, 0, &vc, out_w, out),
        (Some(hc), Some(vc)) if vertical_first((height, width), (out_h, out_w)) => {
            let mut tmp = vec![0u8; out_h * width * 3];
            vertical(&src[top * w * 3..], w, left, 0, &vc, width, &mut tmp);
            horizontal(&tmp, width, 0, 0..out_h, &hc, out);
        }
        (Some(hc), Some(vc)) => {
            let (first, last) = vc.span();
            let mut tmp = vec![0u8; (last - first) * out_w * 3];
            horizontal(src, w, left, top + first..top + last, &hc, &mut tmp);
            vertical(&tmp, out_w, 0, first, &vc, out_w, out);
        }
    }
}

/// Pillow's `Image.resize((out_w, out_h), filter)` of an RGB HWC image.
pub fn resize(src: &[u8], (h, w): (usize, usize), (out_h, out_w): (usize, usize), filter: Filter) -> Vec<u8> {
    let mut out = vec![0u8; out_h * out_w * 3];
    resize_region_into(src, (h, w), Region::whole(h, w), (out_h, out_w), filter, &mut out);
    out
}

/// Pillow's `Image.resize((out_w, out_h), BILINEAR)` of an RGB HWC image.
pub fn resize_bilinear(src: &[u8], h: usize, w: usize, out_h: usize, out_w: usize) -> Vec<u8> {
    resize(src, (h, w), (out_h, out_w), Filter::Bilinear)
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

/// torchvision's `CenterCrop(crop)(Resize(size, filter)(img))` of an RGB HWC image (`crop` <=
/// `size`), written into `out` (`crop * crop * 3` bytes): the shorter side to `size`, then the
/// centre square with torchvision's `round()` of the offsets.
pub fn resize_center_crop_into(
    src: &[u8],
    (h, w): (usize, usize),
    size: usize,
    crop: usize,
    filter: Filter,
    out: &mut [u8],
) {
    debug_assert!(crop <= size);
    let (rh, rw) = resized_shape(h, w, size);
    let resized;
    let (img, shape) = if (rh, rw) == (h, w) {
        (&src[..h * w * 3], (h, w))
    } else {
        resized = resize(src, (h, w), (rh, rw), filter);
        (&resized[..], (rh, rw))
    };
    let (top, left) = (half_round_even(rh - crop), half_round_even(rw - crop));
    let region = Region { top, left, height: crop, width: crop };
    resize_region_into(img, shape, region, (crop, crop), filter, out);
}

/// torchvision's `CenterCrop(size)(Resize(size)(img))` of an RGB HWC image, with Pillow's
/// bilinear resampling: a `size` x `size` HWC image.
pub fn resize_center_crop(src: &[u8], h: usize, w: usize, size: usize) -> Vec<u8> {
    let mut out = vec![0u8; size * size * 3];
    resize_center_crop_into(src, (h, w), size, size, Filter::Bilinear, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two-pass resize written plainly (every row, one channel at a time), as the module
    /// was before it learned to skip rows: what the fast passes must equal.
    fn plain(src: &[u8], h: usize, w: usize, out_h: usize, out_w: usize, filter: Filter) -> Vec<u8> {
        let apply = |c: &Coeffs, out: usize, tap: &dyn Fn(usize) -> u8| {
            let (start, k) = c.taps(out);
            clip8(k.iter().enumerate().fold(HALF, |ss, (x, &wt)| ss.wrapping_add(tap(start + x) as i32 * wt)))
        };
        let horizontal = |img: &[u8], h: usize, w: usize| -> Vec<u8> {
            let c = Coeffs::new(w, out_w, filter);
            (0..h * out_w * 3)
                .map(|i| apply(&c, i / 3 % out_w, &|x| img[(i / 3 / out_w * w + x) * 3 + i % 3]))
                .collect()
        };
        let vertical = |img: &[u8], h: usize, w: usize| -> Vec<u8> {
            let c = Coeffs::new(h, out_h, filter);
            (0..out_h * w * 3).map(|i| apply(&c, i / 3 / w, &|y| img[(y * w + i / 3 % w) * 3 + i % 3])).collect()
        };
        match (out_h != h, out_w != w) {
            (false, false) => src.to_vec(),
            (false, true) => horizontal(src, h, w),
            (true, false) => vertical(src, h, w),
            _ if vertical_first((h, w), (out_h, out_w)) => horizontal(&vertical(src, h, w), out_h, w),
            _ => vertical(&horizontal(src, h, w), h, out_w),
        }
    }

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
        for filter in [Filter::Bilinear, Filter::Bicubic] {
            assert!(resize(&src, (9, 13), (4, 5), filter).iter().all(|&v| v == 77));
            assert!(resize(&src, (9, 13), (20, 31), filter).iter().all(|&v| v == 77));
        }
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

    #[test]
    fn bicubic_overshoots_at_edges_and_is_clipped() {
        // the cubic's negative lobes ring around a step; enlarging a 0/255 step must clip to 0..=255
        let src: Vec<u8> = [0u8, 0, 255, 255].iter().flat_map(|&v| [v, v, v]).collect();
        let out = resize(&src, (1, 4), (1, 16), Filter::Bicubic);
        let row: Vec<u8> = out.chunks(3).map(|p| p[0]).collect();
        assert_eq!((row[0], row[15]), (0, 255));
        assert!(row.windows(2).all(|p| p[0] <= p[1]), "{row:?}");
        assert!(Filter::Bicubic.weight(1.5) < 0.0 && Filter::Bicubic.weight(0.0) == 1.0);
        assert_eq!(Filter::Bicubic.weight(2.0), 0.0);
    }

    #[test]
    fn the_vertical_pass_goes_first_when_the_height_shrinks_much_more() {
        assert!(vertical_first((61, 83), (7, 200)));
        assert!(vertical_first((60, 60), (2, 32)) && !vertical_first((60, 60), (2, 31)));
        assert!(!vertical_first((60, 60), (62, 119)), "never when the height grows");
        assert!(!vertical_first((350, 400), (224, 224)));
    }

    #[test]
    fn the_fast_passes_equal_the_plain_ones_and_crops_stop_the_taps() {
        let (h, w) = (23, 31);
        let src: Vec<u8> = (0..h * w * 3).map(|i| (i * 73 % 251) as u8).collect();
        for filter in [Filter::Bilinear, Filter::Bicubic] {
            for (oh, ow) in [(7, 9), (23, 12), (40, 31), (50, 64), (23, 31), (3, 70), (2, 40)] {
                assert_eq!(resize(&src, (h, w), (oh, ow), filter), plain(&src, h, w, oh, ow, filter), "{oh}x{ow}");
            }
            // a crop box resizes as its copy does, whatever lies outside it
            let region = Region { top: 5, left: 7, height: 11, width: 13 };
            let copy: Vec<u8> = (5..16).flat_map(|y| src[(y * w + 7) * 3..(y * w + 20) * 3].to_vec()).collect();
            let mut out = vec![0u8; 6 * 20 * 3];
            resize_region_into(&src, (h, w), region, (6, 20), filter, &mut out);
            assert_eq!(out, plain(&copy, 11, 13, 6, 20, filter));
        }
    }
}
