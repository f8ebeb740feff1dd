//! Evaluation: test-view loss and accuracy of a model on a split, the `--evalDA` trees, and
//! `--only-eval` of saved weights.

use super::{EngineError, Setup};
use crate::config::TrainConfig;
use crate::data::{self, Dataset, ImageSet};
use crate::dist::{shard, Dist};
use crate::loss::correct_topk;
use crate::model::Model;
use crate::pipeline::{self, Placement};
use crate::progress::Progress;
use crate::report::{DaMetrics, EvalMetrics};
use crate::run_folder::RunFolder;
use std::ops::Range;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// Test-view loss and top-1/top-5 accuracy of `model` on `set` (no augmentation), in batches of
/// `batch_size`; the sums stay on the device until the end.
pub fn evaluate(model: &Model, set: &ImageSet, batch_size: usize, to: Placement) -> EvalMetrics {
    evaluate_until(model, set, 0..set.len(), batch_size, to, &|| false).expect("never stopped")
}

/// [`evaluate`] over the images `range` of `set`, checking `stop` before each batch: `None`
/// when it said to stop.
fn evaluate_until(
    model: &Model,
    set: &ImageSet,
    range: Range<usize>,
    batch_size: usize,
    to: Placement,
    stop: &dyn Fn() -> bool,
) -> Option<EvalMetrics> {
    let _guard = tch::no_grad_guard();
    let per = set.image_bytes();
    let zero = || Tensor::zeros([], (Kind::Float, to.device));
    let (mut loss, mut c1, mut c5) = (zero(), zero(), zero());
    for start in range.clone().step_by(batch_size) {
        if stop() {
            return None;
        }
        crate::io::test_point("eval");
        let n = batch_size.min(range.end - start);
        let x = pipeline::to_device(&set.pixels[start * per..(start + n) * per], (n, set.height, set.width), &[], to);
        let y = pipeline::upload(Tensor::from_slice(&set.labels[start..start + n]), to.device);
        let logits = model.forward_t(&x, false);
        loss += logits.cross_entropy_for_logits(&y) * n as f64;
        c1 += correct_topk(&logits, &y, 1);
        c5 += correct_topk(&logits, &y, 5);
    }
    let n = range.len().max(1) as f64;
    Some(EvalMetrics {
        loss: loss.double_value(&[]) / n,
        top1: c1.double_value(&[]) / n,
        top5: c5.double_value(&[]) / n,
    })
}

/// The evaluations of one epoch: the test split, and with `--evalDA` the DAOOD and DAID trees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalReport {
    pub test: EvalMetrics,
    pub da: Option<DaMetrics>,
}

/// The sets a run evaluates on: the test split and, with `--evalDA`, the DAOOD and DAID trees;
/// with several processes, each evaluates its [`shard`] of every set and the metrics are
/// reduced over them.
pub(super) struct EvalSets<'a> {
    test: &'a ImageSet,
    da: Option<(ImageSet, ImageSet)>,
    batch_size: usize,
    to: Placement,
    dist: Option<Dist>,
}

impl<'a> EvalSets<'a> {
    /// The test split of `setup` and, with `--evalDA`, the trees of `config` (read with the
    /// dataset's class names and checked to hold images of the test split's size).
    pub(super) fn new(config: &TrainConfig, setup: &'a Setup, to: Placement) -> Result<Self, EngineError> {
        let run = &config.run;
        let da = if run.eval_da {
            Some((read_da(&run.daood, "--daood", &setup.dataset)?, read_da(&run.daid, "--daid", &setup.dataset)?))
        } else {
            None
        };
        Ok(EvalSets { test: &setup.dataset.test, da, batch_size: config.optim.batch_size, to, dist: None })
    }

    /// These sets shared by the processes of `dist`, each evaluating its part.
    pub(super) fn shared_by(self, dist: Option<&Dist>) -> Self {
        EvalSets { dist: dist.cloned(), ..self }
    }

    /// Evaluates `model` on every set.
    pub(super) fn evaluate(&self, model: &Model) -> EvalReport {
        let report = self.evaluate_until(model, &|| false);
        report.ok().flatten().expect("one process, never stopped")
    }

    /// Evaluates `model` on every set, checking `stop` before each batch: `None` when it said to
    /// stop. With several processes the evaluation is not stopped part-way (the ranks would
    /// stop at different batches); a collective that fails is the error.
    pub(super) fn evaluate_until(
        &self,
        model: &Model,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<EvalReport>, EngineError> {
        let on = |set: &ImageSet| -> Result<Option<EvalMetrics>, EngineError> {
            let Some(dist) = &self.dist else {
                return Ok(evaluate_until(model, set, 0..set.len(), self.batch_size, self.to, stop));
            };
            let mine = shard(set.len(), dist.rank(), dist.world_size());
            let count = mine.len();
            let metrics = evaluate_until(model, set, mine, self.batch_size, self.to, &|| false).expect("not stopped");
            Ok(Some(metrics.over_ranks(count, dist)?))
        };
        let Some(test) = on(self.test)? else { return Ok(None) };
        let da = match &self.da {
            Some((ood, id)) => match (on(ood)?, on(id)?) {
                (Some(ood), Some(id)) => Some(DaMetrics::new(&ood, &id)),
                _ => return Ok(None),
            },
            None => None,
        };
        Ok(Some(EvalReport { test, da }))
    }
}

fn read_da(dir: &Path, flag: &'static str, ds: &Dataset) -> Result<ImageSet, EngineError> {
    let set =
        data::read_labelled_folder(dir, &ds.classes).map_err(|source| EngineError::EvalDaRead { flag, source })?;
    if (set.height, set.width) != (ds.test.height, ds.test.width) {
        return Err(EngineError::EvalDa(format!(
            "{} holds {}x{} images but the test set's are {}x{}",
            dir.display(),
            set.width,
            set.height,
            ds.test.width,
            ds.test.height
        )));
    }
    Ok(set)
}

/// `--only-eval`: evaluates the weights of `--save` (or the run's `model.safetensors`) on the
/// test split (and the `--evalDA` trees); returns the file evaluated and the metrics.
pub fn evaluate_weights(
    config: &TrainConfig,
    progress: &mut dyn Progress,
) -> Result<(PathBuf, EvalReport), EngineError> {
    config.validate()?;
    let paths = RunFolder::of(config);
    let setup = Setup::new(&config.data, config.run.seed, config.run.gpu, config.run.workers, progress)?;
    let mut model = Model::build_for(&config.model.model, setup.num_classes(), setup.image_size(), setup.device)?
        .with_precision(config.model.precision);
    model.load(&paths.weights).map_err(|source| EngineError::OnlyEval { path: paths.weights.clone(), source })?;
    let to = setup.placement(false);
    let report = EvalSets::new(config, &setup, to)?.evaluate(&model);
    Ok((paths.weights, report))
}
