//! The two views of a training sample on uint8 HWC images: the original view (random crop with
//! zero padding, then a random horizontal flip) and the augmented view chosen by `--aug`.

pub mod autoaugment;
pub mod color;
mod crop;
pub mod cutout;
pub mod filters;
pub mod geometry;
pub mod imagenet;
pub mod jigsaw;
pub mod ops;
pub mod randaugment;
pub mod rotation;
pub mod severe;

pub use autoaugment::AutoAugment;
pub use crop::CropFlip;
pub use ops::{Op, OpName};
pub use randaugment::RandAugment;
pub use severe::SevereAugment;

use crate::config::{AugName, DatasetName};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The reference's GaussianBlur draws its sigma uniformly from this range.
pub const BLUR_SIGMA: (f64, f64) = (0.6, 2.0);

/// One operation applied to an augmented view, with the value it was applied with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AppliedOp {
    pub name: OpName,
    pub value: f32,
}

/// What was applied to one augmented view: the named ops (in order) and the cutout box
/// `[y0, y1, x0, x1)` to be zeroed after normalisation, if any.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Applied {
    pub ops: Vec<AppliedOp>,
    pub cutout: Option<[u16; 4]>,
}

/// How the views are made: the `--aug` policy, `--cutout` length and the crop's zero padding
/// (`None`: an eighth of the side).
#[derive(Debug, Clone)]
pub struct Augmenter {
    pub kind: AugKind,
    pub cutout: usize,
    pub crop_padding: Option<usize>,
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
    /// The reference's SevereAugment(N, M) before the crop.
    Severe(SevereAugment),
    /// A vertical flip after the crop and flip.
    Vertical,
    /// Pillow's Gaussian blur, sigma from U(0.6, 2.0), before the crop.
    Blur,
    /// scikit-image's Sobel edge magnitude before the crop.
    Sobel,
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
            AugName::Severe => AugKind::Severe(SevereAugment { n, m }),
            AugName::Vertical => AugKind::Vertical,
            AugName::Blur => AugKind::Blur,
            AugName::Sobel => AugKind::Sobel,
        };
        Augmenter { kind, cutout, crop_padding: None }
    }

    /// Original views only: what a `--prob 1.0` batch (every sample an original view) uses.
    pub fn none() -> Self {
        Augmenter { kind: AugKind::Default, cutout: 0, crop_padding: None }
    }

    /// The same augmentation with the crop's zero padding set (`None`: an eighth of the side).
    pub fn with_crop_padding(mut self, crop_padding: Option<usize>) -> Self {
        self.crop_padding = crop_padding;
        self
    }

    /// Writes the original view of `src` (HWC `h` x `w`) into `out`: the random crop with zero
    /// padding, then the random horizontal flip.
    pub fn original_view(&self, src: &[u8], h: usize, w: usize, rng: &mut ChaCha8Rng, out: &mut [u8]) {
        CropFlip::draw(h, w, self.crop_padding, rng).apply(src, h, w, out);
    }

    /// Writes the augmented view of `src` (HWC, `h` x `w`) into `out` and says what was applied.
    /// Every draw comes from `rng`, in the reference's order: the policy op(s), the crop and flip,
    /// the jigsaw permutation, the cutout centre. Vertical flips after the crop and flip, as the
    /// reference inserts it at position 2 of its transforms.
    pub fn augmented_view(&self, src: &[u8], h: usize, w: usize, rng: &mut ChaCha8Rng, out: &mut [u8]) -> Applied {
        let n = h * w * 3;
        // the policy's ops run on a copy of the source, before the crop
        let (mut img, mut scratch) = (Vec::new(), Vec::new());
        let start = |img: &mut Vec<u8>, scratch: &mut Vec<u8>| {
            img.extend_from_slice(&src[..n]);
            scratch.resize(n, 0);
        };
        let ops = match &self.kind {
            AugKind::Default | AugKind::Jigsaw | AugKind::Vertical => Vec::new(),
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
                let angle = rotation::draw_quarter_turn(rng);
                img.resize(n, 0);
                geometry::rotate(src, h, w, angle, &mut img);
                vec![AppliedOp { name: Op::Rotate.into(), value: angle as f32 }]
            }
            AugKind::Severe(sa) => {
                start(&mut img, &mut scratch);
                let drawn = sa.draw(h, w, rng);
                SevereAugment::apply(&drawn, &mut img, h, w, &mut scratch)
            }
            AugKind::Blur => {
                let sigma = rng.random_range(BLUR_SIGMA.0..BLUR_SIGMA.1);
                img.resize(n, 0);
                filters::gaussian_blur(src, h, w, sigma, &mut img);
                vec![AppliedOp { name: OpName::GaussianBlur, value: sigma as f32 }]
            }
            AugKind::Sobel => {
                img.resize(n, 0);
                filters::sobel(src, h, w, &mut img);
                vec![AppliedOp { name: OpName::Sobel, value: 0.0 }]
            }
        };
        let mut applied = Applied { ops, cutout: None };
        self.original_view(if img.is_empty() { src } else { &img }, h, w, rng, out);
        if self.kind == AugKind::Vertical {
            filters::flip_vertical(&mut out[..n], h, w);
            applied.ops.push(AppliedOp { name: OpName::VerticalFlip, value: 1.0 });
        }
        if self.kind == AugKind::Jigsaw {
            let perm = jigsaw::draw_permutation(rng);
            jigsaw::jigsaw(&mut out[..n], h, w, perm);
            let code = perm.iter().fold(0, |acc, &p| acc * 10 + p);
            applied.ops.push(AppliedOp { name: OpName::Jigsaw, value: code as f32 });
        }
        if self.cutout > 0 {
            applied.cutout = Some(cutout::draw_cutout(self.cutout, h, w, rng));
        }
        applied
    }
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
        for (aug, cutout) in [
            ("ra", 16),
            ("aa", 0),
            ("rotate", 8),
            ("jigsaw", 16),
            ("default", 4),
            ("severe", 0),
            ("vertical", 4),
            ("blur", 0),
            ("sobel", 2),
        ] {
            let a = Augmenter::new(aug.parse().unwrap(), 3, 28, cutout, DatasetName::Cifar10);
            let (mut x, mut y) = (vec![0u8; s.image_bytes()], vec![0u8; s.image_bytes()]);
            let ax = a.augmented_view(s.image(0), 16, 16, &mut ChaCha8Rng::seed_from_u64(4), &mut x);
            let ay = a.augmented_view(s.image(0), 16, 16, &mut ChaCha8Rng::seed_from_u64(4), &mut y);
            assert_eq!((&x, &ax), (&y, &ay), "{aug}");
            assert_eq!(ax.cutout.is_some(), cutout > 0, "{aug}");
            match aug {
                "ra" | "severe" => assert_eq!(ax.ops.len(), 3),
                "rotate" | "jigsaw" | "vertical" | "blur" | "sobel" => assert_eq!(ax.ops.len(), 1),
                "default" => assert!(ax.ops.is_empty()),
                _ => assert!(ax.ops.len() <= 2),
            }
        }
    }

    #[test]
    fn vertical_flips_the_view_after_the_crop_and_flip() {
        let s = set(1);
        let (mut plain, mut flipped) = (vec![0u8; s.image_bytes()], vec![0u8; s.image_bytes()]);
        let default = Augmenter::new(AugName::Default, 0, 0, 0, DatasetName::Cifar10);
        default.augmented_view(s.image(0), 16, 16, &mut ChaCha8Rng::seed_from_u64(8), &mut plain);
        let vertical = Augmenter::new(AugName::Vertical, 0, 0, 0, DatasetName::Cifar10);
        vertical.augmented_view(s.image(0), 16, 16, &mut ChaCha8Rng::seed_from_u64(8), &mut flipped);
        filters::flip_vertical(&mut plain, 16, 16);
        assert_eq!(plain, flipped);
    }

    #[test]
    fn crop_padding_reaches_both_views() {
        let s = set(1);
        let mut out = vec![0u8; s.image_bytes()];
        // a padding of the whole side: some draws crop only zeros
        let wide = Augmenter::none().with_crop_padding(Some(16));
        let black = (0..200).any(|seed| {
            wide.original_view(s.image(0), 16, 16, &mut ChaCha8Rng::seed_from_u64(seed), &mut out);
            out.iter().all(|&v| v == 0)
        });
        assert!(black);
        let none = Augmenter::none().with_crop_padding(Some(0));
        let flip = Augmenter::new(AugName::Default, 0, 0, 0, DatasetName::Cifar10).with_crop_padding(Some(0));
        for seed in 0..20 {
            none.original_view(s.image(0), 16, 16, &mut ChaCha8Rng::seed_from_u64(seed), &mut out);
            assert!(out == s.image(0) || out[..3] == s.image(0)[15 * 3..16 * 3], "only the flip moves pixels");
            flip.augmented_view(s.image(0), 16, 16, &mut ChaCha8Rng::seed_from_u64(seed), &mut out);
            assert!(out == s.image(0) || out[..3] == s.image(0)[15 * 3..16 * 3]);
        }
    }

    #[test]
    fn augmented_batches_do_not_depend_on_the_thread_count() {
        let s = set(24);
        let indices: Vec<usize> = (0..24).collect();
        let plan =
            EpochPlan { seed: 3, epoch: 1, batch_size: 24, shuffle: false, drop_last: false, views: Views::Both };
        for aug in ["ra", "aa", "rotate", "jigsaw", "severe", "vertical", "blur", "sobel"] {
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
