//! The pretrained baseline as the GMM's scorer (and the distillation teacher): loading it (where
//! it is found is `run_folder`'s), its per-sample losses, and p_ID of those losses on the device.

use super::{Gmm, MethodError};
use crate::config::{DatasetName, ModelSpec};
use crate::model::Model;
use crate::run_folder::baseline_tag;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// What to do when the baseline of run `tag` is missing: the command that trains it.
pub fn baseline_command(model: &ModelSpec, dataset: DatasetName, tag: &str) -> String {
    format!(
        "train it first with `resmooth train --dataset {dataset} --model {model} --prob 1.0 --tag {}` (or pass --pretrained PATH)",
        baseline_tag(tag)
    )
}

/// Loads the pretrained baseline (the scorer or teacher) in fp32, as the reference's; a missing
/// or mismatched file is an error naming the path and the command that makes it. `classes` and
/// `image` are the dataset's class count and [height, width].
pub fn load_pretrained(
    path: &Path,
    model: &ModelSpec,
    dataset: DatasetName,
    (classes, image): (i64, [usize; 2]),
    tag: &str,
    device: Device,
) -> Result<Model, MethodError> {
    let make = baseline_command(model, dataset, tag);
    if !path.is_file() {
        return Err(MethodError::MissingBaseline { path: path.to_path_buf(), make });
    }
    let baseline = |source| MethodError::Baseline { make: make.clone(), source };
    let mut m = Model::build_for(model, classes, image, device).map_err(baseline)?;
    m.load(path).map_err(baseline)?;
    Ok(m)
}

/// Per-sample cross-entropy of `model` in eval mode, without gradient.
pub fn score(model: &Model, x: &Tensor, y: &Tensor) -> Tensor {
    tch::no_grad(|| {
        let logits = model.forward_t(x, false);
        logits.cross_entropy_loss::<Tensor>(y, None, tch::Reduction::None, -100, 0.0)
    })
}

/// `p_ID` of per-sample losses on the device (no host synchronisation): the GMM posterior of
/// the lower-mean component for `log(loss + 1e-10)`, computed in float64.
pub fn p_id_tensor(gmm: &Gmm, loss: &Tensor) -> Tensor {
    let x = (loss.to_kind(Kind::Double) + 1e-10).log();
    let id = gmm.id_component();
    let log_prob = |k: usize| {
        let prec = 1.0 / gmm.variances[k].sqrt();
        let norm = gmm.weights[k].ln() + prec.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln();
        let z = (&x - gmm.means[k]) * prec;
        norm - z.square() * 0.5
    };
    (log_prob(id) - log_prob(1 - id)).sigmoid().to_kind(Kind::Float)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelName;

    #[test]
    fn device_posterior_equals_the_gmm_posterior() {
        let gmm = Gmm {
            weights: [0.3, 0.7],
            means: [1.0, -2.0],
            variances: [0.5, 1.5],
            converged: true,
            iterations: 3,
            lower_bound: 0.0,
        };
        let losses = [1e-6f32, 0.01, 0.1, 0.5, 1.0, 3.0, 20.0];
        let got = Vec::<f32>::try_from(p_id_tensor(&gmm, &Tensor::from_slice(&losses))).unwrap();
        for (l, g) in losses.iter().zip(got) {
            assert!((gmm.p_id_loss(*l as f64) - g as f64).abs() < 1e-6, "loss {l}");
        }
    }

    #[test]
    fn missing_pretrained_names_the_path_and_the_command() {
        let err = load_pretrained(
            Path::new("logs/c/r/baseline/best.safetensors"),
            &ModelName::ResNet18.into(),
            DatasetName::Cifar10,
            (10, [32, 32]),
            "c/r/rs",
            Device::Cpu,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("logs/c/r/baseline/best.safetensors") && err.contains("--tag c/r/baseline"), "{err}");
    }
}
