//! Losses: label smoothing with one eps for the batch or one per sample, and top-k accuracy.

use crate::config::{LossName, MethodConfig, Weighting};
use tch::{Kind, Tensor};

/// Per-sample label-smoothed NLL: `(1 - eps) * nll + eps * mean_c(-log p_c)`; `eps` is a
/// scalar tensor or one value per sample.
pub fn label_smooth_per_sample(logits: &Tensor, target: &Tensor, eps: &Tensor) -> Tensor {
    smoothed_nll(logits, target, &(1.0 - eps), eps)
}

/// Per-sample `confidence * nll + smoothing * mean_c(-log p_c)`; each weight is a scalar tensor
/// or one value per sample.
pub fn smoothed_nll(logits: &Tensor, target: &Tensor, confidence: &Tensor, smoothing: &Tensor) -> Tensor {
    let (nll, uniform) = nll_and_uniform(logits, target);
    confidence * nll + smoothing * uniform
}

/// The two per-sample terms of label smoothing: the NLL of the target and the uniform term
/// `mean_c(-log p_c)`.
pub fn nll_and_uniform(logits: &Tensor, target: &Tensor) -> (Tensor, Tensor) {
    let kind = float_kind(logits);
    let logp = logits.log_softmax(-1, kind);
    let nll = -logp.gather(1, &target.unsqueeze(1), false).squeeze_dim(1);
    let uniform = -logp.mean_dim(-1, false, kind);
    (nll, uniform)
}

/// Batch mean of [`smoothed_nll`]; an empty batch counts 0.
fn smoothed_nll_mean(logits: &Tensor, target: &Tensor, confidence: &Tensor, smoothing: &Tensor) -> Tensor {
    if logits.size()[0] == 0 {
        return Tensor::zeros([], (Kind::Float, logits.device()));
    }
    smoothed_nll(logits, target, confidence, smoothing).mean(float_kind(logits))
}

/// float32 for the loss arithmetic, float64 when the logits are float64 (as in gradient checks).
fn float_kind(t: &Tensor) -> Kind {
    if t.kind() == Kind::Double {
        Kind::Double
    } else {
        Kind::Float
    }
}

/// Batch mean of [`label_smooth_per_sample`]; an empty batch counts 0.
pub fn label_smooth(logits: &Tensor, target: &Tensor, eps: &Tensor) -> Tensor {
    smoothed_nll_mean(logits, target, &(1.0 - eps), eps)
}

/// The reference's `SampleLabelSmoothing(eps)`, batch mean: per sample
/// `(1 - eps) * nll + (1 - p_i) * eps * mean_c(-log p_c)`. The confidence stays `1 - eps` (set
/// once in the reference's constructor); only the smoothing term is scaled per sample, so the
/// weights of a sample need not sum to 1. This is what produced the paper's numbers.
pub fn sample_smooth(logits: &Tensor, target: &Tensor, p_id: &Tensor, eps: f64) -> Tensor {
    smoothed_nll_mean(logits, target, &Tensor::from(1.0 - eps), &((1.0 - p_id) * eps))
}

/// The reference's distillation loss, per batch: `CE(x / T, y) + lamda * T^2 * KL`, where the KL
/// term is `sum_j softmax(x_K / T)_j * (log softmax(x_K / T)_j - log softmax(t_K / T)_j)` over the
/// teacher's top-`k` classes (`k = -1`: all), as PyTorch's `KLDivLoss(log_softmax(teacher),
/// softmax(student))` computes it.
pub fn distillation(logits: &Tensor, target: &Tensor, teacher: &Tensor, k: i64, lamda: f64, t: f64) -> Tensor {
    if logits.size()[0] == 0 {
        return Tensor::zeros([], (Kind::Float, logits.device()));
    }
    let (ce, kl) = distillation_terms(logits, target, teacher, k, t);
    (ce + kl * (lamda * t * t)).mean(Kind::Float)
}

/// The two per-sample terms of [`distillation`]: `CE(x / T, y)` and the KL term before its
/// weight `lamda * T^2`.
pub fn distillation_terms(logits: &Tensor, target: &Tensor, teacher: &Tensor, k: i64, t: f64) -> (Tensor, Tensor) {
    let (x, xt) = (logits / t, teacher / t);
    let ce = x.cross_entropy_loss::<Tensor>(target, None, tch::Reduction::None, -100, 0.0);
    let k = if k == -1 { xt.size()[1] } else { k.min(xt.size()[1]) };
    let (top_t, index) = xt.topk(k, 1, true, true);
    let xk = x.gather(1, &index, false);
    let student = xk.softmax(1, Kind::Float);
    let kl = (&student * (xk.log_softmax(1, Kind::Float) - top_t.log_softmax(1, Kind::Float))).sum_dim_intlist(
        1,
        false,
        Kind::Float,
    );
    (ce, kl)
}

/// The criterion of one part of the batch (originals or augmented views).
#[derive(Debug, Clone, PartialEq)]
pub enum Criterion {
    /// Label smoothing with one eps.
    LabelSmooth(f64),
    /// The reference's sample-wise smoothing: confidence `1 - eps`, smoothing `(1 - p_i) * eps`.
    SampleSmooth(f64),
    /// A deviation from the reference (`--normalised-sample-smooth`): a normalised smoothed label
    /// per sample, eps_i = (1 - p_i) * eps for both terms (confidence `1 - eps_i`).
    SampleSmoothNormalised(f64),
    /// Distillation from the pretrained teacher.
    Distillation { k: i64, lamda: f64, t: f64 },
}

impl Criterion {
    /// The (original part, augmented part) criteria of `--loss` with `--weighting`, as the
    /// reference pairs them.
    pub fn pair(m: &MethodConfig) -> (Self, Self) {
        use Criterion::*;
        let (org, aug) = (m.smooth_org, m.smooth_aug);
        match (m.loss, m.weighting) {
            (LossName::SampleSmooth, Weighting::Regular) => (LabelSmooth(org), SampleSmooth(aug)),
            (LossName::SampleSmooth, Weighting::Reverse) => (LabelSmooth(aug), SampleSmooth(aug)),
            (LossName::SampleSmooth, _) => (SampleSmooth(aug), SampleSmooth(aug)),
            (LossName::Distillation, _) => (LabelSmooth(org), Distillation { k: m.k, lamda: m.lamda, t: m.t }),
            (LossName::LabelSmooth, _) => (LabelSmooth(org), LabelSmooth(aug)),
        }
    }

    /// This criterion with `--normalised-sample-smooth`: the reference's SampleSmooth replaced by
    /// the normalised form (a deviation from the reference); other criteria are unchanged.
    pub fn normalised(self) -> Self {
        match self {
            Criterion::SampleSmooth(eps) => Criterion::SampleSmoothNormalised(eps),
            other => other,
        }
    }

    /// The batch loss of this part: `p` are the samples' p_ID (SampleSmooth), `teacher` the
    /// teacher's logits (Distillation).
    pub fn loss(&self, logits: &Tensor, target: &Tensor, p: Option<&Tensor>, teacher: Option<&Tensor>) -> Tensor {
        match *self {
            // a 0-dim CPU tensor acts as a scalar on any device (no transfer)
            Criterion::LabelSmooth(eps) => label_smooth(logits, target, &Tensor::from(eps)),
            Criterion::SampleSmooth(eps) => {
                sample_smooth(logits, target, p.expect("SampleSmooth needs p_ID (validated: --gmm)"), eps)
            }
            Criterion::SampleSmoothNormalised(eps) => {
                let p = p.expect("SampleSmooth needs p_ID (validated: --gmm)");
                label_smooth(logits, target, &((1.0 - p) * eps))
            }
            Criterion::Distillation { k, lamda, t } => {
                distillation(logits, target, teacher.expect("Distillation needs the teacher's logits"), k, lamda, t)
            }
        }
    }

    /// The per-sample terms of this criterion that the reference logs (its `statistics`), by
    /// name: the cross-entropy `ce` and the label-smoothing term `uniform`, or for Distillation
    /// `ce` (at temperature T) and `kl`.
    pub fn terms(&self, logits: &Tensor, target: &Tensor, teacher: Option<&Tensor>) -> [(&'static str, Tensor); 2] {
        match *self {
            Criterion::Distillation { k, t, .. } => {
                let teacher = teacher.expect("Distillation needs the teacher's logits");
                let (ce, kl) = distillation_terms(logits, target, teacher, k, t);
                [("ce", ce), ("kl", kl)]
            }
            _ => {
                let (nll, uniform) = nll_and_uniform(logits, target);
                [("ce", nll), ("uniform", uniform)]
            }
        }
    }

    /// The smoothing each sample gets from a sample-wise criterion, `(1 - p_i) * eps` (the
    /// reference logs it as `smooth`); `None` for the other criteria.
    pub fn smoothing(&self, p: Option<&Tensor>) -> Option<Tensor> {
        match *self {
            Criterion::SampleSmooth(eps) | Criterion::SampleSmoothNormalised(eps) => {
                Some((1.0 - p.expect("SampleSmooth needs p_ID (validated: --gmm)")) * eps)
            }
            _ => None,
        }
    }
}

/// The loss of a whole batch of `n_ori` original views followed by augmented views:
/// `prob * org(originals) + (1 - prob) * aug(augmented views)`, an empty part counting 0.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchLoss {
    /// The criterion of the original views.
    pub org: Criterion,
    /// The criterion of the augmented views.
    pub aug: Criterion,
    /// `--prob`: the weight of the original part.
    pub prob: f64,
}

impl BatchLoss {
    /// The batch loss; `p` (p_ID after `--weighting`) and `teacher` cover the whole batch.
    pub fn loss(
        &self,
        logits: &Tensor,
        y: &Tensor,
        n_ori: i64,
        p: Option<&Tensor>,
        teacher: Option<&Tensor>,
    ) -> Tensor {
        self.combine(&self.parts(logits, y, n_ori, p, teacher))
    }

    /// The losses of the original part and of the augmented part (the reference's `loss_org`
    /// and `loss_aug`), each 0 when its part is empty.
    pub fn parts(
        &self,
        logits: &Tensor,
        y: &Tensor,
        n_ori: i64,
        p: Option<&Tensor>,
        teacher: Option<&Tensor>,
    ) -> [Tensor; 2] {
        let n = logits.size()[0];
        let part = |t: Option<&Tensor>, start: i64, len: i64| t.map(|t| t.narrow(0, start, len));
        let half = |c: &Criterion, start: i64, len: i64| {
            c.loss(
                &logits.narrow(0, start, len),
                &y.narrow(0, start, len),
                part(p, start, len).as_ref(),
                part(teacher, start, len).as_ref(),
            )
        };
        [half(&self.org, 0, n_ori), half(&self.aug, n_ori, n - n_ori)]
    }

    /// The batch loss of its two parts: `prob * org + (1 - prob) * aug`.
    pub fn combine(&self, parts: &[Tensor; 2]) -> Tensor {
        self.combine_weighted(parts, [1.0, 1.0])
    }

    /// The batch loss of its two parts, each multiplied by its weight (one process's part of a
    /// global batch, see `method::StepBatch::part_of`): `prob·w0·org + (1 - prob)·w1·aug`.
    pub fn combine_weighted(&self, [org, aug]: &[Tensor; 2], [w_org, w_aug]: [f64; 2]) -> Tensor {
        org * (self.prob * w_org) + aug * ((1.0 - self.prob) * w_aug)
    }
}

/// `--weighting`: the p_ID that the criteria see, from the GMM's. `regular` keeps them,
/// `reverse` uses 1 - p, `random` permutes them across the batch (originals included) and
/// `uniform` draws each from U(0, 1), as the reference does.
pub fn weight_p(p: &Tensor, weighting: Weighting) -> Tensor {
    match weighting {
        Weighting::Reverse => 1.0 - p,
        Weighting::Random => p.index_select(0, &Tensor::randperm(p.size()[0], (Kind::Int64, p.device()))),
        Weighting::Uniform => p.rand_like(),
        Weighting::Regular => p.shallow_clone(),
    }
}

/// Number of samples whose label is among the top `k` logits (k clipped to the class count),
/// as a scalar tensor on the logits' device (no host synchronisation).
pub fn correct_topk(logits: &Tensor, target: &Tensor, k: i64) -> Tensor {
    let k = k.min(logits.size()[1]);
    let (_, top) = logits.topk(k, 1, true, true);
    top.eq_tensor(&target.unsqueeze(1)).any_dim(1, false).sum(Kind::Float)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn label_smoothing_matches_its_closed_form() {
        let logits = Tensor::from_slice(&[2.0f32, 0.0, -1.0, 0.5, 0.5, 0.5]).view([2, 3]);
        let target = Tensor::from_slice(&[0i64, 2]);
        let eps = 0.3;
        let got = label_smooth(&logits, &target, &Tensor::from(eps)).double_value(&[]);
        let mut want = 0.0;
        for (row, t) in [([2.0f64, 0.0, -1.0], 0usize), ([0.5, 0.5, 0.5], 2)] {
            let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
            let logp: Vec<f64> = row.iter().map(|v| v - lse).collect();
            want += (1.0 - eps) * -logp[t] + eps * -logp.iter().sum::<f64>() / 3.0;
        }
        assert!((got - want / 2.0).abs() < 1e-6, "{got} vs {}", want / 2.0);
        // eps = 0 is cross-entropy
        let ce = logits.cross_entropy_for_logits(&target).double_value(&[]);
        assert!((label_smooth(&logits, &target, &Tensor::from(0.0)).double_value(&[]) - ce).abs() < 1e-6);
        let empty = label_smooth(&logits.narrow(0, 0, 0), &target.narrow(0, 0, 0), &Tensor::from(0.1));
        assert_eq!(empty.double_value(&[]), 0.0);
    }

    #[test]
    fn sample_smooth_keeps_the_confidence_and_scales_only_the_smoothing() {
        let logits = Tensor::from_slice(&[2.0f32, 0.0, -1.0, 0.5, 0.1, 0.9]).view([2, 3]);
        let target = Tensor::from_slice(&[0i64, 2]);
        let value = |c: Criterion, p: &Tensor| c.loss(&logits, &target, Some(p), None).double_value(&[]);
        let ce = Criterion::LabelSmooth(0.0).loss(&logits, &target, None, None).double_value(&[]);
        // p = 1 (ID): the reference keeps the cross-entropy at weight 1 - eps with no smoothing
        let ones = Tensor::ones([2], (Kind::Float, Device::Cpu));
        assert!((value(Criterion::SampleSmooth(0.4), &ones) - 0.6 * ce).abs() < 1e-7);
        // the normalised deviation gives plain cross-entropy there
        assert!((value(Criterion::SampleSmoothNormalised(0.4), &ones) - ce).abs() < 1e-7);
        // p = 0 (OOD): both are full label smoothing
        let zeros = Tensor::zeros([2], (Kind::Float, Device::Cpu));
        let ls = Criterion::LabelSmooth(0.4).loss(&logits, &target, None, None).double_value(&[]);
        assert!((value(Criterion::SampleSmooth(0.4), &zeros) - ls).abs() < 1e-7);
        assert!((value(Criterion::SampleSmoothNormalised(0.4), &zeros) - ls).abs() < 1e-7);
        // p mixes per sample: 0.6 nll + (1 - p) 0.4 uniform
        let p = Tensor::from_slice(&[1.0f32, 0.25]);
        let nll = label_smooth_per_sample(&logits, &target, &Tensor::from(0.0));
        let uniform = label_smooth_per_sample(&logits, &target, &Tensor::from(1.0));
        let want: f64 = (0..2)
            .map(|i| 0.6 * nll.double_value(&[i]) + (1.0 - p.double_value(&[i])) * 0.4 * uniform.double_value(&[i]))
            .sum::<f64>()
            / 2.0;
        assert!((value(Criterion::SampleSmooth(0.4), &p) - want).abs() < 1e-6);
        assert_eq!(Criterion::SampleSmooth(0.4).normalised(), Criterion::SampleSmoothNormalised(0.4));
        assert_eq!(Criterion::LabelSmooth(0.4).normalised(), Criterion::LabelSmooth(0.4));
    }

    #[test]
    fn sample_smooth_gradient_matches_finite_differences() {
        let x = Tensor::from_slice(&[0.3f64, -1.2, 0.8, 1.5, 0.2, -0.4]).view([2, 3]).set_requires_grad(true);
        let target = Tensor::from_slice(&[1i64, 0]);
        let p = Tensor::from_slice(&[0.2f64, 0.9]);
        for f in [
            &(|x: &Tensor| sample_smooth(x, &target, &p, 0.5).to_kind(Kind::Double)) as &dyn Fn(&Tensor) -> Tensor,
            &|x: &Tensor| label_smooth(x, &target, &((1.0 - &p) * 0.5)).to_kind(Kind::Double),
        ] {
            check_gradient(&x, f);
        }
    }

    fn check_gradient(x: &Tensor, f: &dyn Fn(&Tensor) -> Tensor) {
        let x = &x.detach().set_requires_grad(true);
        f(x).backward();
        let grad = x.grad();
        for i in 0..6 {
            let h = 1e-6;
            let e = Tensor::zeros([6], (Kind::Double, Device::Cpu))
                .index_fill(0, &Tensor::from_slice(&[i]), h)
                .view([2, 3]);
            let num = tch::no_grad(|| (f(&(x + &e)) - f(&(x - &e))).double_value(&[]) / (2.0 * h));
            let ana = grad.view([-1]).double_value(&[i]);
            assert!((num - ana).abs() < 1e-4, "d/dx{i}: numeric {num} vs analytic {ana}");
        }
    }

    #[test]
    fn distillation_matches_the_reference_formula() {
        let x = Tensor::from_slice(&[1.0f32, 2.0, 0.5, -1.0]).view([1, 4]);
        let teacher = Tensor::from_slice(&[0.2f32, 3.0, 1.0, -2.0]).view([1, 4]);
        let y = Tensor::from_slice(&[1i64]);
        let (t, lamda) = (2.0f64, 0.5);
        let got = distillation(&x, &y, &teacher, 2, lamda, t).double_value(&[]);
        // by hand: teacher's top-2 classes are 1 and 2
        let xs = [1.0f64, 2.0, 0.5, -1.0].map(|v| v / t);
        let lse = xs.iter().map(|v| v.exp()).sum::<f64>().ln();
        let ce = lse - xs[1];
        let (s, tt) = ([xs[1], xs[2]], [3.0 / t, 1.0 / t]);
        let ls = |v: [f64; 2]| {
            let l = (v[0].exp() + v[1].exp()).ln();
            [v[0] - l, v[1] - l]
        };
        let (lps, lpt) = (ls(s), ls(tt));
        let kl: f64 = (0..2).map(|j| lps[j].exp() * (lps[j] - lpt[j])).sum();
        let want = ce + lamda * t * t * kl;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn criteria_pairs_follow_the_reference() {
        use Criterion::*;
        let pair = |loss: LossName, weighting: Weighting| {
            let mut m = crate::config::TrainConfig::default().method;
            (m.loss, m.weighting, m.smooth_org, m.smooth_aug, m.k) = (loss, weighting, 0.1, 0.4, 3);
            Criterion::pair(&m)
        };
        assert_eq!(pair(LossName::LabelSmooth, Weighting::Regular), (LabelSmooth(0.1), LabelSmooth(0.4)));
        assert_eq!(pair(LossName::SampleSmooth, Weighting::Regular), (LabelSmooth(0.1), SampleSmooth(0.4)));
        assert_eq!(pair(LossName::SampleSmooth, Weighting::Reverse), (LabelSmooth(0.4), SampleSmooth(0.4)));
        assert_eq!(pair(LossName::SampleSmooth, Weighting::Uniform), (SampleSmooth(0.4), SampleSmooth(0.4)));
        assert_eq!(pair(LossName::Distillation, Weighting::Regular).1, Distillation { k: 3, lamda: 0.5, t: 5.0 });
    }

    #[test]
    fn topk_counts() {
        let logits = Tensor::from_slice(&[3.0f32, 2.0, 1.0, 1.0, 2.0, 3.0]).view([2, 3]);
        let target = Tensor::from_slice(&[1i64, 2]);
        assert_eq!(correct_topk(&logits, &target, 1).double_value(&[]), 1.0);
        assert_eq!(correct_topk(&logits, &target, 2).double_value(&[]), 2.0);
        assert_eq!(correct_topk(&logits, &target, 5).to_device(Device::Cpu).double_value(&[]), 2.0);
    }
}
