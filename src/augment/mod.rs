//! The two views of a training sample on uint8 HWC images: the original view (random crop with
//! zero padding, then a random horizontal flip) and the augmented view chosen by `--aug`.

pub mod autoaugment;
pub mod color;
mod crop;
pub mod geometry;
pub mod jigsaw;
pub mod ops;
pub mod randaugment;

pub use autoaugment::AutoAugment;
pub use crop::CropFlip;
pub use jigsaw::fill_cutout;
pub use ops::Op;
pub use randaugment::RandAugment;

use crate::config::{AugName, DatasetName};
use rand_chacha::ChaCha8Rng;

/// One operation applied to an augmented view, with the value it was applied with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AppliedOp {
    pub name: &'static str,
    pub value: f32,
}

/// What was applied to one augmented view: the named ops (in order) and the cutout box
/// `[y0, y1, x0, x1)` to be zeroed after normalisation, if any.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Applied {
    pub ops: Vec<AppliedOp>,
    pub cutout: Option<[u16; 4]>,
}

/// How augmented views are made: the `--aug` policy and `--cutout` length.
#[derive(Debug, Clone)]
pub struct Augmenter {
    pub kind: AugKind,
    pub cutout: usize,
}

/// The augmentation policies.
#[derive(Debug, Clone, PartialEq)]
pub enum AugKind {
    /// No extra op: the augmented view is an independent crop + flip.
    Default,
    /// The reference's RandAugment(N, M) before the crop.
    RandAugment(RandAugment),
    /// torchvision's AutoAugment (CIFAR-10 or SVHN policy) before the crop.
    AutoAugment(AutoAugment),
    /// A rotation by 90, 180 or 270 degrees before the crop.
    Rotate,
    /// The 2x2 patches shuffled after the crop and flip.
    Jigsaw,
}

impl Augmenter {
    /// The augmentation `aug` with RandAugment's `n` ops of magnitude `m` (0..=30, checked with
    /// the configuration) and a cutout of side `cutout`, for `dataset` (AutoAugment's policy).
    pub fn new(aug: AugName, n: usize, m: usize, cutout: usize, dataset: DatasetName) -> Self {
        let kind = match aug {
            AugName::Default => AugKind::Default,
            AugName::RandAugment => AugKind::RandAugment(RandAugment { n, m }),
            AugName::AutoAugment => AugKind::AutoAugment(AutoAugment::for_dataset(dataset)),
            AugName::Rotate => AugKind::Rotate,
            AugName::Jigsaw => AugKind::Jigsaw,
        };
        Augmenter { kind, cutout }
    }

    /// Original views only: what a `--prob 1.0` batch (every sample an original view) uses.
    pub fn none() -> Self {
        Augmenter { kind: AugKind::Default, cutout: 0 }
    }

    /// Writes the augmented view of `src` (HWC, `h` x `w`) into `out` and says what was applied.
    /// Every draw comes from `rng`, in the reference's order: the policy op(s), the crop and flip,
    /// the jigsaw permutation, the cutout centre.
    pub fn augmented_view(&self, src: &[u8], h: usize, w: usize, rng: &mut ChaCha8Rng, out: &mut [u8]) -> Applied {
        let n = h * w * 3;
        // the policy's ops run on a copy of the source, before the crop
        let (mut img, mut scratch) = (Vec::new(), Vec::new());
        let start = |img: &mut Vec<u8>, scratch: &mut Vec<u8>| {
            img.extend_from_slice(&src[..n]);
            scratch.resize(n, 0);
        };
        let ops = match &self.kind {
            AugKind::Default | AugKind::Jigsaw => Vec::new(),
            AugKind::RandAugment(ra) => {
                start(&mut img, &mut scratch);
                let drawn = ra.draw(rng);
                RandAugment::apply(&drawn, &mut img, h, w, &mut scratch)
            }
            AugKind::AutoAugment(aa) => {
                start(&mut img, &mut scratch);
                aa.apply(&mut img, h, w, &mut scratch, rng)
            }
            AugKind::Rotate => {
                let angle = jigsaw::draw_quarter_turn(rng);
                img.resize(n, 0);
                geometry::rotate(src, h, w, angle, &mut img);
                vec![AppliedOp { name: "Rotate", value: angle as f32 }]
            }
        };
        let mut applied = Applied { ops, cutout: None };
        CropFlip::draw(h, w, rng).apply(if img.is_empty() { src } else { &img }, h, w, out);
        if self.kind == AugKind::Jigsaw {
            let perm = jigsaw::draw_permutation(rng);
            jigsaw::jigsaw(&mut out[..n], h, w, perm);
            let code = perm.iter().fold(0, |acc, &p| acc * 10 + p);
            applied.ops.push(AppliedOp { name: "Jigsaw", value: code as f32 });
        }
        if self.cutout > 0 {
            applied.cutout = Some(jigsaw::draw_cutout(self.cutout, h, w, rng));
        }
        applied
    }
}

/// Writes the original view of `src` into `out`: crop with zero padding `h / 8`, random flip.
pub fn original_view(src: &[u8], h: usize, w: usize, rng: &mut ChaCha8Rng, out: &mut [u8]) {
    CropFlip::draw(h, w, rng).apply(src, h, w, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ImageSet;
    use crate::pipeline::{assemble, Batch, EpochPlan, Views};
    use rand::SeedableRng;

    fn set(n: usize) -> ImageSet {
        let mut s = ImageSet::new(16, 16);
        for i in 0..n {
            let img: Vec<u8> = (0..16 * 16 * 3).map(|p| ((p * 7 + i * 31) % 251) as u8).collect();
            s.push(&img, 0);
        }
        s
    }

    #[test]
    fn names_resolve_to_policies() {
        let ra = Augmenter::new(AugName::RandAugment, 2, 28, 16, DatasetName::Cifar10);
        assert_eq!((ra.kind, ra.cutout), (AugKind::RandAugment(RandAugment { n: 2, m: 28 }), 16));
        let aa = Augmenter::new(AugName::AutoAugment, 0, 0, 0, DatasetName::Svhn);
        assert_eq!(aa.kind, AugKind::AutoAugment(AutoAugment { policy: &autoaugment::SVHN_POLICY }));
        let aa = Augmenter::new(AugName::AutoAugment, 0, 0, 0, DatasetName::Cifar100);
        assert_eq!(aa.kind, AugKind::AutoAugment(AutoAugment { policy: &autoaugment::CIFAR10_POLICY }));
    }

    #[test]
    fn every_policy_draws_only_from_its_rng_and_reports_what_it_did() {
        let s = set(1);
        for (aug, cutout) in [("ra", 16), ("aa", 0), ("rotate", 8), ("jigsaw", 16), ("default", 4)] {
            let a = Augmenter::new(aug.parse().unwrap(), 3, 28, cutout, DatasetName::Cifar10);
            let (mut x, mut y) = (vec![0u8; s.image_bytes()], vec![0u8; s.image_bytes()]);
            let ax = a.augmented_view(s.image(0), 16, 16, &mut ChaCha8Rng::seed_from_u64(4), &mut x);
            let ay = a.augmented_view(s.image(0), 16, 16, &mut ChaCha8Rng::seed_from_u64(4), &mut y);
            assert_eq!((&x, &ax), (&y, &ay), "{aug}");
            assert_eq!(ax.cutout.is_some(), cutout > 0, "{aug}");
            match aug {
                "ra" => assert_eq!(ax.ops.len(), 3),
                "rotate" | "jigsaw" => assert_eq!(ax.ops.len(), 1),
                "default" => assert!(ax.ops.is_empty()),
                _ => assert!(ax.ops.len() <= 2),
            }
        }
    }

    #[test]
    fn augmented_batches_do_not_depend_on_the_thread_count() {
        let s = set(24);
        let indices: Vec<usize> = (0..24).collect();
        let plan =
            EpochPlan { seed: 3, epoch: 1, batch_size: 24, shuffle: false, drop_last: false, views: Views::Both };
        for aug in ["ra", "aa", "rotate", "jigsaw"] {
            let a = Augmenter::new(aug.parse().unwrap(), 2, 28, 8, DatasetName::Cifar10);
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let mut b = Batch::default();
                pool.install(|| assemble(&s, &indices, &plan, &a, &mut b));
                (b.images, b.applied)
            };
            let one = run(1);
            assert_eq!(one, run(3), "{aug}");
            assert_eq!(one, run(2), "{aug}");
        }
    }
}
