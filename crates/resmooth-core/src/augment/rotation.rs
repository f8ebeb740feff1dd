//! `--aug rotate`, a negative augmentation of Table 2: a rotation by 90, 180 or 270 degrees
//! (drawn uniformly) before the crop.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The reference's `--aug rotate` angle: 90, 180 or 270 degrees, uniformly.
pub fn draw_quarter_turn(rng: &mut ChaCha8Rng) -> f64 {
    [90.0, 180.0, 270.0][rng.random_range(0..3)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::collections::HashMap;

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
