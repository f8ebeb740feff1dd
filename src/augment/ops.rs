//! The image operations of RandAugment and AutoAugment, by name, each applied with an explicit
//! value exactly as the reference's op functions pass it to Pillow (signs already chosen).

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

    /// What `value` means for this op (for `--help` and error messages).
    pub fn value_meaning(self) -> &'static str {
        match self {
            Op::Identity | Op::AutoContrast | Op::Invert | Op::Equalize => "ignored",
            Op::ShearX | Op::ShearY => "shear coefficient (reference range +-0.3)",
            Op::TranslateX => "shift as a fraction of the width (reference range +-0.45)",
            Op::TranslateY => "shift as a fraction of the height (reference range +-0.45)",
            Op::Rotate => "degrees counter-clockwise (reference range +-30)",
            Op::Solarize => "threshold: values >= it are inverted (0..=256)",
            Op::Posterize => "bits kept, int(value) (4..=8)",
            Op::Color | Op::Brightness | Op::Sharpness | Op::Contrast => "enhancement factor (1 = unchanged)",
        }
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
