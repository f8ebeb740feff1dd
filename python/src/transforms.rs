//! One image in, one image out: the ops with a given value (`resmooth.ops.apply`) and the random
//! transforms of `resmooth.transforms`, each drawing from a generator seeded by the call's key.

use crate::Image;
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray3};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use resmooth_core::augment::cutout::{draw_cutout, fill_cutout};
use resmooth_core::augment::{AppliedOp, AugKind, AutoAugment, CropFlip, Op, RandAugment, SevereAugment};
use resmooth_core::config::{check_magnitude, AugName, DatasetName};

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(op_names, m)?)?;
    m.add_function(wrap_pyfunction!(apply_op, m)?)?;
    m.add_function(wrap_pyfunction!(augment, m)?)?;
    m.add_function(wrap_pyfunction!(cutout_box, m)?)?;
    Ok(())
}

/// The names `apply_op` takes, the reference's spelling.
#[pyfunction]
fn op_names() -> Vec<&'static str> {
    Op::ALL.map(Op::name).to_vec()
}

/// `op` applied to `image` with `value`, as the reference's op function hands it to Pillow.
#[pyfunction]
fn apply_op<'py>(
    py: Python<'py>,
    image: PyReadonlyArray3<'py, u8>,
    op: &str,
    value: f64,
) -> PyResult<Bound<'py, PyAny>> {
    let parsed = Op::from_name(op).ok_or_else(|| {
        PyValueError::new_err(format!("unknown op '{op}'; expected one of {}", op_names().join(", ")))
    })?;
    if !value.is_finite() {
        return Err(PyValueError::new_err(format!("value {value} must be a finite number")));
    }
    let img = Image::borrow(&image)?;
    let out = py.detach(|| {
        let mut out = vec![0u8; img.pixels.len()];
        parsed.apply(img.pixels, img.height, img.width, value, &mut out);
        out
    });
    Ok(PyArray1::from_vec(py, out).reshape([img.height, img.width, 3])?.into_any())
}

/// What a transform applied, as (name, values): an op's value, a box's corners, a crop's offset.
type Trace = Vec<(&'static str, Vec<f64>)>;

/// A random transform of `resmooth.transforms`.
#[derive(Debug, Clone, PartialEq)]
enum Transform {
    /// An `--aug` policy of the reference (its ops before the crop, or after it for jigsaw and
    /// vertical), without the crop and flip.
    Policy(AugKind),
    /// The reference's cutout box of side `size`, filled with `fill`.
    Cutout { size: usize, fill: [u8; 3] },
    /// RandomCrop to the image's own size with `padding` zeros on each side.
    RandomCrop { padding: usize },
    /// A horizontal flip with probability `p`.
    HorizontalFlip { p: f64 },
}

/// What the Python side asks for: a kind and the parameters that kind reads.
struct Request<'a> {
    kind: &'a str,
    n: usize,
    m: usize,
    policy: &'a str,
    size: usize,
    padding: usize,
    p: f64,
    fill: [u8; 3],
}

impl Transform {
    fn new(r: &Request) -> PyResult<Transform> {
        // the magnitude's range is the configuration's; its message names the flag --M
        let magnitude = |aug: AugName| -> PyResult<usize> {
            check_magnitude(aug, r.m).map_err(|e| PyValueError::new_err(e.to_string().replacen("--M ", "m=", 1)))?;
            Ok(r.m)
        };
        Ok(match r.kind {
            "randaugment" => {
                Transform::Policy(AugKind::RandAugment(RandAugment { n: r.n, m: magnitude(AugName::RandAugment)? }))
            }
            "severe" => Transform::Policy(AugKind::Severe(SevereAugment { n: r.n, m: magnitude(AugName::Severe)? })),
            "autoaugment" => {
                let dataset = match r.policy {
                    "cifar10" => DatasetName::Cifar10,
                    "svhn" => DatasetName::Svhn,
                    other => {
                        return Err(PyValueError::new_err(format!(
                            "AutoAugment policy '{other}' is not known; expected 'cifar10' or 'svhn' (the reference's)"
                        )))
                    }
                };
                Transform::Policy(AugKind::AutoAugment(AutoAugment::for_dataset(dataset)))
            }
            "rotate" => Transform::Policy(AugKind::Rotate),
            "jigsaw" => Transform::Policy(AugKind::Jigsaw),
            "blur" => Transform::Policy(AugKind::Blur),
            "sobel" => Transform::Policy(AugKind::Sobel),
            "vertical" => Transform::Policy(AugKind::Vertical),
            "cutout" => Transform::Cutout { size: r.size, fill: r.fill },
            "crop" => Transform::RandomCrop { padding: r.padding },
            "hflip" => {
                if !(0.0..=1.0).contains(&r.p) {
                    return Err(PyValueError::new_err(format!("p={} must be within [0, 1]", r.p)));
                }
                Transform::HorizontalFlip { p: r.p }
            }
            other => return Err(PyValueError::new_err(format!("unknown transform kind '{other}'"))),
        })
    }

    /// Applies the transform to `img`, drawing from `rng`; returns the image and what was applied.
    fn apply(&self, img: &Image, rng: &mut ChaCha8Rng) -> (Vec<u8>, Trace) {
        let (h, w) = (img.height, img.width);
        let named = |ops: Vec<AppliedOp>| ops.into_iter().map(|o| (o.name.name(), vec![o.value as f64])).collect();
        match self {
            Transform::Policy(kind) => {
                let (mut out, mut ops) =
                    kind.before_crop(img.pixels, h, w, rng).unwrap_or_else(|| (img.pixels.to_vec(), Vec::new()));
                kind.after_crop(&mut out, h, w, rng, &mut ops);
                (out, named(ops))
            }
            Transform::Cutout { size, fill } => {
                let mut out = img.pixels.to_vec();
                let b = draw_cutout(*size, h, w, rng);
                fill_cutout(&mut out, w, b, fill);
                (out, vec![("Cutout", b.iter().map(|&v| v as f64).collect())])
            }
            Transform::RandomCrop { padding } => {
                let pad = *padding;
                let (top, left) = (rng.random_range(0..=2 * pad), rng.random_range(0..=2 * pad));
                let mut out = vec![0u8; img.pixels.len()];
                CropFlip { pad, top, left, flip: false }.apply(img.pixels, h, w, &mut out);
                (out, vec![("RandomCrop", vec![top as f64, left as f64])])
            }
            Transform::HorizontalFlip { p } => {
                if rng.random_bool(*p) {
                    let mut out = vec![0u8; img.pixels.len()];
                    CropFlip { pad: 0, top: 0, left: 0, flip: true }.apply(img.pixels, h, w, &mut out);
                    (out, vec![("HorizontalFlip", vec![1.0])])
                } else {
                    (img.pixels.to_vec(), Vec::new())
                }
            }
        }
    }
}

/// Applies the random transform `kind` to `image` with a generator seeded by `key`; returns the
/// image and the ops applied as (name, values).
#[pyfunction]
#[pyo3(signature = (image, key, kind, n=2, m=28, policy="cifar10", size=16, padding=4, p=0.5, fill=(0, 0, 0)))]
#[allow(clippy::too_many_arguments)]
fn augment<'py>(
    py: Python<'py>,
    image: PyReadonlyArray3<'py, u8>,
    key: u64,
    kind: &str,
    n: usize,
    m: usize,
    policy: &str,
    size: usize,
    padding: usize,
    p: f64,
    fill: (u8, u8, u8),
) -> PyResult<(Bound<'py, PyAny>, Trace)> {
    let fill = [fill.0, fill.1, fill.2];
    let t = Transform::new(&Request { kind, n, m, policy, size, padding, p, fill })?;
    let img = Image::borrow(&image)?;
    let (out, ops) = py.detach(|| t.apply(&img, &mut ChaCha8Rng::seed_from_u64(key)));
    Ok((PyArray1::from_vec(py, out).reshape([img.height, img.width, 3])?.into_any(), ops))
}

/// The reference's cutout box `(y0, y1, x0, x1)` of side `size` on an `h` x `w` image, drawn
/// with a generator seeded by `key` (for tensors, which the Python side fills itself).
#[pyfunction]
fn cutout_box(h: usize, w: usize, size: usize, key: u64) -> PyResult<(u16, u16, u16, u16)> {
    if h == 0 || w == 0 {
        return Err(PyValueError::new_err(format!("cannot cut a box out of an empty {h}x{w} image")));
    }
    let [y0, y1, x0, x1] = draw_cutout(size, h, w, &mut ChaCha8Rng::seed_from_u64(key));
    Ok((y0, y1, x0, x1))
}
