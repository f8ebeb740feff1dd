//! `--aug jigsaw`, a negative augmentation of Table 2: the 2x2 patches of the view put back in a
//! uniformly drawn non-identity order.

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
}
