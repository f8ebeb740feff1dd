//! The one synthetic image set of tests, previews and benchmarks: 32x32 images with smooth
//! structure (gradients, an inverted block, a little noise), so augmentation ops have an effect.

use super::ImageSet;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `count` seeded 32x32 images labelled `i % 10`.
pub fn synthetic_set(count: usize, seed: u64) -> ImageSet {
    let (h, w) = (32, 32);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut set = ImageSet::new(h, w);
    let mut img = vec![0u8; h * w * 3];
    for i in 0..count {
        let base: [f32; 3] = [rng.random(), rng.random(), rng.random()];
        let (gy, gx): (f32, f32) = (rng.random_range(-4.0..4.0), rng.random_range(-4.0..4.0));
        let (by, bx) = (rng.random_range(0..24), rng.random_range(0..24));
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    let mut v = base[c] * 200.0 + gy * y as f32 * (c as f32 - 1.0) + gx * x as f32;
                    if (by..by + 9).contains(&y) && (bx..bx + 9).contains(&x) {
                        v = 255.0 - v;
                    }
                    img[(y * w + x) * 3 + c] = v.clamp(0.0, 255.0) as u8 ^ (rng.random::<u8>() & 7);
                }
            }
        }
        set.push(&img, (i % 10) as i64);
    }
    set
}
