//! `--cuda-graphs`: the method's training step (scorer, forward, criteria, backward, fused SGD)
//! captured once as a CUDA graph and replayed for every later step, one launch instead of
//! hundreds. The graph reads each batch from fixed input tensors and the learning rate from the
//! optimizer's device tensor; the per-step seed is set before each replay, as before each eager
//! step, so random ops draw what they would eagerly.
//!
//! The capture is checked before it is trusted: the batch of the capture step is first trained
//! on eagerly, the state is put back, and the graph's first replay must make the same update
//! (to [`UPDATE_TOLERANCE`] of its size) and the same loss. With `--cuda-graphs auto` a capture
//! that fails or differs leaves the run eager (the eager step's result is kept, so the run goes
//! on as if graphs were off) and says why; with `on` it is an error.

use super::step::lap;
use super::{Method, Net, Step, StepBatch, StepOutputs, StepPhase, StepSums, StepTimer, Stepped};
use crate::config::CudaGraphs;
use crate::dist::DistError;
use crate::graph::{self, CudaGraph, GraphError};
use crate::optim::SgdKernel;
use crate::report::StepMode;
use tch::{Device, Kind, Tensor};

/// Eager steps before the capture: by then cuDNN's autotuner has chosen its algorithms, lazy
/// initialisation is done and every momentum buffer exists (torch.cuda.graph's advice is a few
/// warm-up iterations).
pub const WARMUP_STEPS: usize = 3;

/// The largest difference allowed between the graph's update and the eager step's, per tensor,
/// as a share of the eager update's largest change (nondeterministic cuDNN reductions differ by
/// far less; a missing or stale part of the step differs by about 1).
pub const UPDATE_TOLERANCE: f64 = 1e-2;

/// `--cuda-graphs on` and no graph.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("--cuda-graphs on: {reason}; pass --cuda-graphs auto to fall back to eager steps, or off")]
pub struct NoGraph {
    pub reason: String,
}

/// What can stop a step.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    NoGraph(#[from] NoGraph),
    /// A captured graph failed to replay.
    #[error(transparent)]
    Replay(#[from] GraphError),
    /// A collective across the processes failed (another rank stopped, or did not answer
    /// within `--dist-timeout`).
    #[error(transparent)]
    Dist(#[from] DistError),
    /// libtorch's backward pass failed.
    #[error("the backward pass failed: {0}")]
    Backward(String),
}

/// A captured graph, replayed once per step.
trait Replay {
    fn replay(&self) -> Result<(), GraphError>;
}

impl Replay for CudaGraph {
    fn replay(&self) -> Result<(), GraphError> {
        CudaGraph::replay(self)
    }
}

/// How a step's work is captured on CUDA device N: [`cuda_capture`]; the tests put stand-ins
/// here to drive the check and the fallback on the CPU.
type Capture = fn(usize, &mut dyn FnMut() -> Work) -> Result<(Box<dyn Replay>, StepOutputs), GraphError>;

/// What the captured work returns.
type Work = Result<StepOutputs, StepError>;

/// Captures `work` as a CUDA graph.
fn cuda_capture(device: usize, work: &mut dyn FnMut() -> Work) -> Result<(Box<dyn Replay>, StepOutputs), GraphError> {
    let (graph, out) = CudaGraph::capture(device, work)?;
    Ok((Box::new(graph), captured(out)?))
}

/// The outputs of captured work, or its failure as the capture's.
fn captured(out: Work) -> Result<StepOutputs, GraphError> {
    out.map_err(|e| GraphError { stage: "capture", message: e.to_string() })
}

/// Runs the training steps of a run, eagerly or as replays of a captured graph.
pub struct Stepper {
    setting: CudaGraphs,
    /// The CUDA device graphs are captured on.
    device: usize,
    capture: Capture,
    state: State,
    /// What to tell the user about the mode, once.
    note: Option<String>,
}

enum State {
    /// Eager steps; a capture is tried after `warmup` more (`None`: eager for good).
    Eager {
        warmup: Option<usize>,
    },
    Graph(Box<Captured>),
}

/// A captured step: the graph, its input batch and its outputs.
struct Captured {
    graph: Box<dyn Replay>,
    batch: StepBatch,
    out: StepOutputs,
}

impl Stepper {
    /// The steps `setting` asks for, on `device`, with the optimizer's `kernel`; `static_step`
    /// says whether every step has the same shapes (not under `--fair-comparison`). Where no
    /// graph can be made, `auto` runs eagerly (saying why) and `on` is an error.
    pub fn new(setting: CudaGraphs, device: Device, kernel: SgdKernel, static_step: bool) -> Result<Self, NoGraph> {
        let why_not = if !device.is_cuda() {
            Some("no GPU: CUDA graphs replay GPU work".to_string())
        } else if !graph::built() {
            Some("this build has no CUDA graphs (the CUDA headers were missing; rerun scripts/setup.sh)".to_string())
        } else if !static_step {
            Some("--fair-comparison changes the step's shapes every batch".to_string())
        } else if kernel != SgdKernel::Fused {
            Some("the per-parameter SGD step puts the learning rate into its kernels".to_string())
        } else {
            None
        };
        let (warmup, note) = match (setting, why_not) {
            (CudaGraphs::Off, _) => (None, None),
            (CudaGraphs::On, Some(reason)) => return Err(NoGraph { reason }),
            (CudaGraphs::Auto, Some(reason)) => (None, Some(format!("training steps run eagerly: {reason}"))),
            (_, None) => (Some(WARMUP_STEPS), None),
        };
        let device = match device {
            Device::Cuda(index) => index,
            _ => 0,
        };
        Ok(Stepper { setting, device, capture: cuda_capture, state: State::Eager { warmup }, note })
    }

    /// Whether a capture is still to be tried (after the warm-up steps).
    pub fn will_capture(&self) -> bool {
        matches!(self.state, State::Eager { warmup: Some(_) })
    }

    /// How the last step ran.
    pub fn mode(&self) -> StepMode {
        match self.state {
            State::Graph(_) => StepMode::CudaGraph,
            State::Eager { .. } => StepMode::Eager,
        }
    }

    /// What the user should know about the mode since the last call (a capture, a fallback).
    pub fn take_note(&mut self) -> Option<String> {
        self.note.take()
    }

    /// One step of `method` training `net` on `step`, adding to `sums`; `timer` is told as each
    /// phase ends (under a graph, the scorer, step and optimizer are one replay, timed as the
    /// step).
    pub fn step(
        &mut self,
        method: &Method,
        net: &mut Net,
        step: &Step,
        sums: &mut StepSums,
        mut timer: Option<&mut dyn StepTimer>,
    ) -> Result<Stepped, StepError> {
        let batch = &step.batch;
        match &mut self.state {
            State::Graph(c) if c.batch.x.size() == batch.x.size() && c.batch.n_ori == batch.n_ori => {
                tch::no_grad(|| {
                    c.batch.x.copy_(&batch.x);
                    c.batch.y.copy_(&batch.y);
                });
                net.opt.set_lr(step.lr);
                tch::manual_seed(step.seed);
                c.graph.replay()?;
                lap(&mut timer, StepPhase::Step);
                method.account(&c.out, &c.batch, sums, timer);
                Ok(Stepped::Updated)
            }
            State::Eager { warmup: Some(0) } => self.capture_step(method, net, step, sums, timer),
            State::Eager { warmup } => {
                let stepped = method.step(net, step, sums, timer)?;
                if let (Some(left), Stepped::Updated) = (warmup, stepped) {
                    *left -= 1;
                }
                Ok(stepped)
            }
            // a batch of another shape than the graph's (none in training: drop_last)
            State::Graph(_) => method.step(net, step, sums, timer),
        }
    }

    /// Trains on `step` eagerly, then captures the step on a copy of its batch from the state
    /// before, replays it and keeps the graph if it made the eager step's update; otherwise
    /// keeps the eager step's state (`auto`) or fails (`on`). `timer` is told when the step and
    /// the accounting end.
    fn capture_step(
        &mut self,
        method: &Method,
        net: &mut Net,
        step: &Step,
        sums: &mut StepSums,
        mut timer: Option<&mut dyn StepTimer>,
    ) -> Result<Stepped, StepError> {
        let (batch, lr, seed) = (&step.batch, step.lr, step.seed);
        let live = net.state();
        let before = copies(&live);
        tch::manual_seed(seed);
        let eager = method.compute(net, lr, batch, None)?;
        let after = copies(&live);
        restore(&live, &before);
        net.opt.set_lr(lr);
        let inputs = StepBatch { x: batch.x.copy(), y: batch.y.copy(), ..*batch };
        let captured = (self.capture)(self.device, &mut || method.compute(net, lr, &inputs, None))
            .and_then(|(graph, out)| {
                tch::manual_seed(seed);
                graph.replay().map(|()| (graph, out))
            })
            .map_err(|e| e.to_string())
            .and_then(|(graph, out)| {
                let loss = loss_difference(&eager.loss, &out.loss);
                let update = update_difference(&before, &after, &live);
                if loss > 1e-3 || update > UPDATE_TOLERANCE {
                    return Err(format!(
                        "the graph's first step differs from the eager step on the same batch (loss by {loss:.1e}, \
                         update by {update:.1e} of its size)"
                    ));
                }
                Ok((graph, out, update))
            });
        lap(&mut timer, StepPhase::Step);
        match captured {
            Ok((graph, out, update)) => {
                method.account(&out, &inputs, sums, timer);
                self.note = Some(format!(
                    "training steps are replays of a CUDA graph, captured after {WARMUP_STEPS} eager steps; its first \
                     step made the eager step's update to {update:.1e} of its size"
                ));
                self.state = State::Graph(Box::new(Captured { graph, batch: inputs, out }));
            }
            Err(reason) => {
                restore(&live, &after);
                if self.setting == CudaGraphs::On {
                    return Err(NoGraph { reason }.into());
                }
                method.account(&eager, batch, sums, timer);
                self.note = Some(format!("training steps run eagerly: {reason}"));
                self.state = State::Eager { warmup: None };
            }
        }
        Ok(Stepped::Updated)
    }
}

/// Copies of `tensors` (detached).
pub(crate) fn copies(tensors: &[Tensor]) -> Vec<Tensor> {
    tch::no_grad(|| tensors.iter().map(|t| t.detach().copy()).collect())
}

/// Writes `values` into `tensors` in place (their memory, which a graph reads, stays).
pub(crate) fn restore(tensors: &[Tensor], values: &[Tensor]) {
    tch::no_grad(|| {
        for (t, v) in tensors.iter().zip(values) {
            t.detach().copy_(v);
        }
    });
}

/// The relative difference of two scalar losses.
fn loss_difference(eager: &Tensor, graph: &Tensor) -> f64 {
    let (e, g) = (eager.double_value(&[]), graph.double_value(&[]));
    if e == g {
        return 0.0; // also two equal infinities
    }
    (e - g).abs() / e.abs().max(1e-12)
}

/// The largest difference, over tensors, between the update `now - before` and the eager update
/// `eager - before`, as a share of the eager update's largest change; a tensor the eager step
/// left alone must stay within float rounding of its values. NaN counts as infinitely far.
fn update_difference(before: &[Tensor], eager: &[Tensor], now: &[Tensor]) -> f64 {
    let max_abs = |t: Tensor| t.abs().max().double_value(&[]);
    let mut worst = 0.0f64;
    for ((b, e), n) in before.iter().zip(eager).zip(now) {
        let (b, e, n) = (b.to_kind(Kind::Double), e.to_kind(Kind::Double), n.to_kind(Kind::Double));
        let step = max_abs(&e - &b);
        let off = max_abs(&n - &e);
        let scale = if step > 0.0 { step } else { 1e-6 * max_abs(e.shallow_clone()).max(1e-12) };
        let d = off / scale;
        worst = if d.is_nan() { f64::INFINITY } else { worst.max(d) };
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ModelName, TrainConfig};
    use crate::model::Model;
    use crate::optim::Sgd;

    fn tensors(values: &[&[f32]]) -> Vec<Tensor> {
        values.iter().map(|v| Tensor::from_slice(v)).collect()
    }

    #[test]
    fn the_update_check_accepts_rounding_and_refuses_a_missing_or_stale_step() {
        let before = tensors(&[&[1.0, 2.0], &[5.0]]);
        let eager = tensors(&[&[0.9, 2.1], &[5.0]]);
        assert_eq!(update_difference(&before, &eager, &eager), 0.0);
        let rounded = tensors(&[&[0.9 + 1e-6, 2.1], &[5.0]]);
        assert!(update_difference(&before, &eager, &rounded) < UPDATE_TOLERANCE);
        // no update at all, half the update, an update of a tensor the eager step left alone
        for wrong in [&before, &tensors(&[&[0.95, 2.05], &[5.0]]), &tensors(&[&[0.9, 2.1], &[5.1]])] {
            assert!(update_difference(&before, &eager, wrong) > UPDATE_TOLERANCE);
        }
        let nan = tensors(&[&[f32::NAN, 2.1], &[5.0]]);
        assert_eq!(update_difference(&before, &eager, &nan), f64::INFINITY);
        assert!(loss_difference(&Tensor::from(2.0f32), &Tensor::from(2.1f32)) > 1e-3);
        assert_eq!(loss_difference(&Tensor::from(2.0f32), &Tensor::from(2.0f32)), 0.0);
    }

    #[test]
    fn restore_writes_values_into_the_same_memory() {
        let live = tensors(&[&[1.0, 2.0]]);
        let address = live[0].data_ptr();
        let saved = copies(&live);
        let _ = live[0].shallow_clone().fill_(7.0);
        restore(&live, &saved);
        assert_eq!(live[0].data_ptr(), address);
        assert_eq!(Vec::<f32>::try_from(&live[0]).unwrap(), [1.0, 2.0]);
    }

    #[test]
    fn without_a_gpu_auto_steps_eagerly_saying_why_and_on_is_an_error() {
        let mut auto = Stepper::new(CudaGraphs::Auto, Device::Cpu, SgdKernel::Fused, true).unwrap();
        assert_eq!(auto.mode(), StepMode::Eager);
        assert!(auto.take_note().unwrap().contains("no GPU"));
        assert!(auto.take_note().is_none(), "said once");
        let err = Stepper::new(CudaGraphs::On, Device::Cpu, SgdKernel::Fused, true).err().unwrap().to_string();
        assert!(err.contains("--cuda-graphs on") && err.contains("no GPU") && err.contains("auto"), "{err}");
        let mut off = Stepper::new(CudaGraphs::Off, Device::Cpu, SgdKernel::Fused, true).unwrap();
        assert!(off.take_note().is_none());
    }

    /// A replay that does nothing: the stand-in captures below run the work when "capturing".
    struct Ran;

    impl Replay for Ran {
        fn replay(&self) -> Result<(), GraphError> {
            Ok(())
        }
    }

    /// A capture that runs the step once: what a correct graph's capture and first replay do.
    fn runs_once(_: usize, work: &mut dyn FnMut() -> Work) -> Result<(Box<dyn Replay>, StepOutputs), GraphError> {
        let out = captured(work())?;
        Ok((Box::new(Ran), out))
    }

    /// A broken capture whose replay updates twice.
    fn runs_twice(_: usize, work: &mut dyn FnMut() -> Work) -> Result<(Box<dyn Replay>, StepOutputs), GraphError> {
        captured(work())?;
        runs_once(0, work)
    }

    /// A capture refused by CUDA.
    fn refused(_: usize, _: &mut dyn FnMut() -> Work) -> Result<(Box<dyn Replay>, StepOutputs), GraphError> {
        Err(GraphError { stage: "capture", message: "operation not permitted when stream is capturing".into() })
    }

    /// A stepper that tries a capture with `capture` after the warm-up, whatever the device.
    fn trying(setting: CudaGraphs, capture: Capture) -> Stepper {
        Stepper { setting, device: 0, capture, state: State::Eager { warmup: Some(WARMUP_STEPS) }, note: None }
    }

    /// Fixed, varied values of `shape` (no draw from libtorch's generator, which the tests
    /// running beside this one share).
    fn fixed(shape: &[i64], phase: f64) -> Tensor {
        let n: i64 = shape.iter().product();
        (Tensor::arange(n, (Kind::Double, Device::Cpu)) * 0.37 + phase).sin().to_kind(Kind::Float).reshape(shape)
    }

    /// `steps` steps of ResNet-18 on fixed batches, through `stepper` (or the method's own
    /// eager steps): the mean loss and every weight and buffer, or the first error.
    fn train(steps: usize, mut stepper: Option<Stepper>) -> Result<(f64, Vec<Tensor>, Option<Stepper>), StepError> {
        let method = Method::new(&TrainConfig::default().method, 0.5, None, None);
        let model = Model::new(ModelName::ResNet18, 10, Device::Cpu);
        tch::no_grad(|| {
            for (k, t) in model.state_dict().into_values().enumerate() {
                if t.is_floating_point() {
                    t.detach().copy_(&(fixed(&t.size(), k as f64) * 0.1));
                }
            }
        });
        let mut opt = Sgd::new(&model.vs, 0.9, 5e-4, true);
        let mut net = Net { model: &model, opt: &mut opt, reducer: None };
        let mut sums = StepSums::new(Device::Cpu);
        for k in 0..steps as i64 {
            let x = fixed(&[4, 3, 8, 8], k as f64);
            let batch = StepBatch::whole(x, Tensor::from_slice(&[0i64, 1, 2, 3]), 2);
            let step = Step { batch, lr: 0.1, seed: 7 + k };
            match &mut stepper {
                Some(s) => {
                    s.step(&method, &mut net, &step, &mut sums, None)?;
                }
                None => {
                    method.step(&mut net, &step, &mut sums, None)?;
                }
            }
        }
        Ok((sums.loss(), net.state(), stepper))
    }

    fn same(a: &(f64, Vec<Tensor>, Option<Stepper>), b: &(f64, Vec<Tensor>, Option<Stepper>)) -> bool {
        a.0 == b.0 && a.1.len() == b.1.len() && a.1.iter().zip(&b.1).all(|(x, y)| x.equal(y))
    }

    #[test]
    fn eager_steps_of_the_stepper_are_the_methods_steps() {
        let auto = Stepper::new(CudaGraphs::Auto, Device::Cpu, SgdKernel::Fused, true).unwrap();
        assert!(same(&train(2, Some(auto)).unwrap(), &train(2, None).unwrap()));
    }

    #[test]
    fn a_capture_that_makes_the_eager_update_is_kept() {
        let eager = train(WARMUP_STEPS + 1, None).unwrap();
        let graphed = train(WARMUP_STEPS + 1, Some(trying(CudaGraphs::On, runs_once))).unwrap();
        assert!(same(&graphed, &eager), "the capture step trains once, on its batch");
        let mut stepper = graphed.2.unwrap();
        assert_eq!(stepper.mode(), StepMode::CudaGraph);
        assert!(stepper.take_note().unwrap().contains("replays of a CUDA graph"));
    }

    #[test]
    fn a_capture_that_fails_or_differs_leaves_auto_eager_with_the_eager_result_and_on_failing() {
        let eager = train(WARMUP_STEPS + 3, None).unwrap();
        for (capture, why) in [(runs_twice as Capture, "differs from the eager step"), (refused, "not permitted")] {
            let fallback = train(WARMUP_STEPS + 3, Some(trying(CudaGraphs::Auto, capture))).unwrap();
            assert!(same(&fallback, &eager), "{why}: the run goes on as an eager run would");
            let mut stepper = fallback.2.unwrap();
            assert_eq!(stepper.mode(), StepMode::Eager);
            let note = stepper.take_note().unwrap();
            assert!(note.contains("run eagerly") && note.contains(why), "{note}");
            let Err(err) = train(WARMUP_STEPS + 3, Some(trying(CudaGraphs::On, capture))) else {
                panic!("--cuda-graphs on accepted a capture that {why}")
            };
            assert!(err.to_string().contains("--cuda-graphs on") && err.to_string().contains(why), "{err}");
        }
    }
}
