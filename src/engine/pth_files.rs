//! A run's weights as the reference's train.py saves them: the torch.save checkpoint
//! `{'epoch', 'log', 'optimizer', 'model'}` (`--save-format pth`, and `resmooth export RUN
//! --pth FILE` for a run folder), which PyTorch loads with `torch.load(f)['model']` and
//! `load_state_dict(strict=True)`, and whose optimizer state `optimizer.load_state_dict` takes.

use super::checkpoint::{Checkpoint, ResumeMeta, SgdSettings, TrainingState};
use super::EngineError;
use crate::config::{ModelSpec, TrainConfig};
use crate::model::pth::{self, Optimizer};
use crate::model::{Model, ModelError};
use crate::pickle::Value;
use crate::report::EpochMetrics;
use crate::run_folder::RunFolder;
use std::path::Path;
use tch::Device;

/// The reference's `log` of an epoch: `{'train': {loss, top1, top5, lr}, 'test': {loss, top1,
/// top5}}` (its Accumulator's keys), from the epoch's metrics line; empty dicts without one.
fn log_of(metrics_line: Option<&str>) -> Value {
    let m: Option<EpochMetrics> = metrics_line.and_then(|l| serde_json::from_str(l).ok());
    let entry = |pairs: &[(&str, f64)]| {
        Value::Dict(pairs.iter().map(|(k, v)| (Value::Str(k.to_string()), Value::Float(*v))).collect())
    };
    let (train, test) = match &m {
        Some(m) => (
            entry(&[("loss", m.train_loss), ("top1", m.train_top1), ("top5", m.train_top5), ("lr", m.lr)]),
            entry(&[("loss", m.test_loss), ("top1", m.test_top1), ("top5", m.test_top5)]),
        ),
        None => (entry(&[]), entry(&[])),
    };
    Value::Dict(vec![(Value::Str("train".into()), train), (Value::Str("test".into()), test)])
}

/// Writes `state` at `path` as the reference's checkpoint of epoch `meta.epoch`: its state_dict,
/// its SGD state (momentum buffers by the index of `model.parameters()`, the group's settings,
/// the epoch's learning rate and the base rate as `initial_lr`) and the epoch's metrics.
pub fn write_reference_checkpoint(path: &Path, state: &TrainingState, meta: &ResumeMeta) -> Result<(), ModelError> {
    let buffers: Vec<(usize, &tch::Tensor)> =
        state.momentum.iter().filter_map(|(k, t)| state.params.iter().position(|p| p == k).map(|i| (i, t))).collect();
    let line = meta.metrics_line.as_deref();
    let lr = line.and_then(|l| serde_json::from_str::<EpochMetrics>(l).ok()).map(|m| m.lr);
    let initial_lr = meta.config.get("lr").and_then(|v| v.as_f64()).unwrap_or(0.1);
    let SgdSettings { momentum, weight_decay, nesterov } = state.sgd;
    let optimizer = Optimizer {
        lr: lr.unwrap_or(initial_lr),
        initial_lr,
        momentum,
        weight_decay,
        nesterov,
        params: state.params.len(),
        buffers,
    };
    let checkpoint = pth::Checkpoint { epoch: meta.epoch as i64, log: log_of(line), weights: state.weights, optimizer };
    pth::write(path, &checkpoint)
}

/// `resmooth export RUN --pth FILE`: writes the last finished epoch of the run in `run_dir`
/// (its `checkpoint.safetensors`: weights, momentum, epoch, metrics) as the reference's
/// checkpoint at `out`. Returns the epoch written.
pub fn export_pth(run_dir: &Path, out: &Path) -> Result<usize, EngineError> {
    let path = RunFolder::at(run_dir).checkpoint;
    if !path.is_file() {
        return Err(EngineError::NotExportable {
            dir: run_dir.to_path_buf(),
            reason: format!("it has no {} (a run folder of resmooth train)", path.display()),
        });
    }
    let saved = Checkpoint::read(&path)?;
    let meta = saved.meta.clone();
    let bad = |reason: String| EngineError::NotExportable { dir: run_dir.to_path_buf(), reason };
    let config: TrainConfig = serde_json::from_value(meta.config.clone())
        .map_err(|e| bad(format!("its checkpoint records a configuration this version cannot read ({e})")))?;
    let ModelSpec::Builtin(name) = config.model.model else {
        return Err(bad(format!(
            "its model is {}, whose parameter order only the module knows; load its {} in PyTorch instead",
            config.model.model,
            crate::run_folder::WEIGHTS
        )));
    };
    let (weights, momentum) = saved.tensors();
    let classes = weights
        .iter()
        .find(|(k, _)| ["classifier.weight", "linear.weight", "fc.weight", "fc_out.weight"].contains(&k.as_str()))
        .map(|(_, t)| t.size()[0])
        .ok_or_else(|| bad("its checkpoint holds no classifier weights".into()))?;
    // the model gives the reference's order of the state_dict and of the parameters
    let mut model = Model::new_uninitialised(name, classes, Device::Cpu);
    model.load_from(&path, weights.into_iter().collect())?;
    let ordered = model.state_dict_ordered();
    let params = model.parameter_names();
    let sgd = SgdSettings { momentum: 0.9, weight_decay: config.optim.weight_decay, nesterov: config.optim.nesterov };
    let state = TrainingState { weights: &ordered, params: &params, momentum: &momentum, sgd };
    write_reference_checkpoint(out, &state, &meta)?;
    Ok(meta.epoch)
}
