"""Writes crates/resmooth-core/tests/fixtures/gmm/*.json: scikit-learn's GaussianMixture on fixed inputs.

The settings are the reference's (RandAugment/mixture_model.py): n_components=2, max_iter=10,
tol=1e-2, reg_covar=5e-4, default k-means init. The reference leaves random_state=None; here
each case is fitted with random_state=0 and the script checks that seeds 1..19 give the same
fit (up to component order), so the expected values do not depend on the k-means seeding,
which resmooth replaces by the exact 2-means optimum (also checked here).

Run from the repository root: .venv/bin/python scripts/make_gmm_fixture.py
"""

import json
import os

import numpy as np
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture

OUT = os.path.join("crates", "resmooth-core", "tests", "fixtures", "gmm")
PROBE = np.linspace(-25.0, 5.0, 31)
STRIDE = 5  # p_ID of every 5th input value


def cases():
    rng = np.random.default_rng(20261128)
    # Log losses of a mixture: confident originals, harder augmented views.
    mixture = np.concatenate([rng.normal(-4.0, 1.2, 1200), rng.normal(0.2, 0.6, 800)])
    # Skewed: log of exponential (confident) and gamma (hard) losses. No zero losses here: with
    # a few log(1e-10) = -23 values, or with a less clear gap, k-means stops early on its
    # variance-scaled tol (some seeds even isolate the zeros), so scikit-learn's fit depends on
    # the seed at about 1e-3 in the means, the reference's too.
    losses = np.concatenate([rng.exponential(0.02, 1400), rng.gamma(2.0, 1.0, 500)])
    skewed = np.log(losses + 1e-10)
    # Near-degenerate: three distinct values, one rare.
    near = np.array([-2.0] * 300 + [-1.999] * 200 + [3.0] * 5)
    # Heavy-tailed, overlapping components: EM takes 9 steps. (No case here runs out of the 10
    # steps: where EM is that slow, k-means stops on its tol and the fit depends on the seed.)
    rng = np.random.default_rng(26)
    a, b = rng.uniform(-5, -1), 0.0
    b = a + rng.uniform(1, 4)
    sa, sb = rng.uniform(0.1, 1.5), rng.uniform(0.1, 3)
    na, nb = int(rng.integers(200, 900)), int(rng.integers(20, 600))
    slow = np.concatenate([rng.normal(a, sa, na), rng.standard_t(3, nb) * sb + b])
    return {"mixture": mixture, "skewed": skewed, "near_degenerate": near, "slow": slow}


def fit(x, seed):
    gmm = GaussianMixture(n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4, random_state=seed)
    gmm.fit(x.reshape(-1, 1))
    order = np.argsort(gmm.means_[:, 0], kind="stable")
    return gmm, order


def optimal_two_means_labels(x):
    s = np.sort(x)
    n = len(s)
    left = np.cumsum(s)[:-1]
    i = np.arange(1, n)
    right = s.sum() - left
    score = np.where(s[:-1] < s[1:], left**2 / i + right**2 / (n - i), -np.inf)
    k = int(np.argmax(score)) + 1
    c = np.array([s[:k].mean(), s[k:].mean()])
    return np.abs(x - c[0]) > np.abs(x - c[1])


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, x in cases().items():
        x = np.round(np.asarray(x, dtype=np.float64), 6)  # short JSON; fitted as rounded
        gmm, order = fit(x, 0)
        for seed in range(1, 20):
            other, o = fit(x, seed)
            for a, b in [(gmm.means_, other.means_), (gmm.covariances_, other.covariances_), (gmm.weights_, other.weights_)]:
                assert np.allclose(a[order], b[o], rtol=0, atol=1e-12), (name, seed)
        km = KMeans(n_clusters=2, n_init=1, random_state=0).fit(x.reshape(-1, 1)).labels_
        mine = optimal_two_means_labels(x)
        assert (km == mine).all() or (km != mine).all(), name
        proba = gmm.predict_proba(PROBE.reshape(-1, 1))[:, order]
        data_proba = gmm.predict_proba(x[::STRIDE].reshape(-1, 1))[:, order]
        out = {
            "sklearn": __import__("sklearn").__version__,
            "values": x.tolist(),
            "weights": gmm.weights_[order].tolist(),
            "means": gmm.means_[order, 0].tolist(),
            "variances": gmm.covariances_[order, 0, 0].tolist(),
            "converged": bool(gmm.converged_),
            "n_iter": int(gmm.n_iter_),
            "lower_bound": float(gmm.lower_bound_),
            "probe": PROBE.tolist(),
            "probe_p_id": proba[:, 0].tolist(),
            "values_stride": STRIDE,
            "values_p_id": data_proba[:, 0].tolist(),
        }
        with open(os.path.join(OUT, name + ".json"), "w") as f:
            json.dump(out, f)
        print(name, len(x), out["means"], out["variances"], out["weights"], out["converged"], out["n_iter"])


if __name__ == "__main__":
    main()
