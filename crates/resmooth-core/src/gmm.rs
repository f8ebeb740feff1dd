//! OOD detection: a 2-component 1-D Gaussian mixture fitted to `log(loss + 1e-10)`.
//!
//! It follows scikit-learn's `GaussianMixture(n_components=2, max_iter=10, tol=1e-2,
//! reg_covar=5e-4)` as the reference's `mixture_model.py` builds it (covariance type 'full',
//! which in 1-D is a plain variance; `init_params='kmeans'`; `n_init=1`; `warm_start=False`):
//!
//! - **Initialisation.** scikit-learn runs `KMeans(n_clusters=2, n_init=1)` (k-means++ seeding,
//!   Lloyd iterations stopped on a tol scaled by the data variance) and turns its labels into
//!   hard responsibilities. The reference passes `random_state=None`, so its seeding draws from
//!   numpy's global RNG and cannot be replayed. We seed deterministically instead: the best
//!   2-means split among 1024 histogram boundaries, then Lloyd iterations until the partition
//!   stops changing. In 1-D with two clusters Lloyd's fixed points are threshold splits and,
//!   on well separated data, scikit-learn reaches the same one from any seed (the fixture test
//!   checks 19 seeds). On skewed data the SSE is flat near its minimum: several neighbouring
//!   splits are fixed points, and scikit-learn's partition (hence its EM result, ~1e-3 in the
//!   means) varies with the seed; ours is one of those splits, within ~1e-5 of the optimal SSE.
//! - **EM.** Each step: E-step with the current parameters (its mean log-likelihood is the
//!   lower bound), M-step with `nk = sum(resp) + 10 * f64::EPSILON`, `var = sum(resp * (x -
//!   mean)^2) / nk + reg_covar`, weights `nk / sum(nk)` (the initial weights are `nk / n`).
//!   It stops once `|lower_bound - previous| < tol` (`converged`), the first step counting as
//!   an infinite change, or after `max_iter` steps; `iterations` is scikit-learn's `n_iter_`.
//! - **Posterior.** `predict_proba` column of the component with the smaller mean (`argmin`).
//!
//! Everything is computed in f64. (The reference hands scikit-learn float32 losses, so its
//! own fit carries float32 rounding, about 1e-6 relative.)
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Added to each loss before the log, as the reference does.
pub const LOG_EPS: f64 = 1e-10;
/// scikit-learn's `max_iter` in the reference.
pub const MAX_ITER: usize = 10;
/// scikit-learn's `tol` in the reference: on the change of the mean log-likelihood.
pub const TOL: f64 = 1e-2;
/// scikit-learn's `reg_covar` in the reference: added to both variances.
pub const REG_COVAR: f64 = 5e-4;
/// scikit-learn's guard against empty components: `10 * eps` added to each `nk`.
const NK_EPS: f64 = 10.0 * f64::EPSILON;
/// Terms `1 + exp(-|d|)` (each in [1, 2]) multiplied before one log; 2^512 stays finite.
const LOG_BLOCK: usize = 512;

/// What can go wrong fitting, saving or loading the GMM.
#[derive(Debug, Error)]
pub enum GmmError {
    /// Fewer than two values to fit.
    #[error("the GMM needs at least 2 values to fit 2 components, got {0}")]
    TooFewValues(usize),
    /// A value is NaN or infinite.
    #[error("value {index} given to the GMM is {value}; all values must be finite (a NaN or infinite loss upstream?)")]
    NotFinite { index: usize, value: f64 },
    /// A loss for which `log(loss + 1e-10)` is not finite.
    #[error("loss {index} is {value}; losses must be finite and > -1e-10 to take log(loss + 1e-10)")]
    BadLoss { index: usize, value: f64 },
    /// Every value is the same, so two components cannot be told apart.
    #[error("all {n} values given to the GMM equal {value}; two components cannot be told apart")]
    AllEqual { n: usize, value: f64 },
    /// `gmm.json` could not be written.
    #[error(transparent)]
    Write(#[from] crate::io::FileError),
    /// `gmm.json` could not be read.
    #[error("cannot read the GMM from {}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// `gmm.json` is not valid JSON of the expected shape.
    #[error("{} is not a valid {}", path.display(), crate::run_folder::GMM)]
    Parse { path: PathBuf, source: serde_json::Error },
    /// `gmm.json` parses but holds parameters no fit can give.
    #[error("{path} is not a valid {}: {reason}", crate::run_folder::GMM)]
    Invalid { path: PathBuf, reason: String },
}

/// A fitted 2-component 1-D Gaussian mixture over log losses; saved as `gmm.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gmm {
    /// Mixing weights (sum to 1).
    pub weights: [f64; 2],
    /// Component means, in log-loss units.
    pub means: [f64; 2],
    /// Component variances, `reg_covar` included.
    pub variances: [f64; 2],
    /// Whether EM stopped on `tol` rather than on `max_iter`.
    pub converged: bool,
    /// EM steps run (scikit-learn's `n_iter_`).
    pub iterations: usize,
    /// Mean log-likelihood per value at the last E-step (scikit-learn's `lower_bound_`).
    pub lower_bound: f64,
}

/// `log(loss + 1e-10)`: the value the GMM models for one loss.
pub fn log_loss(loss: f64) -> f64 {
    (loss + LOG_EPS).ln()
}

/// Per-component constants of the E-step: `log_prob_k(x) = norm_k - 0.5 * ((x - mean_k) * prec_k)^2`.
#[derive(Clone, Copy)]
struct Components {
    means: [f64; 2],
    prec: [f64; 2],
    norm: [f64; 2],
}

impl Components {
    fn new(weights: [f64; 2], means: [f64; 2], variances: [f64; 2]) -> Self {
        let half_log_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
        let prec = variances.map(|v| 1.0 / v.sqrt());
        let norm = [0, 1].map(|k| weights[k].ln() + prec[k].ln() - half_log_2pi);
        Components { means, prec, norm }
    }

    /// Weighted log densities of `x` under both components.
    #[inline(always)]
    fn log_probs(&self, x: f64) -> [f64; 2] {
        let z0 = (x - self.means[0]) * self.prec[0];
        let z1 = (x - self.means[1]) * self.prec[1];
        [self.norm[0] - 0.5 * z0 * z0, self.norm[1] - 0.5 * z1 * z1]
    }
}

/// Responsibility-weighted sums of one pass: count, sum of x and sum of x^2 per component.
#[derive(Default)]
struct Stats {
    s0: [f64; 2],
    s1: [f64; 2],
    s2: [f64; 2],
}

impl Stats {
    #[inline(always)]
    fn add(&mut self, x: f64, r: [f64; 2]) {
        for (k, r) in r.into_iter().enumerate() {
            self.s0[k] += r;
            self.s1[k] += r * x;
            self.s2[k] += r * x * x;
        }
    }

    /// scikit-learn's `_estimate_gaussian_parameters`: (nk, means, variances).
    fn estimate(&self) -> ([f64; 2], [f64; 2], [f64; 2]) {
        let nk = self.s0.map(|s| s + NK_EPS);
        let means = [0, 1].map(|k| self.s1[k] / nk[k]);
        let variances = [0, 1].map(|k| {
            let m = means[k];
            // sum r (x - m)^2 = s2 - 2 m s1 + m^2 s0; x is centred on the data mean, so this is exact enough.
            ((self.s2[k] - 2.0 * m * self.s1[k] + m * m * self.s0[k]) / nk[k]).max(0.0) + REG_COVAR
        });
        (nk, means, variances)
    }
}

impl Gmm {
    /// Fits the mixture to values already log-transformed (see [`log_loss`]).
    pub fn fit(values: &[f64]) -> Result<Gmm, GmmError> {
        let n = values.len();
        if n < 2 {
            return Err(GmmError::TooFewValues(n));
        }
        let (mut sum, mut min, mut max) = (0.0, f64::INFINITY, f64::NEG_INFINITY);
        for (index, &value) in values.iter().enumerate() {
            if !value.is_finite() {
                return Err(GmmError::NotFinite { index, value });
            }
            sum += value;
            min = min.min(value);
            max = max.max(value);
        }
        if min == max {
            return Err(GmmError::AllEqual { n, value: min });
        }
        // Work on values centred on their mean: the one-pass variance sums then lose nothing.
        let shift = sum / n as f64;
        let centres = two_means(values, shift, min, max);

        // Hard responsibilities from the nearest centre (first on a tie, like argmin).
        let mut stats = Stats::default();
        for &v in values {
            let x = v - shift;
            stats.add(x, if nearest_is_first(x, centres) { [1.0, 0.0] } else { [0.0, 1.0] });
        }
        let (nk, mut means, mut variances) = stats.estimate();
        let mut weights = nk.map(|v| v / n as f64);

        let mut lower_bound = f64::NEG_INFINITY;
        let mut converged = false;
        let mut iterations = 0;
        while iterations < MAX_ITER {
            iterations += 1;
            let previous = lower_bound;
            let (bound, stats) = e_step(values, shift, Components::new(weights, means, variances));
            let (nk, m, v) = stats.estimate();
            let total = nk[0] + nk[1];
            (weights, means, variances) = (nk.map(|w| w / total), m, v);
            lower_bound = bound;
            if (lower_bound - previous).abs() < TOL {
                converged = true;
                break;
            }
        }
        Ok(Gmm { weights, means: means.map(|m| m + shift), variances, converged, iterations, lower_bound })
    }

    /// Fits the mixture to raw losses, taking `log(loss + 1e-10)` of each first.
    pub fn fit_losses(losses: &[f64]) -> Result<Gmm, GmmError> {
        let values = losses
            .iter()
            .enumerate()
            .map(|(index, &value)| {
                let x = log_loss(value);
                if x.is_finite() {
                    Ok(x)
                } else {
                    Err(GmmError::BadLoss { index, value })
                }
            })
            .collect::<Result<Vec<f64>, GmmError>>()?;
        Gmm::fit(&values)
    }

    /// Index of the in-distribution component: the one with the smaller mean (first on a tie).
    pub fn id_component(&self) -> usize {
        usize::from(self.means[1] < self.means[0])
    }

    /// Posterior probability of every component for one log loss (`predict_proba`).
    pub fn posteriors(&self, x: f64) -> [f64; 2] {
        let lp = Components::new(self.weights, self.means, self.variances).log_probs(x);
        let p1 = logistic(lp[1] - lp[0]);
        let p0 = logistic(lp[0] - lp[1]);
        [p0, p1]
    }

    /// `p_ID` of one log loss: posterior of the in-distribution component.
    pub fn p_id(&self, x: f64) -> f64 {
        self.posteriors(x)[self.id_component()]
    }

    /// `p_ID` of many log losses.
    pub fn p_id_batch(&self, xs: &[f64]) -> Vec<f64> {
        let c = Components::new(self.weights, self.means, self.variances);
        let id = self.id_component();
        xs.iter()
            .map(|&x| {
                let lp = c.log_probs(x);
                logistic(lp[id] - lp[1 - id])
            })
            .collect()
    }

    /// The log losses where `p_ID = 0.5` (the two weighted densities meet), in increasing order:
    /// none, one or two.
    pub fn boundaries(&self) -> Vec<f64> {
        let ([w0, w1], [m0, m1], [v0, v1]) = (self.weights, self.means, self.variances);
        // w0 N(x; m0, v0) = w1 N(x; m1, v1) as a x^2 + b x + c = 0
        let a = 0.5 / v1 - 0.5 / v0;
        let b = m0 / v0 - m1 / v1;
        let c = 0.5 * m1 * m1 / v1 - 0.5 * m0 * m0 / v0 + (w0 / w1).ln() - 0.5 * (v0 / v1).ln();
        let scale = a.abs().max(b.abs()).max(f64::MIN_POSITIVE);
        if a.abs() <= 1e-12 * scale {
            return if b == 0.0 { Vec::new() } else { vec![-c / b] };
        }
        let disc = b * b - 4.0 * a * c;
        if disc < 0.0 {
            return Vec::new();
        }
        // the root formula that does not cancel, then Vieta for the other
        let q = -0.5 * (b + b.signum() * disc.sqrt());
        let mut roots = if q == 0.0 { vec![0.0] } else { vec![q / a, c / q] };
        roots.sort_by(f64::total_cmp);
        roots.dedup();
        roots
    }

    /// `p_ID` of one raw loss: `p_id(log(loss + 1e-10))`.
    pub fn p_id_loss(&self, loss: f64) -> f64 {
        self.p_id(log_loss(loss))
    }

    /// Writes `gmm.json` atomically.
    pub fn save(&self, path: &Path) -> Result<(), GmmError> {
        let json = serde_json::to_string_pretty(self).expect("a GMM serialises");
        Ok(crate::io::write_atomic(path, json.as_bytes())?)
    }

    /// Reads a `gmm.json` written by [`Gmm::save`], checking that its parameters make sense.
    pub fn load(path: &Path) -> Result<Gmm, GmmError> {
        let text = std::fs::read_to_string(path).map_err(|source| GmmError::Read { path: path.into(), source })?;
        let gmm: Gmm = serde_json::from_str(&text).map_err(|source| GmmError::Parse { path: path.into(), source })?;
        let invalid = |reason: String| Err(GmmError::Invalid { path: path.into(), reason });
        if !gmm.means.iter().all(|m| m.is_finite()) {
            return invalid(format!("means {:?} must be finite", gmm.means));
        }
        if !gmm.variances.iter().all(|v| v.is_finite() && *v > 0.0) {
            return invalid(format!("variances {:?} must be finite and > 0", gmm.variances));
        }
        if !gmm.weights.iter().all(|w| w.is_finite() && *w > 0.0)
            || (gmm.weights[0] + gmm.weights[1] - 1.0).abs() > 1e-6
        {
            return invalid(format!("weights {:?} must be > 0 and sum to 1", gmm.weights));
        }
        Ok(gmm)
    }
}

/// `1 / (1 + exp(-d))` without overflow trouble: exact 0 or 1 only where f64 rounds there.
#[inline(always)]
fn logistic(d: f64) -> f64 {
    1.0 / (1.0 + (-d).exp())
}

/// One E-step over `values - shift`: the mean log-likelihood and the responsibility sums.
fn e_step(values: &[f64], shift: f64, c: Components) -> (f64, Stats) {
    let mut stats = Stats::default();
    let mut log_sum = 0.0;
    for block in values.chunks(LOG_BLOCK) {
        // log(e^a + e^b) = max + log(1 + e^-|a-b|); the logs of a block's (1 + e^-|a-b|) are summed
        // as the log of their product (each factor is in [1, 2]).
        let mut product = 1.0;
        for &v in block {
            let x = v - shift;
            let lp = c.log_probs(x);
            let hi = lp[0].max(lp[1]);
            // Floored at e^-300: below that exp() crawls through subnormals, to no purpose.
            let e = (-(lp[0] - lp[1]).abs()).max(-300.0).exp();
            let r_hi = 1.0 / (1.0 + e);
            let r_lo = e * r_hi;
            let r = if lp[0] >= lp[1] { [r_hi, r_lo] } else { [r_lo, r_hi] };
            stats.add(x, r);
            log_sum += hi;
            product *= 1.0 + e;
        }
        log_sum += product.ln();
    }
    (log_sum / values.len() as f64, stats)
}

/// Histogram bins over [min, max] for seeding 2-means.
const SEED_BINS: usize = 1024;
/// scikit-learn's `KMeans(max_iter=300)`.
const LLOYD_MAX_ITER: usize = 300;

/// Whether `x` belongs to the first of two centres: the nearer one, the first on a tie (argmin).
#[inline(always)]
fn nearest_is_first(x: f64, centres: [f64; 2]) -> bool {
    (x - centres[0]).abs() <= (x - centres[1]).abs()
}

/// Centres of the 2-means partition of `values - shift` (lower centre first); needs min < max.
///
/// In 1-D the clusters of any k-means fixed point are intervals. Seeding: the best split
/// (largest `L^2 / n_L + R^2 / n_R`, i.e. smallest within-cluster sum of squares) among the
/// boundaries of a fine histogram. Then Lloyd iterations, as scikit-learn runs them, until the
/// partition no longer changes: a k-means fixed point next to the optimal split (see the module
/// documentation).
fn two_means(values: &[f64], shift: f64, min: f64, max: f64) -> [f64; 2] {
    let (min, max) = (min - shift, max - shift);
    let scale = SEED_BINS as f64 / (max - min);
    let mut counts = [0usize; SEED_BINS];
    let mut sums = [0.0f64; SEED_BINS];
    let mut total = 0.0;
    for &v in values {
        let x = v - shift;
        let bin = (((x - min) * scale) as usize).min(SEED_BINS - 1);
        counts[bin] += 1;
        sums[bin] += x;
        total += x;
    }
    let n = values.len();
    let (mut n_left, mut left, mut best) = (0, 0.0, (f64::NEG_INFINITY, [0.0, 0.0]));
    for bin in 0..SEED_BINS - 1 {
        n_left += counts[bin];
        left += sums[bin];
        if n_left == 0 || n_left == n {
            continue;
        }
        let right = total - left;
        let score = left * left / n_left as f64 + right * right / (n - n_left) as f64;
        if score > best.0 {
            best = (score, [left / n_left as f64, right / (n - n_left) as f64]);
        }
    }
    let mut centres = best.1;
    let mut previous = (0, 0.0);
    for _ in 0..LLOYD_MAX_ITER {
        let (mut n0, mut s0, mut s1) = (0usize, 0.0, 0.0);
        for &v in values {
            let x = v - shift;
            if nearest_is_first(x, centres) {
                n0 += 1;
                s0 += x;
            } else {
                s1 += x;
            }
        }
        if (n0, s0) == previous || n0 == 0 || n0 == n {
            break;
        }
        previous = (n0, s0);
        centres = [s0 / n0 as f64, s1 / (n - n0) as f64];
    }
    centres
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic normal draws (Box-Muller on a small LCG) for mixtures of known shape.
    fn normals(n: usize, mean: f64, sd: f64, seed: u64) -> Vec<f64> {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let mut uniform = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| {
                let (u, v) = (uniform(), uniform());
                mean + sd * (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
            })
            .collect()
    }

    fn mixture() -> Vec<f64> {
        let mut v = normals(6000, -4.0, 0.8, 1);
        v.extend(normals(4000, 1.0, 0.5, 2));
        v
    }

    #[test]
    fn recovers_known_mixture() {
        let gmm = Gmm::fit(&mixture()).unwrap();
        let id = gmm.id_component();
        let ood = 1 - id;
        assert!((gmm.means[id] + 4.0).abs() < 0.05, "{gmm:?}");
        assert!((gmm.means[ood] - 1.0).abs() < 0.05, "{gmm:?}");
        assert!((gmm.variances[id] - 0.64).abs() < 0.05, "{gmm:?}");
        assert!((gmm.variances[ood] - 0.25).abs() < 0.03, "{gmm:?}");
        assert!((gmm.weights[id] - 0.6).abs() < 0.01, "{gmm:?}");
        assert!((gmm.weights[0] + gmm.weights[1] - 1.0).abs() < 1e-12);
        assert!(gmm.converged && gmm.iterations >= 2 && gmm.iterations <= MAX_ITER);
        assert!(gmm.p_id(-4.0) > 0.99 && gmm.p_id(1.0) < 0.01);
    }

    #[test]
    fn posteriors_sum_to_one_and_batch_agrees() {
        let gmm = Gmm::fit(&mixture()).unwrap();
        let xs = [-30.0, -4.0, -1.5, 0.0, 1.0, 40.0];
        let batch = gmm.p_id_batch(&xs);
        for (&x, &p) in xs.iter().zip(&batch) {
            let post = gmm.posteriors(x);
            assert!((post[0] + post[1] - 1.0).abs() < 1e-12);
            assert!((0.0..=1.0).contains(&p));
            assert!((p - gmm.p_id(x)).abs() < 1e-15);
        }
        assert!((gmm.p_id_loss(0.5) - gmm.p_id(0.5f64.ln())).abs() < 1e-9);
    }

    #[test]
    fn fit_losses_takes_the_log() {
        let losses: Vec<f64> = mixture().iter().map(|x| x.exp()).collect();
        let a = Gmm::fit_losses(&losses).unwrap();
        let b = Gmm::fit(&losses.iter().map(|&l| log_loss(l)).collect::<Vec<_>>()).unwrap();
        assert_eq!(a, b);
        let err = Gmm::fit_losses(&[0.1, -1.0, 0.2]).unwrap_err();
        assert!(matches!(err, GmmError::BadLoss { index: 1, .. }), "{err}");
        // A zero loss is fine: log(1e-10).
        assert!(Gmm::fit_losses(&[0.0, 0.0, 2.0, 3.0]).is_ok());
    }

    #[test]
    fn degenerate_inputs_are_clear_errors() {
        let err = Gmm::fit(&[]).unwrap_err();
        assert!(err.to_string().contains("at least 2 values"), "{err}");
        assert!(matches!(Gmm::fit(&[1.0]), Err(GmmError::TooFewValues(1))));
        let err = Gmm::fit(&[2.5; 100]).unwrap_err();
        assert!(matches!(err, GmmError::AllEqual { n: 100, .. }), "{err}");
        assert!(err.to_string().contains("all 100 values"), "{err}");
        let err = Gmm::fit(&[1.0, f64::NAN, 2.0]).unwrap_err();
        assert!(matches!(err, GmmError::NotFinite { index: 1, .. }), "{err}");
        assert!(err.to_string().contains("value 1") && err.to_string().contains("NaN"), "{err}");
        assert!(matches!(Gmm::fit(&[1.0, f64::INFINITY]), Err(GmmError::NotFinite { index: 1, .. })));
    }

    #[test]
    fn two_values_and_an_outlier_fit() {
        let gmm = Gmm::fit(&[0.0, 1.0]).unwrap();
        assert!((gmm.means[0] - 0.0).abs() < 1e-9 && (gmm.means[1] - 1.0).abs() < 1e-9, "{gmm:?}");
        assert!((gmm.variances[0] - REG_COVAR).abs() < 1e-12);
        // Losses of exactly 0 (3%) take a component of their own, of variance reg_covar.
        let mut v = normals(970, -3.0, 1.0, 3);
        v.extend([log_loss(0.0); 30]);
        let gmm = Gmm::fit(&v).unwrap();
        let id = gmm.id_component();
        assert!((gmm.means[id] - log_loss(0.0)).abs() < 1e-6, "{gmm:?}");
        assert!((gmm.variances[id] - REG_COVAR).abs() < 1e-9 && (gmm.weights[id] - 0.03).abs() < 1e-9, "{gmm:?}");
    }

    /// The exact 2-means optimum by brute force over the splits of the sorted values.
    fn optimal_sse(v: &[f64]) -> f64 {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        let sse = |part: &[f64]| {
            let m = part.iter().sum::<f64>() / part.len() as f64;
            part.iter().map(|x| (x - m).powi(2)).sum::<f64>()
        };
        (1..s.len()).filter(|&i| s[i - 1] < s[i]).map(|i| sse(&s[..i]) + sse(&s[i..])).fold(f64::INFINITY, f64::min)
    }

    #[test]
    fn two_means_ends_on_a_fixed_point_at_the_optimum() {
        let skewed: Vec<f64> = normals(3000, 0.0, 1.0, 4).iter().map(|z| (0.8 * z).exp()).collect();
        let mut outliers = normals(400, -3.0, 1.0, 5);
        outliers.extend([-23.0; 12]);
        let cases = [vec![-9.0, -8.5, -3.0, -2.9, -2.0, -1.0, 0.0, 0.5, 0.6, 3.0], mixture(), skewed, outliers];
        for v in cases {
            let (min, max) = v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
            let c = two_means(&v, 0.0, min, max);
            assert!(c[0] < c[1]);
            let sse: f64 = v.iter().map(|x| ((x - c[0]).powi(2)).min((x - c[1]).powi(2))).sum();
            let best = optimal_sse(&v);
            assert!(sse <= best * (1.0 + 1e-5), "{sse} vs optimum {best}");
            // A Lloyd fixed point: each centre is the mean of the values nearest to it.
            let first: Vec<f64> = v.iter().copied().filter(|&x| nearest_is_first(x, c)).collect();
            let second: Vec<f64> = v.iter().copied().filter(|&x| !nearest_is_first(x, c)).collect();
            let mean = |p: &[f64]| p.iter().sum::<f64>() / p.len() as f64;
            assert!((mean(&first) - c[0]).abs() < 1e-9 && (mean(&second) - c[1]).abs() < 1e-9);
        }
    }

    #[test]
    fn save_load_round_trip_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gmm.json");
        let gmm = Gmm::fit(&mixture()).unwrap();
        gmm.save(&path).unwrap();
        let back = Gmm::load(&path).unwrap();
        for k in 0..2 {
            assert!((back.means[k] - gmm.means[k]).abs() <= 1e-15 * gmm.means[k].abs());
            assert!((back.variances[k] - gmm.variances[k]).abs() <= 1e-15 * gmm.variances[k]);
            assert!((back.weights[k] - gmm.weights[k]).abs() <= 1e-15);
        }
        assert_eq!((back.converged, back.iterations), (gmm.converged, gmm.iterations));
        let text = std::fs::read_to_string(&path).unwrap();
        for key in ["weights", "means", "variances", "converged", "iterations"] {
            assert!(text.contains(key), "{text}");
        }
        let missing = dir.path().join("none.json");
        let err = Gmm::load(&missing).unwrap_err();
        assert!(err.to_string().contains("none.json"), "{err}");
        std::fs::write(&path, "{\"weights\": [1.0]}").unwrap();
        let err = Gmm::load(&path).unwrap_err();
        assert!(matches!(err, GmmError::Parse { .. }) && err.to_string().contains("gmm.json"), "{err}");
        let bad = Gmm { variances: [0.0, 1.0], ..gmm };
        std::fs::write(&path, serde_json::to_string(&bad).unwrap()).unwrap();
        assert!(matches!(Gmm::load(&path), Err(GmmError::Invalid { .. })));
        // a folder that cannot be made (its parent is a file)
        let err = gmm.save(&path.join("gmm.json")).unwrap_err();
        assert!(err.to_string().contains("gmm.json"), "{err}");
    }

    /// scikit-learn's fit of one case in tests/fixtures/gmm (scripts/make_gmm_fixture.py).
    #[derive(Deserialize)]
    struct Fixture {
        values: Vec<f64>,
        weights: [f64; 2],
        means: [f64; 2],
        variances: [f64; 2],
        converged: bool,
        n_iter: usize,
        lower_bound: f64,
        probe: Vec<f64>,
        probe_p_id: Vec<f64>,
        values_stride: usize,
        values_p_id: Vec<f64>,
    }

    #[test]
    fn agrees_with_scikit_learn() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gmm");
        for name in ["mixture", "skewed", "near_degenerate", "slow"] {
            let path = dir.join(format!("{name}.json"));
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let f: Fixture = serde_json::from_str(&text).unwrap();
            let gmm = Gmm::fit(&f.values).unwrap();
            // The fixture lists components by increasing mean.
            let order = if gmm.id_component() == 0 { [0, 1] } else { [1, 0] };
            let close = |a: f64, b: f64, what: &str| assert!((a - b).abs() < 1e-6, "{name} {what}: {a} vs {b}");
            for (k, &c) in order.iter().enumerate() {
                close(gmm.means[c], f.means[k], "mean");
                close(gmm.variances[c], f.variances[k], "variance");
                close(gmm.weights[c], f.weights[k], "weight");
            }
            assert_eq!((gmm.converged, gmm.iterations), (f.converged, f.n_iter), "{name}");
            close(gmm.lower_bound, f.lower_bound, "lower bound");
            for (&x, &p) in f.probe.iter().zip(&f.probe_p_id) {
                close(gmm.p_id(x), p, "p_id at probe");
            }
            let xs: Vec<f64> = f.values.iter().step_by(f.values_stride).copied().collect();
            assert_eq!(xs.len(), f.values_p_id.len());
            for (p, &want) in gmm.p_id_batch(&xs).into_iter().zip(&f.values_p_id) {
                close(p, want, "p_id at value");
            }
        }
    }

    #[test]
    fn boundaries_are_where_p_id_is_one_half() {
        let g = |weights, means, variances| Gmm {
            weights,
            means,
            variances,
            converged: true,
            iterations: 1,
            lower_bound: 0.0,
        };
        // unequal variances: two crossings, p_ID = 0.5 at both
        let two = g([0.7, 0.3], [-6.0, 0.5], [1.5, 0.6]);
        let b = two.boundaries();
        assert_eq!(b.len(), 2, "{b:?}");
        for x in &b {
            assert!((two.p_id(*x) - 0.5).abs() < 1e-9, "p_ID({x}) = {}", two.p_id(*x));
        }
        // the wider ID component wins on both sides, the OOD one in between
        assert!(b[0] < b[1] && two.p_id(b[0] - 0.1) > 0.5 && two.p_id((b[0] + b[1]) / 2.0) < 0.5);
        // equal variances and weights: one crossing, half way
        let one = g([0.5, 0.5], [-2.0, 4.0], [1.0, 1.0]).boundaries();
        assert_eq!(one.len(), 1);
        assert!((one[0] - 1.0).abs() < 1e-12, "{one:?}");
        // a component that dominates everywhere never crosses
        assert!(g([0.999, 0.001], [0.0, 0.0], [1.0, 0.5]).boundaries().is_empty());
    }
}
