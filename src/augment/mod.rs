//! The two views of a training sample on uint8 HWC images: the original view (random crop with
//! zero padding, then a random horizontal flip) and the augmented view chosen by `--aug`.

pub mod autoaugment;
pub mod color;
mod crop;
mod font;
pub mod geometry;
pub mod jigsaw;
pub mod ops;
pub mod randaugment;
pub mod tools;

pub use autoaugment::AutoAugment;
pub use crop::{crop_flip, CropFlip};
pub use ops::Op;
pub use randaugment::RandAugment;

use rand_chacha::ChaCha8Rng;

/// The augmentation names `--aug` accepts.
pub const AUGMENTATIONS: [&str; 5] = ["ra", "aa", "rotate", "jigsaw", "default"];

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
    /// Resolves `--aug`, `--N`, `--M` and `--cutout` for `dataset`.
    pub fn from_flags(aug: &str, n: usize, m: usize, cutout: usize, dataset: &str) -> Result<Self, String> {
        let kind = match aug {
            "default" => AugKind::Default,
            "ra" => {
                if m > 30 {
                    return Err(format!("--M {m} is outside 0..=30"));
                }
                AugKind::RandAugment(RandAugment { n, m })
            }
            "aa" => AugKind::AutoAugment(AutoAugment::for_dataset(dataset)),
            "rotate" => AugKind::Rotate,
            "jigsaw" => AugKind::Jigsaw,
            other => return Err(format!("unknown --aug '{other}'; expected one of {}", AUGMENTATIONS.join(", "))),
        };
        Ok(Augmenter { kind, cutout })
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
