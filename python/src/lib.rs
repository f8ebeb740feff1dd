//! `resmooth._resmooth`, the extension module of the Python package: resmooth-core's
//! augmentations, two-view loader and GMM over NumPy arrays, with the GIL released while Rust
//! works. The Python modules of the package (`resmooth.transforms`, `resmooth.ops`,
//! `resmooth.Loader`, `resmooth.gmm`) wrap these functions in torchvision's conventions.

mod gmm;
mod loader;
mod transforms;

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray3, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// An image borrowed from NumPy: HWC uint8, C-contiguous, three channels.
pub(crate) struct Image<'a> {
    pub pixels: &'a [u8],
    pub height: usize,
    pub width: usize,
}

impl<'a> Image<'a> {
    /// Checks that `array` is an RGB HWC uint8 image and borrows its pixels.
    pub fn borrow(array: &'a PyReadonlyArray3<'_, u8>) -> PyResult<Image<'a>> {
        let shape = array.shape();
        if shape[2] != 3 || shape[0] == 0 || shape[1] == 0 {
            return Err(PyValueError::new_err(format!(
                "expected an RGB image of shape (H, W, 3), got shape {shape:?}; convert grey or RGBA images to RGB first"
            )));
        }
        let pixels = array.as_slice().map_err(|_| {
            PyValueError::new_err("the image array is not C-contiguous; pass np.ascontiguousarray(image)")
        })?;
        Ok(Image { pixels, height: shape[0], width: shape[1] })
    }
}

/// `n` HWC images of `h` x `w` as one NumPy array of shape (n, h, w, 3), without a copy.
pub(crate) fn images_array<'py>(
    py: Python<'py>,
    pixels: Vec<u8>,
    n: usize,
    h: usize,
    w: usize,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyArray1::from_vec(py, pixels).reshape([n, h, w, 3])?.into_any())
}

/// Turns a library error into Python's `ValueError` with its message and causes.
pub(crate) fn value_error(e: impl std::error::Error) -> PyErr {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    PyValueError::new_err(text)
}

#[pymodule]
fn _resmooth(m: &Bound<'_, PyModule>) -> PyResult<()> {
    transforms::register(m)?;
    loader::register(m)?;
    gmm::register(m)?;
    Ok(())
}
