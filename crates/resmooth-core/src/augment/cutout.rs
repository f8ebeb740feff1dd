//! Cutout, in one place: the box of `--cutout L` (zeroed on the normalised augmented view), the
//! grey square of SevereAugment's `Cutout` op (the reference's `CutoutAbs`), and the one fill
//! that paints a box, whatever the pixels are (uint8 colours, a float mask).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The colour the reference's `CutoutAbs` paints its square with.
pub const CUTOUT_ABS_COLOUR: [u8; 3] = [125, 123, 114];

/// The reference's cutout box of side `len` on an `h` x `w` view: a centre drawn uniformly over
/// the pixels, the square `[c - len/2, c + len/2)` clipped at the borders; `[y0, y1, x0, x1)`.
pub fn draw_cutout(len: usize, h: usize, w: usize, rng: &mut ChaCha8Rng) -> [u16; 4] {
    let y = rng.random_range(0..h) as isize;
    let x = rng.random_range(0..w) as isize;
    let half = (len / 2) as isize;
    let clip = |v: isize, n: usize| v.clamp(0, n as isize) as u16;
    [clip(y - half, h), clip(y + half, h), clip(x - half, w), clip(x + half, w)]
}

/// Sets every pixel of the cutout box `[y0, y1, x0, x1)` of an HWC image `w` pixels wide to
/// `value` (one entry per channel): zeros of a mask, or a colour on uint8 images.
pub fn fill_cutout<T: Copy>(img: &mut [T], w: usize, cutout: [u16; 4], value: &[T]) {
    let c = value.len();
    let [y0, y1, x0, x1] = cutout.map(usize::from);
    for y in y0..y1 {
        for px in img[(y * w + x0) * c..(y * w + x1) * c].chunks_exact_mut(c) {
            px.copy_from_slice(value);
        }
    }
}

/// The box `[y0, y1, x0, x1)` of the reference's `CutoutAbs(img, sqrt(v) * width)` with the
/// centre draws `x_draw`, `y_draw` already made: Pillow's `rectangle` fills `[x0, x1] x [y0, y1]`
/// inclusive, with `x0 = int(max(0, x_draw - side / 2))`, `x1 = min(w, x0 + side)` truncated,
/// clipped to the image. `None` when nothing is painted (`v <= 0`, or a corner past the image).
pub fn cutout_abs_box(h: usize, w: usize, v: f64, x_draw: f64, y_draw: f64) -> Option<[u16; 4]> {
    if v <= 0.0 {
        return None;
    }
    let side = v.sqrt() * w as f64;
    let x0 = (x_draw - side / 2.0).max(0.0) as usize;
    let y0 = (y_draw - side / 2.0).max(0.0) as usize;
    // Pillow fills nothing from a corner past the image
    if x0 >= w || y0 >= h {
        return None;
    }
    let x1 = ((x0 as f64 + side).min(w as f64) as usize).min(w - 1);
    let y1 = ((y0 as f64 + side).min(h as f64) as usize).min(h - 1);
    Some([y0, y1 + 1, x0, x1 + 1].map(|v| v as u16))
}

/// Paints the reference's `CutoutAbs` square (see [`cutout_abs_box`]) on a uint8 HWC image in
/// its grey.
pub fn cutout_abs(img: &mut [u8], h: usize, w: usize, v: f64, x_draw: f64, y_draw: f64) {
    if let Some(b) = cutout_abs_box(h, w, v, x_draw, y_draw) {
        fill_cutout(img, w, b, &CUTOUT_ABS_COLOUR);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn cutout_fills_its_box_only() {
        let mut mask = vec![1u8; 4 * 5];
        fill_cutout(&mut mask, 5, [1, 3, 2, 4], &[0]);
        assert_eq!(mask, [1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1]);
        let mut rgb = vec![9u8; 2 * 2 * 3];
        fill_cutout(&mut rgb, 2, [0, 1, 1, 2], &[1, 2, 3]);
        assert_eq!(rgb, [9, 9, 9, 1, 2, 3, 9, 9, 9, 9, 9, 9]);
    }

    #[test]
    fn cutout_is_clipped_at_the_borders() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (mut clipped, mut full) = (0usize, 0usize);
        for _ in 0..5000 {
            let [y0, y1, x0, x1] = draw_cutout(16, 32, 32, &mut rng);
            assert!(y0 < y1 && x0 < x1 && y1 <= 32 && x1 <= 32);
            assert!(y1 - y0 <= 16 && x1 - x0 <= 16 && y1 - y0 >= 8 && x1 - x0 >= 8);
            if y1 - y0 == 16 && x1 - x0 == 16 {
                full += 1;
            } else {
                clipped += 1;
            }
        }
        // unclipped needs the centre in 8..=24 on both axes: (17/32)^2 = 28% of the draws
        assert!(full.abs_diff(1411) < 150 && clipped + full == 5000, "{clipped} {full}");
        // a centre at the corner gives the clipped 8x8 corner box
        let mut seen_corner = false;
        for _ in 0..20_000 {
            seen_corner |= draw_cutout(16, 32, 32, &mut rng) == [0, 8, 0, 8];
        }
        assert!(seen_corner);
    }

    #[test]
    fn cutout_paints_an_inclusive_clipped_square() {
        let (h, w) = (6, 8);
        let mut img = vec![0u8; h * w * 3];
        // side sqrt(0.0625) * 8 = 2: x0 = int(5.0 - 1) = 4, x1 = 6; y0 = int(2.5 - 1) = 1, y1 = 3
        cutout_abs(&mut img, h, w, 0.0625, 5.0, 2.5);
        let painted: Vec<(usize, usize)> =
            (0..h * w).filter(|p| img[p * 3] == CUTOUT_ABS_COLOUR[0]).map(|p| (p / w, p % w)).collect();
        let want: Vec<(usize, usize)> = (1..=3).flat_map(|y| (4..=6).map(move |x| (y, x))).collect();
        assert_eq!(painted, want);
        let mut all = vec![0u8; h * w * 3];
        cutout_abs(&mut all, h, w, 1.0, 1.0, 1.0);
        assert!(all.chunks(3).all(|p| p == CUTOUT_ABS_COLOUR));
        let mut none = vec![0u8; h * w * 3];
        cutout_abs(&mut none, h, w, 0.0, 3.0, 3.0);
        // a corner past the right or the bottom edge paints nothing, as Pillow
        cutout_abs(&mut none, h, w, 0.0625, 10.0, 2.5);
        cutout_abs(&mut none, h, w, 0.0625, 2.0, 8.0);
        assert!(none.iter().all(|&v| v == 0));
        assert_eq!(cutout_abs_box(h, w, 0.0625, 5.0, 2.5), Some([1, 4, 4, 7]));
    }
}
