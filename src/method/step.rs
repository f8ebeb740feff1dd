//! One training step of the method: p_ID of the augmented views from the pretrained scorer and
//! the GMM, the `--weighting` variants, the criteria of the original and augmented parts, and
//! `--fair-comparison`; the per-epoch sums stay on the device until they are reported.

use super::{p_id_tensor, score, Gmm};
use crate::config::{FairComparison, LossName, MethodConfig, Weighting};
use crate::loss::{correct_topk, weight_p, BatchLoss, Criterion};
use crate::model::Model;
use crate::optim::Sgd;
use crate::report::GmmMetrics;
use tch::{Device, Kind, Tensor};

/// A batch on the device: `n_ori` original views followed by augmented views, and the labels.
pub struct StepBatch {
    pub x: Tensor,
    pub y: Tensor,
    pub n_ori: i64,
}

impl StepBatch {
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

/// Per-epoch training sums, kept on the device (read only when reported).
pub struct StepSums {
    loss: Tensor,
    c1: Tensor,
    c5: Tensor,
    /// Images trained on so far.
    pub seen: usize,
    /// With a GMM: the ID/OOD accuracy counts, the OOD augmented views, the summed smoothing.
    gmm: Option<GmmSums>,
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
        StepSums { loss: zero(device), c1: zero(device), c5: zero(device), seen: 0, gmm: None }
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

    /// One optimisation step with learning rate `lr`; returns false when the step was skipped
    /// (a fair-comparison batch with nothing to keep).
    pub fn step(&self, model: &Model, opt: &mut Sgd, lr: f64, batch: &StepBatch, sums: &mut StepSums) -> bool {
        let p = self.p_id(batch);
        if self.fair != FairComparison::Disable {
            return self.fair_step(model, opt, lr, batch, p.expect("validated: --fair-comparison needs --gmm"), sums);
        }
        let logits = model.forward_t(&batch.x, true);
        let ood = p.as_ref().map(|p| p.lt(0.5));
        let p = p.map(|p| weight_p(&p, self.weighting));
        let teacher = self.teacher_logits(&batch.x);
        let loss = self.loss.loss(&logits, &batch.y, batch.n_ori, p.as_ref(), teacher.as_ref());
        opt.zero_grad();
        loss.backward();
        opt.step(lr);
        let logits = logits.detach();
        sums.add(&loss, &logits, &batch.y);
        if let Some(ood) = ood {
            self.add_gmm_sums(sums, &logits, batch, &ood, p.as_ref());
        }
        true
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
        let (n_ori, m) = (batch.n_ori, batch.len() - batch.n_ori);
        let correct = logits.argmax(1, false).eq_tensor(&batch.y);
        let id = ood.logical_not();
        g.id_correct += correct.logical_and(&id).sum(Kind::Float);
        g.id_total += id.sum(Kind::Float);
        g.ood_correct += correct.logical_and(ood).sum(Kind::Float);
        g.ood_total += ood.sum(Kind::Float);
        g.aug_ood += ood.narrow(0, n_ori, m).sum(Kind::Float);
        g.aug_total += m as f64;
        g.smooth_sum += match (&self.loss.aug, p) {
            (Criterion::SampleSmooth(eps) | Criterion::SampleSmoothNormalised(eps), Some(p)) => {
                (p.narrow(0, n_ori, m).neg() + 1.0).sum(Kind::Float) * *eps
            }
            (Criterion::LabelSmooth(eps), _) => Tensor::from((eps * m as f64) as f32),
            _ => zero(device),
        };
    }

    /// `--fair-comparison`: trains on augmented views only, keeping the first
    /// `min(#ID, #OOD, 256)` OOD views (DAOOD), ID views (DAID) or views (mix) of the batch. As
    /// in the reference, the p_ID given to the loss are those of the batch's first views.
    fn fair_step(
        &self,
        model: &Model,
        opt: &mut Sgd,
        lr: f64,
        batch: &StepBatch,
        p: Tensor,
        sums: &mut StepSums,
    ) -> bool {
        let (n, n_ori) = (batch.len(), batch.n_ori);
        let (x, y) = batch.part(n_ori, n - n_ori);
        let p = p.narrow(0, n_ori, n - n_ori);
        let logits = model.forward_t(&x, true);
        let ood = p.lt(0.5);
        let id = ood.logical_not();
        let count = |m: &Tensor| m.sum(Kind::Int64).int64_value(&[]);
        let keep = count(&id).min(count(&ood)).min(256);
        if keep == 0 {
            return false;
        }
        // the first `keep` views of the kept kind (mix: of any kind)
        let kept = match self.fair {
            FairComparison::Daood => ood.nonzero().squeeze_dim(1).narrow(0, 0, keep),
            FairComparison::Daid => id.nonzero().squeeze_dim(1).narrow(0, 0, keep),
            _ => Tensor::arange(keep, (Kind::Int64, x.device())),
        };
        let (sel_logits, sel_y) = (logits.index_select(0, &kept), y.index_select(0, &kept));
        let loss = self.loss.aug.loss(&sel_logits, &sel_y, Some(&p.narrow(0, 0, keep)), None);
        opt.zero_grad();
        loss.backward();
        opt.step(lr);
        sums.add(&loss, &sel_logits.detach(), &sel_y);
        true
    }
}
