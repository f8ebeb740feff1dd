//! The method's GMM on `log(loss + 1e-10)` (resmooth-core's, as `resmooth detect` fits it) for
//! `resmooth.gmm`.

use crate::value_error;
use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use resmooth_core::gmm::Gmm;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(gmm_fit, m)?)?;
    m.add_function(wrap_pyfunction!(gmm_p_id, m)?)?;
    Ok(())
}

/// The fitted parameters as Python sees them: weights, means, variances, converged, iterations,
/// lower bound.
type Params = ([f64; 2], [f64; 2], [f64; 2], bool, usize, f64);

fn contiguous<'a>(losses: &'a PyReadonlyArray1<'_, f64>) -> PyResult<&'a [f64]> {
    losses.as_slice().map_err(|_| PyValueError::new_err("losses are not contiguous; pass np.ascontiguousarray(losses)"))
}

/// Fits the GMM to per-sample losses; returns its parameters and the p_ID of every loss.
#[pyfunction]
fn gmm_fit<'py>(py: Python<'py>, losses: PyReadonlyArray1<'py, f64>) -> PyResult<(Params, Bound<'py, PyAny>)> {
    let losses = contiguous(&losses)?;
    let (gmm, p_id) = py
        .detach(|| {
            let gmm = Gmm::fit_losses(losses)?;
            let p_id: Vec<f64> = losses.iter().map(|&l| gmm.p_id_loss(l)).collect();
            Ok::<_, resmooth_core::gmm::GmmError>((gmm, p_id))
        })
        .map_err(value_error)?;
    let params = (gmm.weights, gmm.means, gmm.variances, gmm.converged, gmm.iterations, gmm.lower_bound);
    Ok((params, PyArray1::from_vec(py, p_id).into_any()))
}

/// p_ID of `losses` under a GMM with these weights, means and variances (the reference's
/// `GMM.predict` on losses already computed).
#[pyfunction]
fn gmm_p_id<'py>(
    py: Python<'py>,
    weights: [f64; 2],
    means: [f64; 2],
    variances: [f64; 2],
    losses: PyReadonlyArray1<'py, f64>,
) -> PyResult<Bound<'py, PyAny>> {
    if variances.iter().any(|&v| v.is_nan() || v <= 0.0) || weights.iter().any(|&w| w.is_nan() || w < 0.0) {
        return Err(PyValueError::new_err(format!(
            "weights {weights:?} and variances {variances:?} are not those of a fitted GMM (positive variances, weights >= 0)"
        )));
    }
    let gmm = Gmm { weights, means, variances, converged: true, iterations: 0, lower_bound: f64::NAN };
    let losses = contiguous(&losses)?;
    let p_id: Vec<f64> = py.detach(|| losses.iter().map(|&l| gmm.p_id_loss(l)).collect());
    Ok(PyArray1::from_vec(py, p_id).into_any())
}
