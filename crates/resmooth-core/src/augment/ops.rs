//! The image operations of RandAugment and AutoAugment, by name, each applied with an explicit
//! value exactly as the reference's op functions pass it to Pillow (signs already chosen); and
//! [`OpName`], every name an augmented view records as applied, spelled once for the files that
//! write and read them.

use super::{color, geometry};

/// One image operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Identity,
    ShearX,
    ShearY,
    TranslateX,
    TranslateY,
    Rotate,
    AutoContrast,
    Invert,
    Equalize,
    Solarize,
    Posterize,
    Color,
    Brightness,
    Sharpness,
    Contrast,
}

impl Op {
    /// Every op, the 14 of RandAugment first, then Contrast (AutoAugment only).
    pub const ALL: [Op; 15] = [
        Op::Identity,
        Op::ShearX,
        Op::ShearY,
        Op::TranslateX,
        Op::TranslateY,
        Op::Rotate,
        Op::AutoContrast,
        Op::Invert,
        Op::Equalize,
        Op::Solarize,
        Op::Posterize,
        Op::Color,
        Op::Brightness,
        Op::Sharpness,
        Op::Contrast,
    ];

    /// The op's name, as in the reference.
    pub fn name(self) -> &'static str {
        match self {
            Op::Identity => "Identity",
            Op::ShearX => "ShearX",
            Op::ShearY => "ShearY",
            Op::TranslateX => "TranslateX",
            Op::TranslateY => "TranslateY",
            Op::Rotate => "Rotate",
            Op::AutoContrast => "AutoContrast",
            Op::Invert => "Invert",
            Op::Equalize => "Equalize",
            Op::Solarize => "Solarize",
            Op::Posterize => "Posterize",
            Op::Color => "Color",
            Op::Brightness => "Brightness",
            Op::Sharpness => "Sharpness",
            Op::Contrast => "Contrast",
        }
    }

    /// The op called `name` (case-insensitive).
    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.name().eq_ignore_ascii_case(name))
    }

    /// Writes `op(src, value)` into `out` (both HWC `h` x `w`): Pillow's pixels for the reference's
    /// `Op(img, value)` without its random sign flip.
    pub fn apply(self, src: &[u8], h: usize, w: usize, value: f64, out: &mut [u8]) {
        let n = h * w * 3;
        let (src, out) = (&src[..n], &mut out[..n]);
        match self {
            Op::Identity => out.copy_from_slice(src),
            Op::ShearX => geometry::affine_nearest(src, h, w, [1.0, value, 0.0, 0.0, 1.0, 0.0], out),
            Op::ShearY => geometry::affine_nearest(src, h, w, [1.0, 0.0, 0.0, value, 1.0, 0.0], out),
            Op::TranslateX => geometry::affine_nearest(src, h, w, [1.0, 0.0, value * w as f64, 0.0, 1.0, 0.0], out),
            Op::TranslateY => geometry::affine_nearest(src, h, w, [1.0, 0.0, 0.0, 0.0, 1.0, value * h as f64], out),
            Op::Rotate => geometry::rotate(src, h, w, value, out),
            Op::AutoContrast => color::autocontrast(src, out),
            Op::Invert => color::invert(src, out),
            Op::Equalize => color::equalize(src, out),
            Op::Solarize => color::solarize(src, value, out),
            Op::Posterize => color::posterize(src, value.clamp(0.0, 8.0) as u32, out),
            Op::Color => color::color(src, value, out),
            Op::Brightness => color::brightness(src, value, out),
            Op::Sharpness => color::sharpness(src, h, w, value, out),
            Op::Contrast => color::contrast(src, value, out),
        }
    }
}

/// What an augmented view records as applied: one of the image ops, or a step of a policy that
/// is not one of them. Its spelling is what `losses.csv`, the detection report, the HTML report
/// and `augment preview` show, and what `losses.csv` is read back by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpName {
    /// An image op (RandAugment, AutoAugment, SevereAugment's geometric ops, `--aug rotate`).
    Op(Op),
    /// `--aug jigsaw`; the value is the permutation's digits (`2301`).
    Jigsaw,
    /// `--aug blur`; the value is sigma.
    GaussianBlur,
    /// `--aug sobel`.
    Sobel,
    /// `--aug vertical`.
    VerticalFlip,
    /// SevereAugment's grey square (value `v`). The box of `--cutout` is written under the same
    /// name, with `y0:y1,x0:x1` for its value.
    Cutout,
}

/// A name that is none of [`OpName`]'s.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unknown op '{0}'")]
pub struct UnknownOp(pub String);

impl OpName {
    /// The steps of policies that are not image ops.
    pub const STEPS: [OpName; 5] =
        [OpName::Jigsaw, OpName::GaussianBlur, OpName::Sobel, OpName::VerticalFlip, OpName::Cutout];

    /// Every name, the image ops first.
    pub fn all() -> impl Iterator<Item = OpName> {
        Op::ALL.into_iter().map(OpName::Op).chain(Self::STEPS)
    }

    /// The spelling in files and on screen (the reference's op names where it has them).
    pub fn name(self) -> &'static str {
        match self {
            OpName::Op(op) => op.name(),
            OpName::Jigsaw => "Jigsaw",
            OpName::GaussianBlur => "GaussianBlur",
            OpName::Sobel => "Sobel",
            OpName::VerticalFlip => "VerticalFlip",
            OpName::Cutout => "Cutout",
        }
    }
}

impl From<Op> for OpName {
    fn from(op: Op) -> Self {
        OpName::Op(op)
    }
}

impl std::str::FromStr for OpName {
    type Err = UnknownOp;

    /// The name spelled exactly `s` (as [`OpName::name`] writes it).
    fn from_str(s: &str) -> Result<Self, UnknownOp> {
        OpName::all().find(|n| n.name() == s).ok_or_else(|| UnknownOp(s.to_string()))
    }
}

impl std::fmt::Display for OpName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for op in Op::ALL {
            assert_eq!(Op::from_name(op.name()), Some(op));
            assert_eq!(Op::from_name(&op.name().to_lowercase()), Some(op));
        }
        assert_eq!(Op::from_name("Cutout"), None);
    }

    #[test]
    fn every_applied_name_reads_back_and_the_spellings_are_distinct() {
        let names: Vec<OpName> = OpName::all().collect();
        assert_eq!(names.len(), 20);
        for n in &names {
            assert_eq!(n.name().parse::<OpName>(), Ok(*n));
            assert_eq!(n.to_string(), n.name());
        }
        let spellings: std::collections::HashSet<&str> = names.iter().map(|n| n.name()).collect();
        assert_eq!(spellings.len(), names.len());
        assert_eq!("Rotate".parse::<OpName>(), Ok(OpName::Op(Op::Rotate)));
        assert_eq!("GaussianBlur".parse::<OpName>(), Ok(OpName::GaussianBlur));
        assert_eq!("rotate".parse::<OpName>(), Err(UnknownOp("rotate".into())), "files are read as written");
    }

    #[test]
    fn neutral_values_leave_the_image() {
        let (h, w) = (6, 9);
        let src: Vec<u8> = (0..h * w * 3).map(|i| (i * 37 % 256) as u8).collect();
        let mut out = vec![0; src.len()];
        for (op, v) in [
            (Op::ShearX, 0.0),
            (Op::TranslateY, 0.0),
            (Op::Rotate, 0.0),
            (Op::Rotate, 360.0),
            (Op::Solarize, 256.0),
            (Op::Posterize, 8.0),
            (Op::Color, 1.0),
            (Op::Sharpness, 1.0),
        ] {
            op.apply(&src, h, w, v, &mut out);
            assert_eq!(out, src, "{op:?} {v}");
        }
    }

    #[test]
    fn translate_moves_content_by_the_fraction_of_the_size() {
        let (h, w) = (4, 10);
        let src: Vec<u8> = (0..h * w * 3).map(|i| (i / 3 % w) as u8 + 1).collect();
        let mut out = vec![0; src.len()];
        Op::TranslateX.apply(&src, h, w, 0.2, &mut out);
        // out(x) = src(x + 2): the content moves left, the right edge is black
        assert_eq!(out[0], 3);
        assert_eq!(out[(w - 1) * 3], 0);
    }
}
