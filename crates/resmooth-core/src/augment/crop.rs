//! RandomCrop(size, padding, zero fill) followed by RandomHorizontalFlip(0.5); the padding is
//! `--crop-padding`, by default an eighth of the side (the reference's 4 at 32 px, 8 at 64 px).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// One drawn crop offset (in the padded image) and flip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropFlip {
    pub pad: usize,
    pub top: usize,
    pub left: usize,
    pub flip: bool,
}

impl CropFlip {
    /// The default padding of an `h` x `w` image: an eighth of its shorter side.
    pub fn default_pad(h: usize, w: usize) -> usize {
        h.min(w) / 8
    }

    /// Draws the offsets uniformly in `[0, 2 * pad]` and the flip with probability 0.5; `pad`
    /// `None` is [`CropFlip::default_pad`].
    pub fn draw(h: usize, w: usize, pad: Option<usize>, rng: &mut ChaCha8Rng) -> Self {
        let pad = pad.unwrap_or(Self::default_pad(h, w));
        let top = rng.random_range(0..=2 * pad);
        let left = rng.random_range(0..=2 * pad);
        let flip = rng.random_bool(0.5);
        CropFlip { pad, top, left, flip }
    }

    /// Writes the cropped (and maybe flipped) view of `src` into `out`, both HWC `h` x `w`:
    /// out(y, x) = padded(y + top, x' + left) with x' = w - 1 - x when flipped, padded(Y, X) =
    /// src(Y - pad, X - pad) inside the image and 0 outside.
    pub fn apply(&self, src: &[u8], h: usize, w: usize, out: &mut [u8]) {
        let CropFlip { pad, top, left, flip } = *self;
        let row = w * 3;
        // source columns [x_lo, x_hi) of the unflipped output row that fall inside the image
        let dx = left as isize - pad as isize;
        let x_lo = (-dx).clamp(0, w as isize) as usize;
        let x_hi = (w as isize - dx).clamp(0, w as isize) as usize;
        for y in 0..h {
            let out_row = &mut out[y * row..(y + 1) * row];
            let sy = (y + top) as isize - pad as isize;
            if sy < 0 || sy >= h as isize || x_lo >= x_hi {
                out_row.fill(0);
                continue;
            }
            let src_row = &src[sy as usize * row..(sy as usize + 1) * row];
            let from = (x_lo as isize + dx) as usize * 3;
            let to = (x_hi as isize + dx) as usize * 3;
            if !flip {
                out_row[..x_lo * 3].fill(0);
                out_row[x_lo * 3..x_hi * 3].copy_from_slice(&src_row[from..to]);
                out_row[x_hi * 3..].fill(0);
            } else {
                out_row.fill(0);
                for (k, px) in src_row[from..to].chunks_exact(3).enumerate() {
                    let x = w - 1 - (x_lo + k);
                    out_row[x * 3..x * 3 + 3].copy_from_slice(px);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn reference(src: &[u8], h: usize, w: usize, c: CropFlip) -> Vec<u8> {
        let mut out = vec![0u8; h * w * 3];
        for y in 0..h {
            for x in 0..w {
                let xs = if c.flip { w - 1 - x } else { x };
                let (sy, sx) =
                    (y as isize + c.top as isize - c.pad as isize, xs as isize + c.left as isize - c.pad as isize);
                if sy >= 0 && sx >= 0 && (sy as usize) < h && (sx as usize) < w {
                    for ch in 0..3 {
                        out[(y * w + x) * 3 + ch] = src[(sy as usize * w + sx as usize) * 3 + ch];
                    }
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_per_pixel_definition_for_every_offset() {
        let (h, w) = (16, 16);
        let src: Vec<u8> = (0..h * w * 3).map(|i| (i * 31 % 251) as u8 + 1).collect();
        let mut out = vec![0u8; h * w * 3];
        for top in 0..=4 {
            for left in 0..=4 {
                for flip in [false, true] {
                    let c = CropFlip { pad: 2, top, left, flip };
                    c.apply(&src, h, w, &mut out);
                    assert_eq!(out, reference(&src, h, w, c), "{c:?}");
                }
            }
        }
    }

    #[test]
    fn draws_cover_all_offsets_and_both_flips() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            let c = CropFlip::draw(32, 32, None, &mut rng);
            assert_eq!(c.pad, 4);
            assert!(c.top <= 8 && c.left <= 8);
            seen.insert((c.top, c.left, c.flip));
        }
        assert_eq!(seen.len(), 9 * 9 * 2);
        assert_eq!(CropFlip::draw(64, 64, None, &mut rng).pad, 8);
        assert_eq!(CropFlip::draw(16, 16, None, &mut rng).pad, 2);
        let c = CropFlip::draw(64, 64, Some(3), &mut rng);
        assert!(c.pad == 3 && c.top <= 6 && c.left <= 6);
    }
}
