//! One training step of the method: the criteria of the original and augmented parts, p_ID
//! from the pretrained scorer and the GMM, the `--weighting` variants, `--fair-comparison`,
//! and the per-epoch sums kept on the device.

use crate::augment::Augmenter;
use crate::cli::TrainArgs;
use crate::data::ImageSet;
use crate::gmm::Gmm;
use crate::loss::{correct_topk, weight_p, BatchLoss, Criterion};
use crate::method;
use crate::model::Model;
use crate::optim::Sgd;
use crate::report::GmmMetrics;
use crate::train::RunPaths;
use anyhow::Result;
use std::sync::Arc;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Per-epoch training sums, kept on the device (read only when reported).
pub(crate) struct Accumulator {
    loss: Tensor,
    c1: Tensor,
    c5: Tensor,
    pub(crate) seen: usize,
    /// With a GMM: correct and total counts of ID and OOD views, OOD and total augmented views, summed smoothing.
    id_correct: Tensor,
    id_total: Tensor,
    ood_correct: Tensor,
    ood_total: Tensor,
    aug_ood: Tensor,
    aug_total: Tensor,
    smooth_sum: Tensor,
    with_gmm: bool,
}

impl Accumulator {
    pub(crate) fn new(device: Device) -> Self {
        let z = || Tensor::zeros([], (Kind::Float, device));
        Accumulator {
            loss: z(),
            c1: z(),
            c5: z(),
            seen: 0,
            id_correct: z(),
            id_total: z(),
            ood_correct: z(),
            ood_total: z(),
            aug_ood: z(),
            aug_total: z(),
            smooth_sum: z(),
            with_gmm: false,
        }
    }

    fn add(&mut self, loss: &Tensor, logits: &Tensor, y: &Tensor) {
        let n = logits.size()[0];
        self.loss += loss.detach() * n as f64;
        self.c1 += correct_topk(logits, y, 1);
        self.c5 += correct_topk(logits, y, 5);
        self.seen += n as usize;
    }

    fn value(t: &Tensor) -> f64 {
        t.double_value(&[])
    }

    pub(crate) fn loss(&self) -> f64 {
        Self::value(&self.loss) / self.seen.max(1) as f64
    }

    pub(crate) fn top1(&self) -> f64 {
        Self::value(&self.c1) / self.seen.max(1) as f64
    }

    pub(crate) fn top5(&self) -> f64 {
        Self::value(&self.c5) / self.seen.max(1) as f64
    }

    pub(crate) fn gmm_metrics(&self) -> Option<GmmMetrics> {
        let ratio = |a: &Tensor, b: &Tensor| {
            let d = Self::value(b);
            if d > 0.0 {
                Some(Self::value(a) / d)
            } else {
                None
            }
        };
        self.with_gmm.then(|| GmmMetrics {
            train_top1_id: ratio(&self.id_correct, &self.id_total),
            train_top1_ood: ratio(&self.ood_correct, &self.ood_total),
            ood_fraction: ratio(&self.aug_ood, &self.aug_total).unwrap_or(0.0),
            mean_smooth: ratio(&self.smooth_sum, &self.aug_total).unwrap_or(0.0),
        })
    }
}

/// What the method adds to plain training: the GMM with its scorer, the distillation teacher,
/// and the criteria of the original and augmented parts.
pub(crate) struct Method {
    gmm: Option<Gmm>,
    /// The pretrained baseline: the GMM's scorer and the distillation teacher.
    pretrained: Option<Model>,
    /// The file the pretrained baseline was loaded from.
    pub(crate) pretrained_path: Option<std::path::PathBuf>,
    distill: bool,
    /// The criteria of the original and augmented parts and their weighting by --prob.
    loss: BatchLoss,
}

impl Method {
    /// Loads the pretrained model when needed and runs the detection pass (or, when a run is
    /// resumed, reloads its `gmm.json`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn prepare(
        args: &TrainArgs,
        paths: &RunPaths,
        num_classes: i64,
        device: Device,
        train_set: &Arc<ImageSet>,
        aug: &Arc<Augmenter>,
        pool: &Arc<rayon::ThreadPool>,
        resuming: bool,
    ) -> Result<Self> {
        let (mut org, mut aug_c) =
            Criterion::pair(&args.loss, &args.weighting, args.smooth_org, args.smooth_aug, args.k, args.lamda, args.t);
        if args.normalised_sample_smooth {
            (org, aug_c) = (org.normalised(), aug_c.normalised());
        }
        let needs_model = args.gmm || args.loss == "Distillation";
        let mut pretrained_path = None;
        let pretrained = if needs_model {
            let path =
                method::pretrained_path(&args.logdir, &args.tag, args.save.as_deref(), args.pretrained.as_deref());
            eprintln!("pretrained baseline: {}", path.display());
            // the scorer and teacher run in fp32 whatever --precision says, as the reference's do
            let m = method::load_pretrained(&path, &args.model, &args.dataset, num_classes, &args.tag, device)?;
            pretrained_path = Some(path);
            Some(m)
        } else {
            None
        };
        let gmm_path = paths.dir.join("gmm.json");
        let gmm = if args.gmm {
            let scorer = pretrained.as_ref().expect("loaded above");
            let gmm = if resuming && gmm_path.is_file() {
                Gmm::load(&gmm_path)?
            } else {
                let started = Instant::now();
                let det = method::detect(
                    scorer,
                    train_set.clone(),
                    aug.clone(),
                    pool.clone(),
                    args.seed,
                    args.batch_size,
                    device,
                )?;
                eprint!("detection pass ({:.1}s):\n{}", started.elapsed().as_secs_f64(), det.report());
                det.gmm.save(&gmm_path)?;
                det.gmm
            };
            Some(gmm)
        } else {
            None
        };
        let loss = BatchLoss { org, aug: aug_c, prob: args.prob };
        Ok(Method { gmm, pretrained, pretrained_path, distill: args.loss == "Distillation", loss })
    }

    /// One optimisation step on a batch whose first `n_ori` images are original views; returns
    /// false when the step was skipped (a fair-comparison batch with nothing to keep).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn train_step(
        &self,
        args: &TrainArgs,
        model: &Model,
        opt: &mut Sgd,
        lr: f64,
        x: &Tensor,
        y: &Tensor,
        n_ori: i64,
        acc: &mut Accumulator,
    ) -> bool {
        let n = x.size()[0];
        let device = x.device();
        // p_ID of every sample (originals count as ID) and the OOD mask, before any reweighting
        let p = self.gmm.as_ref().map(|gmm| {
            let ones = Tensor::ones([n_ori], (Kind::Float, device));
            if n_ori == n {
                return ones; // no augmented view to score
            }
            let scorer = self.pretrained.as_ref().expect("the GMM's scorer is loaded with it");
            let aug_p = method::p_id_tensor(
                gmm,
                &method::score(scorer, &x.narrow(0, n_ori, n - n_ori), &y.narrow(0, n_ori, n - n_ori)),
            );
            Tensor::cat(&[ones, aug_p], 0)
        });
        if args.fair_comparison != "disable" {
            return self.fair_step(args, model, opt, lr, x, y, n_ori, p.expect("validated: --gmm"), acc);
        }
        let logits = model.forward_t(x, true);
        let ood = p.as_ref().map(|p| p.lt(0.5));
        let p = p.map(|p| weight_p(&p, &args.weighting));
        let teacher = self.pretrained.as_ref().filter(|_| self.distill).map(|t| tch::no_grad(|| t.forward_t(x, false)));
        let m = n - n_ori;
        let loss = self.loss.loss(&logits, y, n_ori, p.as_ref(), teacher.as_ref());
        opt.zero_grad();
        loss.backward();
        opt.step(lr);
        let logits = logits.detach();
        acc.add(&loss, &logits, y);
        if let Some(ood) = ood {
            acc.with_gmm = true;
            let correct = logits.argmax(1, false).eq_tensor(y);
            let id = ood.logical_not();
            acc.id_correct += correct.logical_and(&id).sum(Kind::Float);
            acc.id_total += id.sum(Kind::Float);
            acc.ood_correct += correct.logical_and(&ood).sum(Kind::Float);
            acc.ood_total += ood.sum(Kind::Float);
            acc.aug_ood += ood.narrow(0, n_ori, m).sum(Kind::Float);
            acc.aug_total += m as f64;
            acc.smooth_sum += match (&self.loss.aug, &p) {
                (Criterion::SampleSmooth(eps) | Criterion::SampleSmoothNormalised(eps), Some(p)) => {
                    (p.narrow(0, n_ori, m).neg() + 1.0).sum(Kind::Float) * *eps
                }
                (Criterion::LabelSmooth(eps), _) => Tensor::from((eps * m as f64) as f32),
                _ => Tensor::zeros([], (Kind::Float, device)),
            };
        }
        true
    }

    /// `--fair-comparison`: trains on augmented views only, keeping the first
    /// `min(#ID, #OOD, 256)` OOD views (DAOOD), ID views (DAID) or views (mix) of the batch. As
    /// in the reference, the p_ID given to the loss are those of the batch's first views.
    #[allow(clippy::too_many_arguments)]
    fn fair_step(
        &self,
        args: &TrainArgs,
        model: &Model,
        opt: &mut Sgd,
        lr: f64,
        x: &Tensor,
        y: &Tensor,
        n_ori: i64,
        p: Tensor,
        acc: &mut Accumulator,
    ) -> bool {
        let n = x.size()[0];
        let (x, y, p) = (x.narrow(0, n_ori, n - n_ori), y.narrow(0, n_ori, n - n_ori), p.narrow(0, n_ori, n - n_ori));
        let logits = model.forward_t(&x, true);
        let ood = p.lt(0.5);
        let id = ood.logical_not();
        let count = |m: &Tensor| m.sum(Kind::Int64).int64_value(&[]);
        let keep = count(&id).min(count(&ood)).min(256);
        if keep == 0 {
            return false;
        }
        // the first `keep` views of the kept kind (mix: of any kind)
        let kept = match args.fair_comparison.as_str() {
            "DAOOD" => ood.nonzero().squeeze_dim(1).narrow(0, 0, keep),
            "DAID" => id.nonzero().squeeze_dim(1).narrow(0, 0, keep),
            _ => Tensor::arange(keep, (Kind::Int64, x.device())),
        };
        let (sel_logits, sel_y) = (logits.index_select(0, &kept), y.index_select(0, &kept));
        let loss = self.loss.aug.loss(&sel_logits, &sel_y, Some(&p.narrow(0, 0, keep)), None);
        opt.zero_grad();
        loss.backward();
        opt.step(lr);
        acc.add(&loss, &sel_logits.detach(), &sel_y);
        true
    }
}
