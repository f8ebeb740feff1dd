//! `resmooth export RUN --pth FILE`: a run folder's last finished epoch as the reference's
//! torch.save checkpoint `{'epoch', 'log', 'optimizer', 'model'}` (what `--save-format pth` writes
//! every epoch, [`super::checkpoint::write_reference_checkpoint`]), which PyTorch loads with
//! `torch.load(f)['model']` and `load_state_dict(strict=True)`, and whose optimizer state
//! `optimizer.load_state_dict` takes.

use super::checkpoint::{write_reference_checkpoint, Checkpoint, SgdSettings, TrainingState};
use super::EngineError;
use crate::config::{ModelSpec, TrainConfig};
use crate::model::Model;
use crate::run_folder::RunFolder;
use std::path::Path;
use tch::Device;

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
