"""resmooth.gmm.fit against scikit-learn's GaussianMixture as the reference builds it."""
import numpy as np
import pytest
import torch
from sklearn.mixture import GaussianMixture

import resmooth


def losses(seed, n=3000):
    """Per-sample cross-entropies of a trained model: most small (in distribution), some large."""
    rng = np.random.default_rng(seed)
    small = np.exp(rng.normal(-4.0, 1.2, int(n * 0.7)))
    large = np.exp(rng.normal(0.5, 0.8, n - int(n * 0.7)))
    return rng.permutation(np.r_[small, large]).astype(np.float32)


def sklearn_fits(loss, seeds=range(10)):
    """The reference's GaussianMixture on log(loss + 1e-10), components sorted by mean, and p_ID
    (the posterior of the smaller mean), for several random_state values."""
    x = np.log(loss.astype(np.float64) + 1e-10).reshape(-1, 1)
    out = []
    for s in seeds:
        g = GaussianMixture(n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4, random_state=s).fit(x)
        order = np.argsort(g.means_[:, 0])
        p_id = g.predict_proba(x)[:, g.means_.argmin()]
        out.append((g.weights_[order], g.means_[order, 0], g.covariances_[order, 0, 0], p_id))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fit_lies_within_scikit_learns_seed_to_seed_spread(seed):
    loss = losses(seed)
    ref = sklearn_fits(loss)
    fit = resmooth.gmm.fit(loss)
    order = np.argsort(fit.means)
    ours = [np.array(fit.weights)[order], np.array(fit.means)[order], np.array(fit.variances)[order], fit.p_id]
    for k, what in enumerate(["weights", "means", "variances", "p_id"]):
        values = np.stack([r[k] for r in ref])
        lo, hi = values.min(0) - 1e-6, values.max(0) + 1e-6
        assert np.all((ours[k] >= lo) & (ours[k] <= hi)), f"{what}: {ours[k]} outside [{lo}, {hi}]"
    assert fit.p_id.shape == loss.shape and fit.means[0] != fit.means[1]
    # p_ID is the posterior of the component with the smaller mean: small losses are ID
    assert fit.p_id[loss.argmin()] > 0.99 and fit.p_id[loss.argmax()] < 0.01
    np.testing.assert_allclose(fit.predict(loss), fit.p_id, rtol=0, atol=1e-12)


def test_inputs_any_array_like_and_errors_are_clear():
    loss = losses(3, 200)
    a = resmooth.gmm.fit(loss)
    b = resmooth.gmm.fit(torch.from_numpy(loss).requires_grad_(False))
    c = resmooth.gmm.fit(loss.tolist())
    assert a.means == b.means == c.means, "deterministic: the same fit every time"
    with pytest.raises(ValueError, match="at least 2 values"):
        resmooth.gmm.fit([0.5])
    with pytest.raises(ValueError, match="loss 1 is NaN"):
        resmooth.gmm.fit([0.5, float("nan"), 0.2])
    with pytest.raises(ValueError, match="all 3 values"):
        resmooth.gmm.fit([0.5, 0.5, 0.5])
