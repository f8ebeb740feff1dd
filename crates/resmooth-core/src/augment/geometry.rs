//! Pillow's geometric transforms on uint8 RGB (HWC) images, pixel for pixel: `Image.transform(size,
//! AFFINE, a, NEAREST)` with black fill, `Image.rotate(angle)` (counter-clockwise about the centre,
//! same size) and the 90/180/270 degree transposes it takes as shortcuts.
//!
//! Pillow samples the source at the pixel centre `(x + 0.5, y + 0.5)` mapped through `a`, and picks
//! one of three engines, whose roundings differ, by the form of `a`: a pure scale/translation walks
//! the rows in floating point, anything else uses 16.16 fixed point when the image corners map into
//! +-32768, floating point otherwise. Each is reproduced here.

/// `int(v)` for Pillow's nearest lookup: -1 below zero, truncation above.
fn coord(v: f64) -> i64 {
    if v < 0.0 {
        -1
    } else {
        v as i64
    }
}

fn copy_px(src: &[u8], si: usize, out: &mut [u8], oi: usize) {
    out[oi * 3..oi * 3 + 3].copy_from_slice(&src[si * 3..si * 3 + 3]);
}

/// `out(x, y) = src(a0 x' + a1 y' + a2, a3 x' + a4 y' + a5)` with `x' = x + 0.5`, `y' = y + 0.5`,
/// nearest sampling, black outside the source: Pillow's `transform(AFFINE, a, NEAREST)`.
pub fn affine_nearest(src: &[u8], h: usize, w: usize, a: [f64; 6], out: &mut [u8]) {
    out[..h * w * 3].fill(0);
    if a[1] == 0.0 && a[3] == 0.0 {
        scale_affine(src, h, w, a, out);
        return;
    }
    let fits =
        |x: f64, y: f64| (x * a[0] + y * a[1] + a[2]).abs() < 32768.0 && (x * a[3] + y * a[4] + a[5]).abs() < 32768.0;
    let (wf, hf) = (w as f64, h as f64);
    if fits(0.0, 0.0) && fits(wf, hf) && fits(0.0, hf) && fits(wf, 0.0) {
        fixed_affine(src, h, w, a, out);
    } else {
        float_affine(src, h, w, a, out);
    }
}

/// Scale/translation only: columns tabulated once, both axes stepped in floating point.
fn scale_affine(src: &[u8], h: usize, w: usize, a: [f64; 6], out: &mut [u8]) {
    let mut table = vec![0usize; w];
    let (mut xmin, mut xmax) = (w, 0);
    let mut xo = a[2] + a[0] * 0.5;
    for (x, t) in table.iter_mut().enumerate() {
        let xi = coord(xo);
        if xi >= 0 && (xi as usize) < w {
            xmax = x + 1;
            xmin = xmin.min(x);
            *t = xi as usize;
        }
        xo += a[0];
    }
    let mut yo = a[5] + a[4] * 0.5;
    for y in 0..h {
        let yi = coord(yo);
        if yi >= 0 && (yi as usize) < h {
            let row = yi as usize * w;
            for (x, &t) in table.iter().enumerate().take(xmax).skip(xmin) {
                copy_px(src, row + t, out, y * w + x);
            }
        }
        yo += a[4];
    }
}

/// Pillow's `FLOOR(v * 65536 + 0.5)` into a C int.
fn fix(v: f64) -> i32 {
    let v = v * 65536.0 + 0.5;
    if v < 0.0 {
        v.floor() as i32
    } else {
        v as i32
    }
}

/// General affine map in 16.16 fixed point.
fn fixed_affine(src: &[u8], h: usize, w: usize, a: [f64; 6], out: &mut [u8]) {
    let (a0, a1, a3, a4) = (fix(a[0]), fix(a[1]), fix(a[3]), fix(a[4]));
    let mut a2 = fix(a[2] + a[0] * 0.5 + a[1] * 0.5);
    let mut a5 = fix(a[5] + a[3] * 0.5 + a[4] * 0.5);
    for y in 0..h {
        let (mut xx, mut yy) = (a2, a5);
        for x in 0..w {
            let xin = xx >> 16;
            if xin >= 0 && (xin as usize) < w {
                let yin = yy >> 16;
                if yin >= 0 && (yin as usize) < h {
                    copy_px(src, yin as usize * w + xin as usize, out, y * w + x);
                }
            }
            xx = xx.wrapping_add(a0);
            yy = yy.wrapping_add(a3);
        }
        a2 = a2.wrapping_add(a1);
        a5 = a5.wrapping_add(a4);
    }
}

/// General affine map in floating point (maps that leave the fixed-point range).
fn float_affine(src: &[u8], h: usize, w: usize, a: [f64; 6], out: &mut [u8]) {
    let mut xo = a[2] + a[1] * 0.5 + a[0] * 0.5;
    let mut yo = a[5] + a[4] * 0.5 + a[3] * 0.5;
    for y in 0..h {
        let (mut xx, mut yy) = (xo, yo);
        for x in 0..w {
            let xin = coord(xx);
            if xin >= 0 && (xin as usize) < w {
                let yin = coord(yy);
                if yin >= 0 && (yin as usize) < h {
                    copy_px(src, yin as usize * w + xin as usize, out, y * w + x);
                }
            }
            xx += a[0];
            yy += a[3];
        }
        xo += a[1];
        yo += a[4];
    }
}

/// Python's `a % b` on floats (the result takes the sign of `b`).
fn py_mod(a: f64, b: f64) -> f64 {
    let m = a % b;
    if m == 0.0 {
        0f64.copysign(b)
    } else if (b < 0.0) != (m < 0.0) {
        m + b
    } else {
        m
    }
}

/// Python's `round(v, 15)`: the nearest double to `v` rounded to 15 decimals.
fn round15(v: f64) -> f64 {
    format!("{v:.15}").parse().unwrap_or(v)
}

/// The 90-degree turns and the half turn, as Pillow's transposes (`out` is `w` x `h` for 90/270).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    Ccw90,
    Half,
    Ccw270,
}

/// Rotates `src` by a quarter or half turn counter-clockwise (Pillow's ROTATE_90/180/270).
pub fn turn(src: &[u8], h: usize, w: usize, t: Turn, out: &mut [u8]) {
    for y in 0..h {
        for x in 0..w {
            let o = match t {
                Turn::Ccw90 => (w - 1 - x) * h + y,
                Turn::Half => (h - 1 - y) * w + (w - 1 - x),
                Turn::Ccw270 => x * h + (h - 1 - y),
            };
            copy_px(src, y * w + x, out, o);
        }
    }
}

/// Pillow's `Image.rotate(angle)`: counter-clockwise in degrees about the image centre, nearest
/// sampling, same size, black fill (with its exact shortcuts for 0, 180 and square 90/270).
pub fn rotate(src: &[u8], h: usize, w: usize, angle: f64, out: &mut [u8]) {
    let angle = py_mod(angle, 360.0);
    if angle == 0.0 {
        out[..h * w * 3].copy_from_slice(&src[..h * w * 3]);
        return;
    }
    if angle == 180.0 {
        return turn(src, h, w, Turn::Half, out);
    }
    if (angle == 90.0 || angle == 270.0) && h == w {
        return turn(src, h, w, if angle == 90.0 { Turn::Ccw90 } else { Turn::Ccw270 }, out);
    }
    let rad = -(angle * (std::f64::consts::PI / 180.0));
    let (c, s) = (round15(rad.cos()), round15(rad.sin()));
    let ms = round15(-rad.sin());
    let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
    let a2 = c * -cx + s * -cy + 0.0 + cx;
    let a5 = ms * -cx + c * -cy + 0.0 + cy;
    affine_nearest(src, h, w, [c, s, a2, ms, c, a5], out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(h: usize, w: usize) -> Vec<u8> {
        (0..h * w * 3).map(|i| (i * 7 % 256) as u8).collect()
    }

    #[test]
    fn identity_map_copies_in_every_engine() {
        let (h, w) = (5, 7);
        let src = img(h, w);
        let mut out = vec![0; h * w * 3];
        affine_nearest(&src, h, w, [1.0, 0.0, 0.0, 0.0, 1.0, 0.0], &mut out);
        assert_eq!(out, src);
        fixed_affine(&src, h, w, [1.0, 0.0, 0.0, 0.0, 1.0, 0.0], &mut out);
        assert_eq!(out, src);
        out.fill(0);
        float_affine(&src, h, w, [1.0, 0.0, 0.0, 0.0, 1.0, 0.0], &mut out);
        assert_eq!(out, src);
    }

    #[test]
    fn turns_compose_to_the_identity() {
        let (h, w) = (3, 5);
        let src = img(h, w);
        let (mut a, mut b) = (vec![0; h * w * 3], vec![0; h * w * 3]);
        turn(&src, h, w, Turn::Ccw90, &mut a);
        turn(&a, w, h, Turn::Ccw270, &mut b);
        assert_eq!(b, src);
        turn(&src, h, w, Turn::Half, &mut a);
        turn(&a, h, w, Turn::Half, &mut b);
        assert_eq!(b, src);
        // counter-clockwise: the top-right pixel goes to the top-left
        turn(&src, h, w, Turn::Ccw90, &mut a);
        assert_eq!(a[..3], src[(w - 1) * 3..w * 3]);
    }

    #[test]
    fn python_mod_and_round() {
        assert_eq!(py_mod(-28.0, 360.0), 332.0);
        assert_eq!(py_mod(720.0, 360.0), 0.0);
        assert_eq!(round15(0.1 + 0.2), 0.3);
        assert_eq!(round15(-1.0), -1.0);
    }
}
