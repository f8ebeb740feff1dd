//! The resumable checkpoint of a run: weights, optimizer momentum, epoch, step count and the
//! run's configuration in one safetensors file, replaced atomically each epoch.

use crate::config::TrainConfig;
use crate::model::{read_safetensors, write_safetensors_atomic, Model, ModelError};
use crate::optim::Sgd;
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::{Device, Tensor};

const MODEL: &str = "model.";
const MOMENTUM: &str = "optimizer.momentum_buffer.";
const META: &str = "resume.meta_json";

/// Where a run stands after an epoch, saved with the weights.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResumeMeta {
    /// Last finished epoch.
    pub epoch: usize,
    /// Optimizer steps taken so far.
    pub steps: i64,
    pub best_test_top1: f64,
    pub best_epoch: usize,
    /// Seconds spent so far, over all sessions of the run.
    pub seconds: f64,
    /// The seed the per-epoch random streams derive from (the whole RNG state, with `epoch`).
    pub seed: u64,
    /// The identity of the training configuration the run was started with (see
    /// [`TrainConfig::identity`]), as flat JSON.
    pub config: serde_json::Value,
}

impl ResumeMeta {
    /// Where a fresh run of `config` stands: before its first epoch.
    pub fn fresh(config: &TrainConfig) -> Self {
        ResumeMeta {
            epoch: 0,
            steps: 0,
            best_test_top1: f64::NEG_INFINITY,
            best_epoch: 0,
            seconds: 0.0,
            seed: config.run.seed,
            config: config.identity_json(),
        }
    }
}

/// Writes model, momentum buffers and `meta` to `path` atomically.
pub fn save(path: &Path, model: &Model, opt: &Sgd, meta: &ResumeMeta) -> Result<(), ModelError> {
    let cpu = |t: &Tensor| t.to_device(Device::Cpu).contiguous();
    let mut tensors: Vec<(String, Tensor)> =
        model.state_dict().iter().map(|(k, v)| (format!("{MODEL}{k}"), cpu(v))).collect();
    tensors.extend(opt.state().iter().map(|(k, v)| (format!("{MOMENTUM}{k}"), cpu(v))));
    let json = serde_json::to_vec(meta).expect("meta serialises");
    tensors.push((META.into(), Tensor::from_slice(&json)));
    write_safetensors_atomic(path, &tensors)
}

/// Reads only the metadata of a checkpoint.
pub fn read_meta(path: &Path) -> Result<ResumeMeta, ModelError> {
    let tensors = read_safetensors(path)?;
    meta_of(path, &tensors)
}

fn meta_of(path: &Path, tensors: &[(String, Tensor)]) -> Result<ResumeMeta, ModelError> {
    let bad = |err: String| ModelError::Read { path: path.to_path_buf(), err };
    let (_, t) =
        tensors.iter().find(|(k, _)| k == META).ok_or_else(|| bad("not a resmooth checkpoint (no metadata)".into()))?;
    let bytes: Vec<u8> = Vec::<u8>::try_from(t).map_err(|e| bad(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| bad(format!("corrupt metadata: {e}")))
}

/// Loads a checkpoint into `model` and `opt` and returns its metadata.
pub fn load(path: &Path, model: &mut Model, opt: &mut Sgd) -> Result<ResumeMeta, ModelError> {
    let tensors = read_safetensors(path)?;
    let meta = meta_of(path, &tensors)?;
    let mut weights = std::collections::BTreeMap::new();
    let mut momentum = Vec::new();
    for (k, t) in tensors {
        if let Some(key) = k.strip_prefix(MODEL) {
            weights.insert(key.to_string(), t);
        } else if let Some(key) = k.strip_prefix(MOMENTUM) {
            momentum.push((key.to_string(), t));
        }
    }
    model.load_from(path, weights)?;
    opt.load_state(momentum).map_err(|err| ModelError::Read { path: path.to_path_buf(), err })?;
    Ok(meta)
}
