//! Losses: label smoothing with one eps for the batch or one per sample, and top-k accuracy.

use tch::{Kind, Tensor};

/// Per-sample label-smoothed NLL: `(1 - eps) * nll + eps * mean_c(-log p_c)`; `eps` is a
/// scalar tensor or one value per sample.
pub fn label_smooth_per_sample(logits: &Tensor, target: &Tensor, eps: &Tensor) -> Tensor {
    let logp = logits.log_softmax(-1, Kind::Float);
    let nll = -logp.gather(1, &target.unsqueeze(1), false).squeeze_dim(1);
    let uniform = -logp.mean_dim(-1, false, Kind::Float);
    (1.0 - eps) * nll + eps * uniform
}

/// Batch mean of [`label_smooth_per_sample`]; an empty batch counts 0.
pub fn label_smooth(logits: &Tensor, target: &Tensor, eps: &Tensor) -> Tensor {
    if logits.size()[0] == 0 {
        return Tensor::zeros([], (Kind::Float, logits.device()));
    }
    label_smooth_per_sample(logits, target, eps).mean(Kind::Float)
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
    fn topk_counts() {
        let logits = Tensor::from_slice(&[3.0f32, 2.0, 1.0, 1.0, 2.0, 3.0]).view([2, 3]);
        let target = Tensor::from_slice(&[1i64, 2]);
        assert_eq!(correct_topk(&logits, &target, 1).double_value(&[]), 1.0);
        assert_eq!(correct_topk(&logits, &target, 2).double_value(&[]), 2.0);
        assert_eq!(correct_topk(&logits, &target, 5).to_device(Device::Cpu).double_value(&[]), 2.0);
    }
}
