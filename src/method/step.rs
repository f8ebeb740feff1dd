//! One training step of the method: p_ID of the augmented views from the pretrained scorer and
//! the GMM, the `--weighting` variants, the criteria of the original and augmented parts, and
//! `--fair-comparison`; the per-epoch sums stay on the device until they are reported. A
//! [`StepTimer`] (the benchmark's clock) may be told as each phase of a step ends.

use super::StepError;
use super::{p_id_tensor, score, Gmm};
use crate::config::{FairComparison, LossName, MethodConfig, Weighting};
use crate::dist::{Dist, DistError, Reducer};
use crate::loss::{correct_topk, weight_p, BatchLoss, Criterion};
use crate::model::Model;
use crate::optim::Sgd;
use crate::report::{EpochStats, GmmMetrics, PartStats};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// The model a step trains and its optimizer: what a step changes; with several processes,
/// the Reducer that averages its gradients over them in backward.
pub struct Net<'a> {
    pub model: &'a Model,
    pub opt: &'a mut Sgd,
    pub reducer: Option<&'a mut Reducer>,
}

impl Net<'_> {
    /// Every tensor a step changes: the model's parameters and buffers and the momentum buffers.
    pub fn state(&self) -> Vec<Tensor> {
        let mut all: Vec<Tensor> = self.model.state_dict().into_values().collect();
        all.extend(self.opt.state().into_iter().map(|(_, b)| b));
        all
    }
}

/// One step to take: its batch, the learning rate and the seed of its random draws.
pub struct Step {
    pub batch: StepBatch,
    pub lr: f64,
    /// The seed of libtorch's generator for the step (`--weighting random|uniform`, shake-shake).
    pub seed: i64,
}

/// What a step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stepped {
    /// The model was updated.
    Updated,
    /// No update: a `--fair-comparison` batch with nothing to keep.
    Skipped,
}

/// The phases of a step, in the order they end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepPhase {
    /// p_ID: the pretrained scorer on the augmented views and the GMM posterior (`--gmm`).
    Scorer,
    /// The forward pass, the criteria and the backward pass (with a CUDA graph: the whole replay).
    Step,
    /// The SGD update.
    Optimizer,
    /// Adding the step's results to the epoch's sums: top-k counts, per-sample terms, GMM sums.
    Account,
}

/// Told as each phase of a step ends: the benchmark's clock. Training passes none.
pub trait StepTimer {
    /// `phase` of the step under way just ended.
    fn lap(&mut self, phase: StepPhase);
}

/// Tells `timer`, if any, that `phase` ended.
pub(super) fn lap(timer: &mut Option<&mut dyn StepTimer>, phase: StepPhase) {
    if let Some(t) = timer {
        t.lap(phase);
    }
}

/// `timer`, if any, lent for one call.
fn lend<'a>(timer: &'a mut Option<&mut dyn StepTimer>) -> Option<&'a mut dyn StepTimer> {
    match timer {
        Some(t) => Some(&mut **t),
        None => None,
    }
}

/// A batch on the device: `n_ori` original views followed by augmented views, and the labels.
pub struct StepBatch {
    pub x: Tensor,
    pub y: Tensor,
    pub n_ori: i64,
    /// What the mean losses of the original and augmented parts are multiplied by: `[1, 1]` for
    /// a whole batch; for one process's part of a global batch, that part's share of the global
    /// part's mean, times the number of processes, whose gradients are averaged (see
    /// [`StepBatch::part_of`]).
    pub weights: [f64; 2],
}

impl StepBatch {
    /// A whole batch: `n_ori` original views of `x` first.
    pub fn whole(x: Tensor, y: Tensor, n_ori: i64) -> StepBatch {
        StepBatch { x, y, n_ori, weights: [1.0, 1.0] }
    }

    /// This process's part of a global batch of `whole = (len, n_ori)` views, among
    /// `world_size` processes: each part's loss is the sum of its samples' terms over the global
    /// part's count, times `world_size` (the Reducer's mean over the processes then makes the
    /// gradient of the global batch's loss, as one process would compute it). A part with no
    /// global sample counts 0, as in one process.
    pub fn part_of(x: Tensor, y: Tensor, n_ori: i64, whole: (usize, usize), world_size: usize) -> StepBatch {
        let len = x.size()[0];
        let weight = |mine: i64, global: usize| {
            if global == 0 {
                0.0
            } else {
                mine as f64 * world_size as f64 / global as f64
            }
        };
        let weights = [weight(n_ori, whole.1), weight(len - n_ori, whole.0 - whole.1)];
        StepBatch { x, y, n_ori, weights }
    }

    /// Number of images.
    pub fn len(&self) -> i64 {
        self.x.size()[0]
    }

    /// True when the batch holds no image.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Images `start..start + len` and their labels.
    fn part(&self, start: i64, len: i64) -> (Tensor, Tensor) {
        (self.x.narrow(0, start, len), self.y.narrow(0, start, len))
    }
}

/// What one step of the method leaves on the device for the epoch's sums (detached); under a
/// CUDA graph, the graph's outputs, overwritten by its next replay.
pub struct StepOutputs {
    pub loss: Tensor,
    pub logits: Tensor,
    /// The losses of the original and augmented parts.
    pub parts: [Tensor; 2],
    /// p_ID after `--weighting`, with a GMM.
    pub p: Option<Tensor>,
    /// The views judged OOD (p_ID < 0.5), with a GMM.
    pub ood: Option<Tensor>,
    /// The distillation teacher's logits.
    pub teacher: Option<Tensor>,
}

/// Per-epoch training sums, kept on the device (read only when reported).
pub struct StepSums {
    loss: Tensor,
    c1: Tensor,
    c5: Tensor,
    /// Images trained on so far.
    pub seen: usize,
    /// With a GMM: the ID/OOD accuracy counts, the OOD augmented views, the summed smoothing.
    gmm: Option<GmmSums>,
    /// The per-sample statistics of the epoch (not under `--fair-comparison`, as the reference).
    samples: SampleSums,
}

/// What the reference's `statistics` collect in an epoch, kept on the device as the steps
/// make them and read once by [`StepSums::epoch_stats`].
#[derive(Default)]
struct SampleSums {
    /// Per step: the batch size and its number of original views.
    sizes: Vec<(i64, i64)>,
    /// Per step: the losses of the original and augmented parts, as a 2-vector.
    parts: Vec<Tensor>,
    /// Per part (original, augmented) and step: the two per-sample terms, one after the other.
    terms: [Vec<Tensor>; 2],
    /// The names of the two terms of each part's criterion.
    names: [[&'static str; 2]; 2],
    /// Per step: the smoothing of each sample with a sample-wise criterion.
    smooth: Vec<Tensor>,
}

/// The sums behind [`GmmMetrics`].
struct GmmSums {
    id_correct: Tensor,
    id_total: Tensor,
    ood_correct: Tensor,
    ood_total: Tensor,
    aug_ood: Tensor,
    aug_total: Tensor,
    smooth_sum: Tensor,
}

fn zero(device: Device) -> Tensor {
    Tensor::zeros([], (Kind::Float, device))
}

fn value(t: &Tensor) -> f64 {
    t.double_value(&[])
}

impl StepSums {
    /// Empty sums on `device`.
    pub fn new(device: Device) -> Self {
        StepSums {
            loss: zero(device),
            c1: zero(device),
            c5: zero(device),
            seen: 0,
            gmm: None,
            samples: SampleSums::default(),
        }
    }

    fn add(&mut self, loss: &Tensor, logits: &Tensor, y: &Tensor) {
        let n = logits.size()[0];
        self.loss += loss.detach() * n as f64;
        self.c1 += correct_topk(logits, y, 1);
        self.c5 += correct_topk(logits, y, 5);
        self.seen += n as usize;
    }

    /// Mean training loss so far (reads the device).
    pub fn loss(&self) -> f64 {
        value(&self.loss) / self.seen.max(1) as f64
    }

    /// Training top-1 accuracy so far.
    pub fn top1(&self) -> f64 {
        value(&self.c1) / self.seen.max(1) as f64
    }

    /// Training top-5 accuracy so far.
    pub fn top5(&self) -> f64 {
        value(&self.c5) / self.seen.max(1) as f64
    }

    /// The per-sample statistics of the epoch (one read of the device); `None` when no step
    /// recorded them (`--fair-comparison`, as the reference).
    pub fn epoch_stats(&self) -> Option<EpochStats> {
        self.samples.read()
    }

    /// The ID/OOD metrics of a run with a GMM.
    pub fn gmm_metrics(&self) -> Option<GmmMetrics> {
        let ratio = |a: &Tensor, b: &Tensor| {
            let d = value(b);
            (d > 0.0).then(|| value(a) / d)
        };
        self.gmm.as_ref().map(|g| GmmMetrics {
            train_top1_id: ratio(&g.id_correct, &g.id_total),
            train_top1_ood: ratio(&g.ood_correct, &g.ood_total),
            ood_fraction: ratio(&g.aug_ood, &g.aug_total).unwrap_or(0.0),
            mean_smooth: ratio(&g.smooth_sum, &g.aug_total).unwrap_or(0.0),
        })
    }
}

impl SampleSums {
    /// Reads the epoch's statistics from the device in one transfer and reduces them as the
    /// reference does: part losses and term means per batch, weighted by the batch size.
    fn read(&self) -> Option<EpochStats> {
        if self.sizes.is_empty() {
            return None;
        }
        let pieces: Vec<&Tensor> =
            self.parts.iter().chain(&self.terms[0]).chain(&self.terms[1]).chain(&self.smooth).collect();
        let all = Vec::<f32>::try_from(Tensor::cat(&pieces, 0).to_device(Device::Cpu))
            .expect("float statistics read back from the device");
        let mut rest = &all[..];
        let mut take = |len: usize| {
            let (head, tail) = rest.split_at(len);
            rest = tail;
            head
        };
        let parts = take(2 * self.sizes.len());
        let terms = [take(2 * self.part_len(0)), take(2 * self.part_len(1))];
        let smoothing = rest.to_vec();
        let total: i64 = self.sizes.iter().map(|s| s.0).sum();
        let part = |k: usize| {
            let loss = self.sizes.iter().zip(parts.chunks(2)).map(|(s, l)| l[k] as f64 * s.0 as f64).sum::<f64>();
            self.part_stats(k, terms[k], loss / total as f64, total)
        };
        Some(EpochStats { origin: part(0), augmentation: part(1), smoothing })
    }

    /// Number of samples of part `k` (0 original, 1 augmented) over the epoch.
    fn part_len(&self, k: usize) -> usize {
        self.sizes.iter().map(|&(n, n_ori)| if k == 0 { n_ori } else { n - n_ori } as usize).sum()
    }

    /// The statistics of part `k` from its per-step term blocks (`[a..., b...]` per step with
    /// a non-empty part).
    fn part_stats(&self, k: usize, mut blocks: &[f32], loss: f64, total: i64) -> PartStats {
        let mut sums = [0.0f64; 2];
        let mut log_losses = Vec::with_capacity(self.part_len(k));
        let mut any = false;
        for &(n, n_ori) in &self.sizes {
            let len = if k == 0 { n_ori } else { n - n_ori } as usize;
            if len == 0 {
                continue;
            }
            any = true;
            let (block, tail) = blocks.split_at(2 * len);
            blocks = tail;
            let (a, b) = block.split_at(len);
            // the reference adds each batch's mean term times the whole batch's size
            sums[0] += a.iter().map(|&v| v as f64).sum::<f64>() / len as f64 * n as f64;
            sums[1] += b.iter().map(|&v| v as f64).sum::<f64>() / len as f64 * n as f64;
            log_losses.extend(a.iter().map(|&ce| super::gmm::log_loss(ce as f64) as f32));
        }
        let terms = if any { (0..2).map(|j| (self.names[k][j], sums[j] / total as f64)).collect() } else { Vec::new() };
        PartStats { loss, terms, log_losses }
    }
}

/// The values of [`StepSums`], read exactly (each f32 sum widened to f64), so that a partial
/// epoch carried over a restart ends with the same sums as an uninterrupted one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SumsState {
    pub loss: f64,
    pub c1: f64,
    pub c5: f64,
    pub seen: usize,
    /// The sums behind [`GmmMetrics`], in the order of [`GmmSums`]' fields.
    pub gmm: Option<[f64; 7]>,
}

impl SumsState {
    /// The epoch's sums over every rank's steps, each rank having accounted its share of every
    /// batch (its loss being its weighted part of the global batch's, `dist::BatchShare::
    /// mean_weight`): what one process training on the whole batches would have summed.
    pub fn summed_over_ranks(&self, dist: &Dist) -> Result<SumsState, DistError> {
        let mut values = vec![self.loss, self.c1, self.c5, self.seen as f64];
        values.extend(self.gmm.iter().flatten());
        let sums = dist.sum_f64(&values)?;
        Ok(SumsState {
            loss: sums[0],
            c1: sums[1],
            c5: sums[2],
            seen: sums[3] as usize,
            gmm: self.gmm.map(|_| std::array::from_fn(|i| sums[4 + i])),
        })
    }
}

impl StepSums {
    /// Replaces the training sums (loss, accuracy, GMM counts; not the per-sample statistics,
    /// which stay this rank's) with their sums over every rank (a collective).
    pub fn sum_over_ranks(&mut self, dist: &Dist) -> Result<(), DistError> {
        let all = StepSums::from_state(&self.state().summed_over_ranks(dist)?, self.loss.device());
        *self = StepSums { samples: std::mem::take(&mut self.samples), ..all };
        Ok(())
    }

    /// The sums as plain numbers (reads the device).
    pub fn state(&self) -> SumsState {
        let gmm = self.gmm.as_ref().map(|g| {
            [&g.id_correct, &g.id_total, &g.ood_correct, &g.ood_total, &g.aug_ood, &g.aug_total, &g.smooth_sum]
                .map(value)
        });
        SumsState { loss: value(&self.loss), c1: value(&self.c1), c5: value(&self.c5), seen: self.seen, gmm }
    }

    /// Sums on `device` holding `state` exactly.
    pub fn from_state(state: &SumsState, device: Device) -> Self {
        let t = |v: f64| Tensor::from(v as f32).to_device(device);
        let gmm = state.gmm.map(|g| GmmSums {
            id_correct: t(g[0]),
            id_total: t(g[1]),
            ood_correct: t(g[2]),
            ood_total: t(g[3]),
            aug_ood: t(g[4]),
            aug_total: t(g[5]),
            smooth_sum: t(g[6]),
        });
        // the per-sample statistics of the steps before a restart are not carried over: an
        // epoch resumed mid-way reports those of its remaining steps (metrics.jsonl is whole)
        let samples = SampleSums::default();
        StepSums { loss: t(state.loss), c1: t(state.c1), c5: t(state.c5), seen: state.seen, gmm, samples }
    }
}

/// The augmented views a `--fair-comparison` step trains on, given their p_ID: with `keep =
/// min(#ID, #OOD, 256)` (ID: p_ID >= 0.5), the first `keep` OOD views (DAOOD), ID views (DAID) or
/// views of any kind (mix), as indices; `None` when `keep` is 0 (the step is skipped).
pub fn fair_kept(rule: FairComparison, p: &Tensor) -> Option<Tensor> {
    let ood = p.lt(0.5);
    let id = ood.logical_not();
    let count = |mask: &Tensor| mask.sum(Kind::Int64).int64_value(&[]);
    let keep = count(&id).min(count(&ood)).min(256);
    if keep == 0 {
        return None;
    }
    Some(match rule {
        FairComparison::Daood => ood.nonzero().squeeze_dim(1).narrow(0, 0, keep),
        FairComparison::Daid => id.nonzero().squeeze_dim(1).narrow(0, 0, keep),
        _ => Tensor::arange(keep, (Kind::Int64, p.device())),
    })
}

/// The backward pass of `loss`, its failure an error rather than a panic: with `averaged`
/// gradients (a Reducer armed), a collective of the gradient all-reduce that failed, as when
/// another process stopped.
fn backward(loss: &Tensor, averaged: bool) -> Result<(), StepError> {
    loss.f_backward().map_err(|e| {
        let message = e.to_string();
        if averaged {
            DistError::Collective { op: "the gradient all-reduce in backward", message }.into()
        } else {
            StepError::Backward(message)
        }
    })
}

/// What the method adds to plain training: the GMM with its scorer, the distillation teacher,
/// and the criteria of the original and augmented parts.
pub struct Method {
    gmm: Option<Gmm>,
    /// The pretrained baseline: the GMM's scorer and the distillation teacher.
    pretrained: Option<Model>,
    distill: bool,
    weighting: Weighting,
    fair: FairComparison,
    /// The criteria of the original and augmented parts and their weighting by `--prob`.
    loss: BatchLoss,
}

impl Method {
    /// The method of `config` with `--prob` = `prob`; `pretrained` is the baseline (needed by
    /// `--gmm` and Distillation), `gmm` the mixture fitted on its losses (with `--gmm`).
    pub fn new(config: &MethodConfig, prob: f64, pretrained: Option<Model>, gmm: Option<Gmm>) -> Self {
        let (mut org, mut aug) = Criterion::pair(config);
        if config.normalised_sample_smooth {
            (org, aug) = (org.normalised(), aug.normalised());
        }
        Method {
            gmm,
            pretrained,
            distill: config.loss == LossName::Distillation,
            weighting: config.weighting,
            fair: config.fair_comparison,
            loss: BatchLoss { org, aug, prob },
        }
    }

    /// One optimisation step of `net` on `step.batch` at `step.lr`, its random draws seeded by
    /// `step.seed`, adding to `sums`; `timer` is told as each phase ends.
    pub fn step(
        &self,
        net: &mut Net,
        step: &Step,
        sums: &mut StepSums,
        mut timer: Option<&mut dyn StepTimer>,
    ) -> Result<Stepped, StepError> {
        tch::manual_seed(step.seed);
        if self.fair != FairComparison::Disable {
            let p = self.p_id(&step.batch).expect("validated: --fair-comparison needs --gmm");
            lap(&mut timer, StepPhase::Scorer);
            return self.fair_step(net, step, p, sums, timer);
        }
        let out = self.compute(net, step.lr, &step.batch, lend(&mut timer))?;
        self.account(&out, &step.batch, sums, timer);
        Ok(Stepped::Updated)
    }

    /// The device work of one step (not under `--fair-comparison`): p_ID from the scorer and
    /// the GMM, the forward pass, the criteria, the backward pass and the SGD update at `lr`.
    /// No host synchronisation: it can be captured as a CUDA graph (with `lr` already on the
    /// device, [`Sgd::set_lr`], and no `timer`). With several processes, the gradients are
    /// averaged over them in backward (`net.reducer`); a collective that fails there, or in
    /// `--sync-bn`'s forward, is the error.
    pub fn compute(
        &self,
        net: &mut Net,
        lr: f64,
        batch: &StepBatch,
        mut timer: Option<&mut dyn StepTimer>,
    ) -> Result<StepOutputs, StepError> {
        let p = self.p_id(batch);
        lap(&mut timer, StepPhase::Scorer);
        if let Some(reducer) = net.reducer.as_deref_mut() {
            reducer.average_next_backward()?;
        }
        let logits = net.model.forward_t(&batch.x, true);
        if let Some(failed) = net.model.sync_bn_failure() {
            return Err(failed.into());
        }
        let ood = p.as_ref().map(|p| p.lt(0.5));
        let p = p.map(|p| weight_p(&p, self.weighting));
        // the teacher's forward pass (Distillation) times with the step, where the criteria need it
        let teacher = self.teacher_logits(&batch.x);
        let parts = self.loss.parts(&logits, &batch.y, batch.n_ori, p.as_ref(), teacher.as_ref());
        let loss = self.loss.combine_weighted(&parts, batch.weights);
        net.opt.zero_grad();
        backward(&loss, net.reducer.is_some())?;
        lap(&mut timer, StepPhase::Step);
        net.opt.step(lr);
        lap(&mut timer, StepPhase::Optimizer);
        let out = StepOutputs {
            loss: loss.detach(),
            logits: logits.detach(),
            parts: parts.map(|t| t.detach()),
            p,
            ood,
            teacher,
        };
        Ok(out)
    }

    /// Adds what the step `out` made from `batch` to the epoch's sums (on the device).
    pub fn account(
        &self,
        out: &StepOutputs,
        batch: &StepBatch,
        sums: &mut StepSums,
        mut timer: Option<&mut dyn StepTimer>,
    ) {
        sums.add(&out.loss, &out.logits, &batch.y);
        self.add_samples(&mut sums.samples, &out.logits, batch, &out.parts, out.p.as_ref(), out.teacher.as_ref());
        if let Some(ood) = &out.ood {
            self.add_gmm_sums(sums, &out.logits, batch, ood, out.p.as_ref());
        }
        lap(&mut timer, StepPhase::Account);
    }

    /// Keeps the per-sample statistics of a step on the device: the part losses, each part's
    /// two terms per sample and the sample-wise smoothing.
    fn add_samples(
        &self,
        s: &mut SampleSums,
        logits: &Tensor,
        batch: &StepBatch,
        parts: &[Tensor; 2],
        p: Option<&Tensor>,
        teacher: Option<&Tensor>,
    ) {
        let _guard = tch::no_grad_guard();
        let (n, n_ori) = (batch.len(), batch.n_ori);
        s.sizes.push((n, n_ori));
        s.parts.push(Tensor::stack(&[parts[0].detach(), parts[1].detach()], 0).to_kind(Kind::Float));
        for (k, (criterion, start, len)) in
            [(&self.loss.org, 0, n_ori), (&self.loss.aug, n_ori, n - n_ori)].into_iter().enumerate()
        {
            if len == 0 {
                continue;
            }
            let part = |t: &Tensor| t.narrow(0, start, len);
            let teacher = teacher.map(part);
            let [(a, ta), (b, tb)] = criterion.terms(&part(logits), &part(&batch.y), teacher.as_ref());
            s.names[k] = [a, b];
            s.terms[k].push(Tensor::cat(&[ta.to_kind(Kind::Float), tb.to_kind(Kind::Float)], 0));
            if let Some(smooth) = criterion.smoothing(p.map(part).as_ref()) {
                s.smooth.push(smooth.to_kind(Kind::Float));
            }
        }
    }

    /// p_ID of every sample of the batch (originals count as ID), before any reweighting; `None`
    /// without a GMM.
    fn p_id(&self, batch: &StepBatch) -> Option<Tensor> {
        let gmm = self.gmm.as_ref()?;
        let (n, n_ori) = (batch.len(), batch.n_ori);
        let ones = Tensor::ones([n_ori], (Kind::Float, batch.x.device()));
        if n_ori == n {
            return Some(ones); // no augmented view to score
        }
        let scorer = self.pretrained.as_ref().expect("the GMM's scorer is loaded with it");
        let (x, y) = batch.part(n_ori, n - n_ori);
        Some(Tensor::cat(&[ones, p_id_tensor(gmm, &score(scorer, &x, &y))], 0))
    }

    /// The teacher's logits for Distillation (eval mode, no gradient).
    fn teacher_logits(&self, x: &Tensor) -> Option<Tensor> {
        let teacher = self.pretrained.as_ref().filter(|_| self.distill)?;
        Some(tch::no_grad(|| teacher.forward_t(x, false)))
    }

    /// Adds the ID/OOD accuracy counts, the OOD share of augmented views and their smoothing.
    fn add_gmm_sums(&self, sums: &mut StepSums, logits: &Tensor, batch: &StepBatch, ood: &Tensor, p: Option<&Tensor>) {
        let device = logits.device();
        let g = sums.gmm.get_or_insert_with(|| GmmSums {
            id_correct: zero(device),
            id_total: zero(device),
            ood_correct: zero(device),
            ood_total: zero(device),
            aug_ood: zero(device),
            aug_total: zero(device),
            smooth_sum: zero(device),
        });
        let (n_ori, n_aug) = (batch.n_ori, batch.len() - batch.n_ori);
        let correct = logits.argmax(1, false).eq_tensor(&batch.y);
        let id = ood.logical_not();
        g.id_correct += correct.logical_and(&id).sum(Kind::Float);
        g.id_total += id.sum(Kind::Float);
        g.ood_correct += correct.logical_and(ood).sum(Kind::Float);
        g.ood_total += ood.sum(Kind::Float);
        g.aug_ood += ood.narrow(0, n_ori, n_aug).sum(Kind::Float);
        g.aug_total += n_aug as f64;
        g.smooth_sum += match (&self.loss.aug, p) {
            (Criterion::SampleSmooth(eps) | Criterion::SampleSmoothNormalised(eps), Some(p)) => {
                (p.narrow(0, n_ori, n_aug).neg() + 1.0).sum(Kind::Float) * *eps
            }
            (Criterion::LabelSmooth(eps), _) => Tensor::from((eps * n_aug as f64) as f32),
            _ => zero(device),
        };
    }

    /// `--fair-comparison`: trains on augmented views only, keeping the first
    /// `min(#ID, #OOD, 256)` OOD views (DAOOD), ID views (DAID) or views (mix) of the batch. As
    /// in the reference, the p_ID given to the loss are those of the batch's first views.
    fn fair_step(
        &self,
        net: &mut Net,
        step: &Step,
        p: Tensor,
        sums: &mut StepSums,
        mut timer: Option<&mut dyn StepTimer>,
    ) -> Result<Stepped, StepError> {
        let batch = &step.batch;
        let (n, n_ori) = (batch.len(), batch.n_ori);
        let (x, y) = batch.part(n_ori, n - n_ori);
        let p = p.narrow(0, n_ori, n - n_ori);
        let logits = net.model.forward_t(&x, true);
        if let Some(failed) = net.model.sync_bn_failure() {
            return Err(failed.into());
        }
        let Some(kept) = fair_kept(self.fair, &p) else {
            return Ok(Stepped::Skipped);
        };
        let keep = kept.size()[0];
        let (sel_logits, sel_y) = (logits.index_select(0, &kept), y.index_select(0, &kept));
        let loss = self.loss.aug.loss(&sel_logits, &sel_y, Some(&p.narrow(0, 0, keep)), None);
        net.opt.zero_grad();
        backward(&loss, net.reducer.is_some())?;
        lap(&mut timer, StepPhase::Step);
        net.opt.step(step.lr);
        lap(&mut timer, StepPhase::Optimizer);
        sums.add(&loss, &sel_logits.detach(), &sel_y);
        lap(&mut timer, StepPhase::Account);
        Ok(Stepped::Updated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_of_a_global_batch_weighs_its_sums_over_the_global_counts_times_the_ranks() {
        let x = |n: i64| Tensor::zeros([n, 3, 2, 2], (Kind::Float, Device::Cpu));
        let y = |n: i64| Tensor::zeros([n], (Kind::Int64, Device::Cpu));
        // global batch of 8 with 3 originals over 2 ranks: rank 0 has 3 originals + 1 augmented
        let rank0 = StepBatch::part_of(x(4), y(4), 3, (8, 3), 2);
        assert_eq!(rank0.weights, [3.0 * 2.0 / 3.0, 2.0 / 5.0]);
        let rank1 = StepBatch::part_of(x(4), y(4), 0, (8, 3), 2);
        assert_eq!(rank1.weights, [0.0, 4.0 * 2.0 / 5.0]);
        // no augmented view in the global batch: its part counts 0
        assert_eq!(StepBatch::part_of(x(4), y(4), 4, (8, 8), 2).weights, [1.0, 0.0]);
        assert_eq!(StepBatch::whole(x(4), y(4), 2).weights, [1.0, 1.0]);
        // one process's part is the whole batch, with weights of exactly 1
        assert_eq!(StepBatch::part_of(x(8), y(8), 3, (8, 3), 1).weights, [1.0, 1.0]);
    }
}

#[cfg(test)]
mod fair_tests {
    use super::*;
    use crate::config::ModelName;
    use crate::loss::Criterion;

    fn indices(t: Option<Tensor>) -> Vec<i64> {
        t.map(|t| Vec::<i64>::try_from(t).unwrap()).unwrap_or_default()
    }

    #[test]
    fn fair_comparison_keeps_the_views_its_rule_selects() {
        // OOD (p < 0.5) at 1, 2, 5, 7; ID at 0, 3, 4, 6, 8: keep = min(5, 4) = 4
        let p = Tensor::from_slice(&[0.9f32, 0.1, 0.2, 0.5, 0.7, 0.3, 0.6, 0.49, 0.8]);
        assert_eq!(indices(fair_kept(FairComparison::Daood, &p)), [1, 2, 5, 7]);
        assert_eq!(indices(fair_kept(FairComparison::Daid, &p)), [0, 3, 4, 6]);
        assert_eq!(indices(fair_kept(FairComparison::Mix, &p)), [0, 1, 2, 3]);
        // no OOD view (or no ID view): nothing to keep, the step is skipped
        let all_id = Tensor::from_slice(&[0.9f32, 0.6, 0.5]);
        assert!(fair_kept(FairComparison::Daid, &all_id).is_none());
        let all_ood = Tensor::from_slice(&[0.1f32, 0.4, 0.49]);
        assert!(fair_kept(FairComparison::Daood, &all_ood).is_none());
        assert!(fair_kept(FairComparison::Mix, &all_ood).is_none());
    }

    /// A DAOOD step trains on exactly the views the rule keeps: its loss is the criterion's on
    /// those views alone, with the p_ID of the batch's first views (as the reference).
    #[test]
    fn a_fair_comparison_step_trains_on_the_kept_views_only() {
        tch::manual_seed(4);
        let model = Model::new(ModelName::ResNet18, 3, Device::Cpu);
        let scorer = Model::new(ModelName::ResNet18, 3, Device::Cpu);
        let (n, n_ori) = (12i64, 4i64);
        let x = Tensor::randn([n, 3, 8, 8], (Kind::Float, Device::Cpu));
        let y = Tensor::from_slice(&[0i64, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]);
        // a mixture that splits the augmented views' scores about their median
        let aug_loss = score(&scorer, &x.narrow(0, n_ori, n - n_ori), &y.narrow(0, n_ori, n - n_ori));
        let mut logs: Vec<f64> =
            Vec::<f32>::try_from(&aug_loss).unwrap().iter().map(|&l| (l as f64 + 1e-10).ln()).collect();
        logs.sort_by(f64::total_cmp);
        let mid = (logs[3] + logs[4]) / 2.0;
        let gmm = Gmm {
            weights: [0.5, 0.5],
            means: [mid - 0.1, mid + 0.1],
            variances: [0.05, 0.05],
            converged: true,
            iterations: 1,
            lower_bound: 0.0,
        };
        let p = p_id_tensor(&gmm, &score(&scorer, &x, &y)).narrow(0, n_ori, n - n_ori);
        let ood: Vec<i64> = Vec::<f32>::try_from(&p)
            .unwrap()
            .iter()
            .enumerate()
            .filter(|(_, &q)| q < 0.5)
            .map(|(i, _)| i as i64)
            .collect();
        assert_eq!(ood.len(), 4, "{p}");
        let expected = {
            let logits =
                model.forward_t(&x.narrow(0, n_ori, n - n_ori), true).index_select(0, &Tensor::from_slice(&ood));
            let y = y.narrow(0, n_ori, n - n_ori).index_select(0, &Tensor::from_slice(&ood));
            Criterion::SampleSmooth(0.4).loss(&logits, &y, Some(&p.narrow(0, 0, 4)), None).double_value(&[])
        };
        let mut config = crate::config::TrainConfig::default().method;
        (config.gmm, config.loss, config.smooth_aug) = (true, LossName::SampleSmooth, 0.4);
        config.fair_comparison = FairComparison::Daood;
        let method = Method::new(&config, 0.25, Some(scorer), Some(gmm));
        let mut opt = Sgd::new(&model.vs, 0.9, 5e-4, true);
        let mut sums = StepSums::new(Device::Cpu);
        let step = Step { batch: StepBatch::whole(x, y, n_ori), lr: 0.0, seed: 1 };
        let stepped =
            method.step(&mut Net { model: &model, opt: &mut opt, reducer: None }, &step, &mut sums, None).unwrap();
        assert_eq!(stepped, Stepped::Updated);
        assert_eq!(sums.seen, 4, "the step trains on the 4 kept views");
        assert!((sums.loss() - expected).abs() < 1e-5, "{} vs {expected}", sums.loss());
    }
}
