"""The method's GMM: scikit-learn's `GaussianMixture(2, max_iter=10, tol=1e-2, reg_covar=5e-4)` as
the reference fits it on `log(loss + 1e-10)` of the pretrained model's per-sample losses, and
p_ID, the posterior of the component with the smaller mean (the in-distribution one).

    fit = resmooth.gmm.fit(losses)          # losses: cross-entropy per sample, any array-like
    fit.p_id                                # p_ID of each of those losses
    fit.predict(new_losses)                 # p_ID of other losses (the reference's GMM.predict)

The initialisation is deterministic (the best 2-means split, where scikit-learn seeds k-means at
random), so the fit lies within scikit-learn's own seed-to-seed spread and is the same every run.
"""
from typing import NamedTuple, Tuple

import numpy as np

from . import _resmooth


def _losses(losses):
    """Any array-like of losses (a torch tensor included) as a contiguous float64 vector."""
    if hasattr(losses, "detach"):  # a torch tensor, maybe on the GPU or with grad
        losses = losses.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(losses, dtype=np.float64).reshape(-1))


class Fit(NamedTuple):
    """A fitted GMM over log-losses and the p_ID of the losses it was fitted on."""

    weights: Tuple[float, float]
    means: Tuple[float, float]
    variances: Tuple[float, float]
    p_id: np.ndarray
    converged: bool
    iterations: int
    lower_bound: float

    def predict(self, losses):
        """p_ID of `losses` (raw per-sample losses, not their logs) under this fit."""
        return _resmooth.gmm_p_id(list(self.weights), list(self.means), list(self.variances), _losses(losses))


def fit(losses):
    """Fits the GMM to per-sample losses (their `log(loss + 1e-10)`); raises ValueError for fewer
    than two losses, a NaN or infinite loss, or losses that are all equal."""
    (weights, means, variances, converged, iterations, lower_bound), p_id = _resmooth.gmm_fit(_losses(losses))
    return Fit(tuple(weights), tuple(means), tuple(variances), p_id, converged, iterations, lower_bound)
