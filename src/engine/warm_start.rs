//! `--save` read on start, as the reference's train.py reads it ("file found. loading..."):
//! when the run folder holds no checkpoint of its own (which keeps priority), an existing
//! `--save` file is a checkpoint (a dict with `model` or `state_dict`: weights with
//! DataParallel's `module.` prefixes stripped, SGD momentum and epoch restored; evaluated only
//! when its epoch is not below `--epochs`), or a bare state_dict (the starting weights). Each
//! case is said in one line, which the run's observer also writes to `train.log`.

use super::checkpoint::ResumeMeta;
use super::evaluate::EvalSets;
use super::{EngineError, Setup};
use crate::config::TrainConfig;
use crate::data::Normalisation;
use crate::model::pth::{self, Contents, SgdState, WeightsFormat};
use crate::model::{read_safetensors, Model};
use crate::optim::Sgd;
use crate::progress::Progress;
use crate::report::Summary;
use std::path::Path;

/// How a run starts with respect to its `--save` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveStart {
    /// Not read: no `--save`, `--restart`, or the run resumed from its own checkpoint.
    NotRead,
    /// No file at `--save`: a fresh start.
    Fresh,
    /// A bare state_dict: the starting weights, the optimizer and epochs fresh.
    Weights,
    /// A checkpoint of epoch `epoch`: weights, momentum and epoch restored; training goes on
    /// from that epoch.
    Checkpoint { epoch: usize },
    /// A checkpoint of epoch `epoch`, not below `--epochs`: evaluated only, as the reference does.
    EvaluateOnly { epoch: usize },
}

/// Reads `--save` on start when the run did not resume from its own checkpoint (`meta` is
/// fresh), into `model` and `opt`, and sets `meta` to where the run then stands (a checkpoint's
/// epoch; the run keeps `normalisation`, the dataset's, as a run started here does). Says which
/// case it is through `progress`.
pub fn read_save(
    config: &TrainConfig,
    model: &mut Model,
    opt: &mut Sgd,
    meta: &mut ResumeMeta,
    normalisation: Normalisation,
    progress: &mut dyn Progress,
) -> Result<SaveStart, EngineError> {
    let Some(save) = config.run.save.as_deref() else { return Ok(SaveStart::NotRead) };
    if meta.epoch > 0 || meta.partial.is_some() {
        return Ok(SaveStart::NotRead);
    }
    if config.run.restart {
        if save.exists() {
            progress.note(&format!("--restart: {} is not read; training from scratch", save.display()));
        }
        return Ok(SaveStart::NotRead);
    }
    if !save.exists() {
        progress.note(&format!("--save {} not found: training from scratch", save.display()));
        return Ok(SaveStart::Fresh);
    }
    let bad = |why: String| EngineError::Save { path: save.to_path_buf(), why };
    let contents = match pth::sniff(save) {
        WeightsFormat::Safetensors => Contents::StateDict(read_safetensors(save)?),
        _ => pth::read(save)?,
    };
    let (epoch, optimizer) = match contents {
        Contents::StateDict(weights) => {
            model.load_from(save, pth::strip_module_prefixes(weights).into_iter().collect())?;
            progress.note(&format!("--save {} holds a state_dict: it gives the starting weights", save.display()));
            return Ok(SaveStart::Weights);
        }
        Contents::Checkpoint { key, epoch, weights, optimizer } => {
            let Some(epoch) = epoch.and_then(|e| usize::try_from(e).ok()) else {
                return Err(bad(format!("a checkpoint with '{key}' but no epoch (the reference fails on it too)")));
            };
            let order: Vec<String> = weights.iter().map(|(k, _)| k.replace("module.", "")).collect();
            model.load_from(save, pth::strip_module_prefixes(weights).into_iter().collect())?;
            (epoch, optimizer.map(|o| (o, order)))
        }
    };
    let momentum = match optimizer {
        Some((sgd, order)) => restore_momentum(model, opt, sgd, &order).map_err(bad)?,
        None => "no optimizer state, so SGD momentum starts at zero".to_string(),
    };
    meta.keep_normalisation(normalisation);
    // the reference evaluates only when the checkpoint's epoch is not below --epochs, and
    // otherwise trains from the checkpoint's epoch, which it trains again
    if epoch >= config.optim.epochs {
        progress.note(&format!(
            "--save {}: checkpoint epoch@{epoch}, not below --epochs {}: evaluation only, as the reference",
            save.display(),
            config.optim.epochs
        ));
        return Ok(SaveStart::EvaluateOnly { epoch });
    }
    meta.epoch = epoch.saturating_sub(1);
    meta.steps = model.batches_tracked();
    progress.note(&format!(
        "--save {}: checkpoint epoch@{epoch}: weights and {momentum}; training epochs {}..={} (the reference trains the checkpoint's epoch again)",
        save.display(),
        meta.epoch + 1,
        config.optim.epochs
    ));
    Ok(SaveStart::Checkpoint { epoch })
}

/// Copies a reference checkpoint's momentum buffers into `opt`: its state is keyed by the index
/// of `model.parameters()`, which is the order of the parameters among the checkpoint's
/// state_dict keys (`order`). Returns what was restored, for the start line.
fn restore_momentum(model: &Model, opt: &mut Sgd, sgd: SgdState, order: &[String]) -> Result<String, String> {
    let ours = model.parameter_names();
    let params: Vec<&String> = order.iter().filter(|k| ours.contains(k)).collect();
    if params.len() != ours.len() || sgd.params != ours.len() {
        return Err(format!(
            "its optimizer state has {} parameters and its model {}, but --model {} has {}",
            sgd.params,
            params.len(),
            model.spec,
            ours.len()
        ));
    }
    let n = sgd.momentum.len();
    let buffers = sgd.momentum.into_iter().map(|(i, t)| (params[i].clone(), t)).collect();
    opt.load_state(buffers)?;
    let mut line = format!("SGD momentum ({n} buffers) restored");
    let differs = |saved: Option<f64>, ours: f64| saved.is_some_and(|s| (s - ours).abs() > 1e-12 * ours.abs().max(1.0));
    if differs(sgd.weight_decay, opt.weight_decay)
        || differs(sgd.momentum_factor, opt.momentum)
        || sgd.nesterov.is_some_and(|n| n != opt.nesterov)
    {
        line.push_str(&format!(
            " (its SGD settings, weight_decay {:?} nesterov {:?}, are replaced by this command line's)",
            sgd.weight_decay, sgd.nesterov
        ));
    }
    Ok(line)
}

/// The reference's evaluation-only case: evaluates `model` (a checkpoint of epoch `epoch`) on
/// the test split (and the `--evalDA` trees), says the result and returns it as the run's
/// summary; nothing is written.
pub fn evaluate_only(
    config: &TrainConfig,
    setup: &Setup,
    model: &Model,
    epoch: usize,
    progress: &mut dyn Progress,
) -> Result<Summary, EngineError> {
    let report = EvalSets::new(config, setup, setup.placement(false))?.evaluate(model)?;
    setup.report_skipped(progress);
    let t = report.test;
    progress.note(&format!(
        "evaluation of {}: test loss {:.4} top1 {:.4} top5 {:.4}",
        config.run.save.as_deref().unwrap_or(Path::new("--save")).display(),
        t.loss,
        t.top1,
        t.top5
    ));
    Ok(Summary {
        last_test_top1: t.top1,
        best_test_top1: t.top1,
        best_epoch: epoch,
        epochs: epoch,
        total_seconds: 0.0,
        parameters: model.num_parameters(),
        device: format!("{:?}", setup.device),
        pretrained: None,
        config: config.clone(),
    })
}
