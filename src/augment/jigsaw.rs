//! The negative augmentations of Table 2 and cutout: jigsaw (the 2x2 patches of the view put back
//! in a uniformly drawn non-identity order), rotation by 90, 180 or 270 degrees, and the cutout box.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The `k`-th permutation of 0..4 in lexicographic order (`k` in 0..24; 0 is the identity).
pub fn nth_permutation(mut k: usize) -> [usize; 4] {
    let mut left = vec![0, 1, 2, 3];
    let mut out = [0; 4];
    for (i, slot) in out.iter_mut().enumerate() {
        let f = [6, 2, 1, 1][i];
        *slot = left.remove(k / f);
        k %= f;
    }
    out
}

/// Draws one of the 23 non-identity permutations uniformly. (The reference's tensor code lays the
/// permuted patches out column by column, so there one of its 23 draws gives the image back and the
/// swap of the two off-diagonal patches never happens; SPEC asks for a true non-identity shuffle.)
pub fn draw_permutation(rng: &mut ChaCha8Rng) -> [usize; 4] {
    nth_permutation(rng.random_range(1..24))
}

/// Rearranges the 2x2 patches of `img` (HWC `h` x `w`) in place: the patch at position `p`
/// (row-major: top-left, top-right, bottom-left, bottom-right) becomes the source patch
/// `perm[p]`. With odd sides the last row/column stays where it is.
pub fn jigsaw(img: &mut [u8], h: usize, w: usize, perm: [usize; 4]) {
    let (ph, pw) = (h / 2, w / 2);
    let src = img.to_vec();
    for (p, &s) in perm.iter().enumerate() {
        let (dy, dx) = (p / 2 * ph, p % 2 * pw);
        let (sy, sx) = (s / 2 * ph, s % 2 * pw);
        for y in 0..ph {
            let d = ((dy + y) * w + dx) * 3;
            let s = ((sy + y) * w + sx) * 3;
            img[d..d + pw * 3].copy_from_slice(&src[s..s + pw * 3]);
        }
    }
}

/// The reference's `--aug rotate` angle: 90, 180 or 270 degrees, uniformly.
pub fn draw_quarter_turn(rng: &mut ChaCha8Rng) -> f64 {
    [90.0, 180.0, 270.0][rng.random_range(0..3)]
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::collections::HashMap;

    #[test]
    fn permutations_are_distinct_and_zero_is_identity() {
        let all: std::collections::HashSet<[usize; 4]> = (0..24).map(nth_permutation).collect();
        assert_eq!(all.len(), 24);
        assert_eq!(nth_permutation(0), [0, 1, 2, 3]);
        assert_eq!(nth_permutation(23), [3, 2, 1, 0]);
    }

    #[test]
    fn jigsaw_never_returns_the_identity_and_covers_all_23() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let (h, w) = (4, 4);
        // every patch distinct, so only the identity permutation gives back the image
        let src: Vec<u8> = (0..h * w * 3).map(|i| i as u8).collect();
        let mut seen: HashMap<[usize; 4], usize> = HashMap::new();
        for _ in 0..23_000 {
            let perm = draw_permutation(&mut rng);
            let mut img = src.clone();
            jigsaw(&mut img, h, w, perm);
            assert_ne!(img, src, "{perm:?}");
            *seen.entry(perm).or_default() += 1;
        }
        assert_eq!(seen.len(), 23);
        for (perm, c) in seen {
            assert!(c.abs_diff(1000) < 130, "{perm:?}: {c}");
        }
    }

    #[test]
    fn jigsaw_moves_whole_patches() {
        let (h, w) = (4, 6);
        let src: Vec<u8> = (0..h * w)
            .flat_map(|p| {
                let (y, x) = (p / w, p % w);
                let patch = (y / 2 * 2 + x / 3) as u8;
                [patch, 0, 0]
            })
            .collect();
        let mut img = src.clone();
        jigsaw(&mut img, h, w, [3, 2, 1, 0]);
        for p in 0..h * w {
            let (y, x) = (p / w, p % w);
            assert_eq!(img[p * 3] as usize, 3 - (y / 2 * 2 + x / 3));
        }
    }

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
    fn quarter_turns_are_uniform() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut c = HashMap::new();
        for _ in 0..3000 {
            *c.entry(draw_quarter_turn(&mut rng) as u32).or_insert(0usize) += 1;
        }
        assert_eq!(c.len(), 3);
        assert!(c.values().all(|&n| n.abs_diff(1000) < 100), "{c:?}");
    }
}
