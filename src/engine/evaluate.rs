//! Evaluation: test-view loss and accuracy of a model on a split, the `--evalDA` trees, and
//! `--only-eval` of saved weights.

use super::{EngineError, Setup};
use crate::augment::Augmenter;
use crate::config::TrainConfig;
use crate::data::{self, ImageSet};
use crate::dist::{shard, Dist};
use crate::loss::correct_topk;
use crate::model::Model;
use crate::pipeline::{self, EpochPlan, Loader, Placement, Slice, Upload};
use crate::progress::Progress;
use crate::report::{DaMetrics, EvalMetrics};
use crate::run_folder::RunFolder;
use crate::streaming::Split;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::{Kind, Tensor};

/// Test-view loss and top-1/top-5 accuracy of `model` on `set` (no augmentation), in batches of
/// `batch_size`; the sums stay on the device until the end.
pub fn evaluate(model: &Model, set: &ImageSet, batch_size: usize, to: Placement) -> EvalMetrics {
    evaluate_until(model, set, 0..set.len(), batch_size, to, &|| false).expect("never stopped").finish()
}

/// [`evaluate`] of a split held in memory or streamed (its test views made by the data workers
/// `pool`); an image that cannot be read stops it with its name, or is left out
/// (`--on-bad-image skip`).
pub fn evaluate_split(
    model: &Model,
    split: &Split,
    batch_size: usize,
    to: Placement,
    pool: &Arc<rayon::ThreadPool>,
) -> Result<EvalMetrics, EngineError> {
    let sums = evaluate_part(model, split, 0..split.len(), (batch_size, to), pool, &|| false)?;
    Ok(sums.expect("never stopped").finish())
}

/// Sums of the loss and of the top-1 and top-5 hits over the images evaluated so far, on the device.
struct EvalSums {
    loss: Tensor,
    c1: Tensor,
    c5: Tensor,
    images: usize,
}

impl EvalSums {
    fn new(device: tch::Device) -> Self {
        let zero = || Tensor::zeros([], (Kind::Float, device));
        EvalSums { loss: zero(), c1: zero(), c5: zero(), images: 0 }
    }

    /// Adds the test views `x` labelled `y`.
    fn add(&mut self, model: &Model, x: &Tensor, y: &Tensor) {
        let n = y.size()[0];
        let logits = model.forward_t(x, false);
        self.loss += logits.cross_entropy_for_logits(y) * n as f64;
        self.c1 += correct_topk(&logits, y, 1);
        self.c5 += correct_topk(&logits, y, 5);
        self.images += n as usize;
    }

    fn finish(self) -> EvalMetrics {
        let n = self.images.max(1) as f64;
        EvalMetrics {
            loss: self.loss.double_value(&[]) / n,
            top1: self.c1.double_value(&[]) / n,
            top5: self.c5.double_value(&[]) / n,
        }
    }
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
) -> Option<EvalSums> {
    let _guard = tch::no_grad_guard();
    let per = set.image_bytes();
    let mut sums = EvalSums::new(to.device);
    for start in range.clone().step_by(batch_size) {
        if stop() {
            return None;
        }
        crate::io::test_point("eval");
        let n = batch_size.min(range.end - start);
        let x = pipeline::to_device(&set.pixels[start * per..(start + n) * per], (n, set.height, set.width), &[], to);
        let y = pipeline::upload(Tensor::from_slice(&set.labels[start..start + n]), to.device);
        sums.add(model, &x, &y);
    }
    Some(sums)
}

/// The sums over the samples `range` of `split`, held in memory ([`evaluate_until`]) or streamed
/// ([`evaluate_streamed`]), checking `stop` before each batch: `None` when it said to stop.
fn evaluate_part(
    model: &Model,
    split: &Split,
    range: Range<usize>,
    (batch_size, to): (usize, Placement),
    pool: &Arc<rayon::ThreadPool>,
    stop: &dyn Fn() -> bool,
) -> Result<Option<EvalSums>, EngineError> {
    match split {
        Split::Memory(set) => Ok(evaluate_until(model, set, range, batch_size, to, stop)),
        Split::Stream(_) => evaluate_streamed(model, split, range, (batch_size, to), pool, stop),
    }
}

/// [`evaluate_until`] over the samples `range` of a streamed split, its test views made by the
/// data workers `pool` as they are read; an image that cannot be read stops it with its name,
/// or is left out (`--on-bad-image skip`).
fn evaluate_streamed(
    model: &Model,
    split: &Split,
    range: Range<usize>,
    (batch_size, to): (usize, Placement),
    pool: &Arc<rayon::ThreadPool>,
    stop: &dyn Fn() -> bool,
) -> Result<Option<EvalSums>, EngineError> {
    let _guard = tch::no_grad_guard();
    let source = Arc::new(Slice { source: split.source(&Arc::new(Augmenter::none())), range });
    let plan = EpochPlan::in_order(batch_size);
    let mut loader = Loader::start_source(source, plan, pool.clone(), 2, 0);
    let mut sums = EvalSums::new(to.device);
    while let Some(batch) = loader.try_next_batch()? {
        if stop() {
            return Ok(None);
        }
        crate::io::test_point("eval");
        if !batch.is_empty() {
            let (x, y) = batch.upload(to);
            sums.add(model, &x, &y);
        }
        loader.recycle(batch);
    }
    Ok(Some(sums))
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
    test: &'a Split,
    da: Option<(Split, Split)>,
    batch_size: usize,
    to: Placement,
    dist: Option<Dist>,
    pool: Arc<rayon::ThreadPool>,
}

impl<'a> EvalSets<'a> {
    /// The test split of `setup` and, with `--evalDA`, the trees of `config` (read with the
    /// dataset's class names and checked to hold images of the test split's size).
    pub(super) fn new(config: &TrainConfig, setup: &'a Setup, to: Placement) -> Result<Self, EngineError> {
        let run = &config.run;
        let da = if run.eval_da {
            let read = |dir, flag| read_da(dir, flag, setup).map(|set| Split::Memory(Arc::new(set)));
            Some((read(&run.daood, "--daood")?, read(&run.daid, "--daid")?))
        } else {
            None
        };
        let (batch_size, pool) = (config.optim.batch_size, setup.pool.clone());
        Ok(EvalSets { test: &setup.test, da, batch_size, to, dist: None, pool })
    }

    /// These sets shared by the processes of `dist`, each evaluating its part.
    pub(super) fn shared_by(self, dist: Option<&Dist>) -> Self {
        EvalSets { dist: dist.cloned(), ..self }
    }

    /// Evaluates `model` on every set.
    pub(super) fn evaluate(&self, model: &Model) -> Result<EvalReport, EngineError> {
        Ok(self.evaluate_until(model, &|| false)?.expect("never stopped"))
    }

    /// Evaluates `model` on every set, checking `stop` before each batch: `None` when it said to
    /// stop. With several processes the evaluation is not stopped part-way (the ranks would
    /// stop at different batches); a collective that fails is the error.
    pub(super) fn evaluate_until(
        &self,
        model: &Model,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<EvalReport>, EngineError> {
        let part = |set: &Split, range: Range<usize>, stop: &dyn Fn() -> bool| {
            evaluate_part(model, set, range, (self.batch_size, self.to), &self.pool, stop)
        };
        let on = |set: &Split| -> Result<Option<EvalMetrics>, EngineError> {
            let Some(dist) = &self.dist else {
                return Ok(part(set, 0..set.len(), stop)?.map(EvalSums::finish));
            };
            let mine = shard(set.len(), dist.rank(), dist.world_size());
            let sums = part(set, mine, &|| false)?.expect("not stopped");
            let count = sums.images;
            Ok(Some(sums.finish().over_ranks(count, dist)?))
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

fn read_da(dir: &Path, flag: &'static str, setup: &Setup) -> Result<ImageSet, EngineError> {
    let set = data::read_labelled_folder(dir, &setup.dataset.classes)
        .map_err(|source| EngineError::EvalDaRead { flag, source })?;
    let (height, width) = setup.test.view_size();
    if (set.height, set.width) != (height, width) {
        return Err(EngineError::EvalDa(format!(
            "{} holds {}x{} images but the test set's are {}x{}",
            dir.display(),
            set.width,
            set.height,
            width,
            height
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
    setup.report_skipped(progress);
    Ok((paths.weights, report?))
}
