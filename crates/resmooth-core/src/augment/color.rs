//! Pillow's colour operations on uint8 RGB (HWC) images, pixel for pixel: the `ImageOps` lookup
//! tables (invert, posterize, solarize, autocontrast, equalize) and the `ImageEnhance` blends
//! (Color, Brightness, Contrast, Sharpness), with Pillow's float32 blend, truncation and clipping.

/// Applies one 256-entry table per channel.
fn apply_luts(src: &[u8], luts: &[[u8; 256]; 3], out: &mut [u8]) {
    for (o, px) in out.chunks_exact_mut(3).zip(src.chunks_exact(3)) {
        o[0] = luts[0][px[0] as usize];
        o[1] = luts[1][px[1] as usize];
        o[2] = luts[2][px[2] as usize];
    }
}

fn lut_from(f: impl Fn(usize) -> i64) -> [u8; 256] {
    std::array::from_fn(|i| f(i).clamp(0, 255) as u8)
}

fn same_lut(src: &[u8], lut: [u8; 256], out: &mut [u8]) {
    for (o, &v) in out.iter_mut().zip(src) {
        *o = lut[v as usize];
    }
}

/// Per-channel histograms.
fn histograms(src: &[u8]) -> [[u32; 256]; 3] {
    let mut h = [[0u32; 256]; 3];
    for px in src.chunks_exact(3) {
        h[0][px[0] as usize] += 1;
        h[1][px[1] as usize] += 1;
        h[2][px[2] as usize] += 1;
    }
    h
}

/// `ImageOps.invert`: 255 - v.
pub fn invert(src: &[u8], out: &mut [u8]) {
    for (o, &v) in out.iter_mut().zip(src) {
        *o = 255 - v;
    }
}

/// `ImageOps.posterize(bits)`: keeps the top `bits` bits (`bits` in 0..=8).
pub fn posterize(src: &[u8], bits: u32, out: &mut [u8]) {
    let mask = !((1u32 << (8 - bits.min(8))) - 1) as u8;
    for (o, &v) in out.iter_mut().zip(src) {
        *o = v & mask;
    }
}

/// `ImageOps.solarize(threshold)`: values `>= threshold` are inverted.
pub fn solarize(src: &[u8], threshold: f64, out: &mut [u8]) {
    same_lut(src, lut_from(|i| if (i as f64) < threshold { i as i64 } else { 255 - i as i64 }), out)
}

/// `ImageOps.autocontrast()`: stretches each channel so its darkest value becomes 0 and its
/// lightest 255 (`int(v * scale + offset)`, clipped); a channel with one value is left as is.
pub fn autocontrast(src: &[u8], out: &mut [u8]) {
    let hist = histograms(src);
    let luts = std::array::from_fn(|c| {
        let h = &hist[c];
        let lo = (0..256).find(|&i| h[i] != 0).unwrap_or(255);
        let hi = (0..256).rev().find(|&i| h[i] != 0).unwrap_or(0);
        if hi <= lo {
            return lut_from(|i| i as i64);
        }
        let scale = 255.0 / (hi - lo) as f64;
        let offset = -(lo as f64) * scale;
        lut_from(|i| {
            let v = i as f64 * scale + offset;
            // Python's int() truncates toward zero; negatives end up clipped to 0 either way
            v as i64
        })
    });
    apply_luts(src, &luts, out)
}

/// `ImageOps.equalize()`: per-channel histogram equalisation with Pillow's integer steps.
pub fn equalize(src: &[u8], out: &mut [u8]) {
    let hist = histograms(src);
    let luts = std::array::from_fn(|c| {
        let h = &hist[c];
        let nonzero: Vec<u64> = h.iter().filter(|&&v| v != 0).map(|&v| v as u64).collect();
        if nonzero.len() <= 1 {
            return lut_from(|i| i as i64);
        }
        let step = (nonzero.iter().sum::<u64>() - nonzero[nonzero.len() - 1]) / 255;
        if step == 0 {
            return lut_from(|i| i as i64);
        }
        let mut lut = [0u8; 256];
        let mut n = step / 2;
        for (i, l) in lut.iter_mut().enumerate() {
            *l = (n / step).min(255) as u8;
            n += h[i] as u64;
        }
        lut
    });
    apply_luts(src, &luts, out)
}

/// ITU-R 601-2 luma as Pillow converts RGB to L: `(19595 r + 38470 g + 7471 b + 0x8000) >> 16`.
#[inline(always)]
pub fn luma(px: &[u8]) -> u8 {
    ((px[0] as u32 * 19595 + px[1] as u32 * 38470 + px[2] as u32 * 7471 + 0x8000) >> 16) as u8
}

/// `Image.blend(degenerate, image, alpha)` for one channel value: float32 arithmetic, truncated;
/// clipped to 0..=255 when `alpha` extrapolates.
#[inline(always)]
fn blend(d: u8, x: u8, alpha: f32) -> u8 {
    // Rust's float-to-u8 cast truncates and saturates: Pillow's truncation inside [0, 1], and its
    // clipping to 0..=255 outside, in one branch-free expression
    (d as f32 + alpha * (x as i32 - d as i32) as f32) as u8
}

/// Blends every channel of `src` with a per-pixel degenerate value; `alpha` 0 gives the
/// degenerate image and 1 the original, exactly as Pillow's shortcuts.
fn enhance(src: &[u8], factor: f64, out: &mut [u8], degenerate: impl Fn(usize, usize) -> u8) {
    let alpha = factor as f32;
    if alpha == 1.0 {
        out[..src.len()].copy_from_slice(src);
        return;
    }
    for (i, (o, &x)) in out.iter_mut().zip(src).enumerate() {
        let d = degenerate(i / 3, i % 3);
        *o = if alpha == 0.0 { d } else { blend(d, x, alpha) };
    }
}

/// Blends every value of `src` with one degenerate value `d`: the same values as [`enhance`]
/// with a constant degenerate image.
fn enhance_constant(src: &[u8], factor: f64, d: u8, out: &mut [u8]) {
    let alpha = factor as f32;
    let out = &mut out[..src.len()];
    if alpha == 1.0 {
        out.copy_from_slice(src);
        return;
    }
    if alpha == 0.0 {
        out.fill(d);
        return;
    }
    blend_into(Degenerate::Constant(d), src, alpha, out)
}

/// What a blend mixes its image with: one value, or an image of the same layout.
#[derive(Clone, Copy)]
enum Degenerate<'a> {
    Constant(u8),
    Each(&'a [u8]),
}

/// `out[i] = blend(d[i], src[i], alpha)`: 32 values at a time with AVX2 where the CPU has it
/// ([`blend_avx2`], the same float operations), else one at a time.
fn blend_into(degenerate: Degenerate, src: &[u8], alpha: f32, out: &mut [u8]) {
    let out = &mut out[..src.len()];
    if let Degenerate::Each(d) = degenerate {
        assert_eq!(d.len(), src.len(), "a degenerate value per value");
    }
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above; the lengths were checked above.
        done = unsafe { blend_avx2(degenerate, src, alpha, out) };
    }
    for i in done..src.len() {
        let d = match degenerate {
            Degenerate::Constant(d) => d,
            Degenerate::Each(d) => d[i],
        };
        out[i] = blend(d, src[i], alpha);
    }
}

/// [`blend`] of the values of `src` 32 at a time, up to the last whole 32 (returns how many):
/// `d + alpha * (x - d)` in float32 (the difference exact, then one rounded product and one
/// rounded sum, as the scalar code: no fused multiply-add), truncated toward zero, then
/// saturated to 0..=255 by the packs. `out` and a per-value `degenerate` are `src`'s length.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn blend_avx2(degenerate: Degenerate, src: &[u8], alpha: f32, out: &mut [u8]) -> usize {
    use std::arch::x86_64::*;
    let a = _mm256_set1_ps(alpha);
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    // SAFETY (every load and store below): k + 32 <= len, and the slices have that length.
    let eight = |p: *const u8| unsafe { _mm256_cvtepu8_epi32(_mm_loadl_epi64(p as *const __m128i)) };
    let whole = src.len() / 32 * 32;
    for k in (0..whole).step_by(32) {
        let part = |j: usize| {
            let dk = match degenerate {
                Degenerate::Constant(d) => _mm256_set1_epi32(d as i32),
                Degenerate::Each(d) => eight(unsafe { d.as_ptr().add(k + j) }),
            };
            let xk = eight(unsafe { src.as_ptr().add(k + j) });
            let diff = _mm256_cvtepi32_ps(_mm256_sub_epi32(xk, dk));
            _mm256_cvttps_epi32(_mm256_add_ps(_mm256_cvtepi32_ps(dk), _mm256_mul_ps(a, diff)))
        };
        // packs saturate (negative to 0, above 255 to 255) within each 128-bit lane; the
        // permutation puts the four groups of eight back in order
        let low = _mm256_packus_epi32(part(0), part(8));
        let high = _mm256_packus_epi32(part(16), part(24));
        let bytes = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(low, high), order);
        unsafe { _mm256_storeu_si256(out.as_mut_ptr().add(k) as *mut __m256i, bytes) };
    }
    whole
}

/// `ImageEnhance.Color(img).enhance(factor)`: blend with the grey (L) version.
pub fn color(src: &[u8], factor: f64, out: &mut [u8]) {
    let alpha = factor as f32;
    let out = &mut out[..src.len()];
    if alpha == 1.0 {
        out.copy_from_slice(src);
        return;
    }
    // the grey value of each pixel at its three places, in blocks that stay in the first-level
    // cache; alpha 0 needs no shortcut: g + 0 * (x - g) is g
    const BLOCK: usize = 3 * 1024;
    let mut grey = [0u8; BLOCK];
    for (o, s) in out.chunks_mut(BLOCK).zip(src.chunks(BLOCK)) {
        let grey = &mut grey[..s.len()];
        for (g, px) in grey.chunks_exact_mut(3).zip(s.chunks_exact(3)) {
            g.fill(luma(px));
        }
        blend_into(Degenerate::Each(grey), s, alpha, o);
    }
}

/// `ImageEnhance.Brightness(img).enhance(factor)`: blend with black.
pub fn brightness(src: &[u8], factor: f64, out: &mut [u8]) {
    enhance_constant(src, factor, 0, out)
}

/// `ImageEnhance.Contrast(img).enhance(factor)`: blend with the mean grey level, `int(mean + 0.5)`.
pub fn contrast(src: &[u8], factor: f64, out: &mut [u8]) {
    let n = src.len() / 3;
    let sum: u64 = src.chunks_exact(3).map(|px| luma(px) as u64).sum();
    let mean = if n == 0 { 0 } else { (sum as f64 / n as f64 + 0.5) as u8 };
    enhance_constant(src, factor, mean, out)
}

/// Pillow's `ImageFilter.SMOOTH` (3x3 kernel 1 1 1 / 1 5 1 / 1 1 1, divided by 13, float32, +0.5,
/// clipped and truncated); the border rows and columns are copied unfiltered, and an image
/// smaller than 3x3 is copied.
pub fn smooth(src: &[u8], h: usize, w: usize, out: &mut [u8]) {
    out[..h * w * 3].copy_from_slice(&src[..h * w * 3]);
    if h < 3 || w < 3 {
        return;
    }
    let k1 = 1f32 / 13f32;
    let k5 = 5f32 / 13f32;
    let row = w * 3;
    for y in 1..h - 1 {
        let (up, mid, down) =
            (&src[(y - 1) * row..y * row], &src[y * row..(y + 1) * row], &src[(y + 1) * row..(y + 2) * row]);
        for x in 1..w - 1 {
            for c in 0..3 {
                let i = x * 3 + c;
                let line = |r: &[u8], k: f32| r[i - 3] as f32 * k1 + r[i] as f32 * k + r[i + 3] as f32 * k1;
                let mut ss = 0.5f32;
                ss += line(down, k1);
                ss += line(mid, k5);
                ss += line(up, k1);
                out[y * row + i] = ss.clamp(0.0, 255.0) as u8;
            }
        }
    }
}

/// `ImageEnhance.Sharpness(img).enhance(factor)`: blend with the SMOOTH-filtered image.
pub fn sharpness(src: &[u8], h: usize, w: usize, factor: f64, out: &mut [u8]) {
    let mut smoothed = vec![0u8; h * w * 3];
    smooth(src, h, w, &mut smoothed);
    enhance(src, factor, out, |p, c| smoothed[p * 3 + c])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blends_of_32_are_the_scalar_blends_for_every_pair() {
        let xs: Vec<u8> = (0..=255).collect();
        for alpha in [0.6f32, 0.731_248_2, 0.999_9, 1.000_1, 1.4, 1.9, 0.1, -0.3, 2.7, 0.0] {
            for d in 0..=255u8 {
                let mut out = vec![0u8; 256];
                blend_into(Degenerate::Constant(d), &xs, alpha, &mut out);
                let want: Vec<u8> = xs.iter().map(|&x| blend(d, x, alpha)).collect();
                assert_eq!(out, want, "alpha {alpha} d {d}");
                let ds: Vec<u8> = xs.iter().map(|&x| x.wrapping_mul(37).wrapping_add(d)).collect();
                blend_into(Degenerate::Each(&ds), &xs, alpha, &mut out);
                let want: Vec<u8> = xs.iter().zip(&ds).map(|(&x, &d)| blend(d, x, alpha)).collect();
                assert_eq!(out, want, "alpha {alpha} per value, offset {d}");
            }
        }
    }

    #[test]
    fn blend_truncates_inside_and_clips_outside() {
        assert_eq!(blend(0, 255, 0.5), 127);
        assert_eq!(blend(100, 200, 1.9), 255);
        assert_eq!(blend(200, 100, 1.9), 10);
        assert_eq!(blend(200, 10, 1.9), 0);
    }

    #[test]
    fn equalize_and_autocontrast_leave_flat_images() {
        let src = vec![77u8; 4 * 3];
        let mut out = vec![0; 12];
        equalize(&src, &mut out);
        assert_eq!(out, src);
        autocontrast(&src, &mut out);
        assert_eq!(out, src);
    }

    #[test]
    fn autocontrast_stretches_to_full_range() {
        let src = [10u8, 20, 30, 110, 120, 130];
        let mut out = [0u8; 6];
        autocontrast(&src, &mut out);
        assert_eq!(out, [0, 0, 0, 255, 255, 255]);
    }

    #[test]
    fn posterize_and_solarize() {
        let mut out = [0u8; 3];
        posterize(&[255, 100, 7], 4, &mut out);
        assert_eq!(out, [240, 96, 0]);
        solarize(&[127, 128, 0], 128.0, &mut out);
        assert_eq!(out, [127, 127, 0]);
        solarize(&[255, 128, 0], 256.0, &mut out);
        assert_eq!(out, [255, 128, 0]);
    }
}
