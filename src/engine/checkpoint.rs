//! The resumable checkpoint of a run: weights, optimizer momentum and where the run stands (the
//! epoch, the step count, the run's configuration, the last epoch's
//! metrics line and, after an interruption, the partial epoch) and an MD5 of all of it, in one
//! safetensors file, replaced atomically. An epoch's files are written by a background [`Writer`] from a host copy of the
//! state, so training goes on while they are written and synced: the weights as safetensors, or as
//! the reference's torch.save checkpoint ([`write_reference_checkpoint`], `--save-format pth`).

use super::EngineError;
use crate::config::{SaveFormat, TrainConfig};
use crate::data::Normalisation;
use crate::method::SumsState;
use crate::model::pth::{self, Optimizer};
use crate::model::{read_safetensors, write_safetensors_atomic, Model, ModelError};
use crate::optim::Sgd;
use crate::pickle::Value;
use crate::report::{self, EpochMetrics};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use tch::{Device, Kind, Tensor};

const MODEL: &str = "model.";
const MOMENTUM: &str = "optimizer.momentum_buffer.";
const META: &str = "resume.meta_json";
/// MD5 (hex) of every other tensor of the file, the metadata included; absent in checkpoints of
/// earlier versions.
const CHECKSUM: &str = "resume.md5";

/// Where a run stands, saved with the weights.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResumeMeta {
    /// Last finished epoch.
    pub epoch: usize,
    /// Optimizer steps taken in the finished epochs.
    pub steps: i64,
    /// Best test top-1 so far; before the first epoch minus infinity (written as null).
    #[serde(deserialize_with = "neg_infinity_if_null")]
    pub best_test_top1: f64,
    pub best_epoch: usize,
    /// Seconds spent in the finished epochs, over all sessions of the run.
    pub seconds: f64,
    /// The seed the per-epoch random streams derive from (the whole RNG state, with `epoch`).
    pub seed: u64,
    /// The identity of the training configuration the run was started with (see
    /// [`TrainConfig::identity`]), as flat JSON.
    pub config: serde_json::Value,
    /// The `metrics.jsonl` line of epoch `epoch`, restored there if a crash lost it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_line: Option<String>,
    /// The epoch in progress when the run was interrupted (Ctrl-C, SIGTERM): the weights and
    /// momentum are those after its first `batches` batches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<PartialEpoch>,
    /// The normalisation the run trains and evaluates with, kept for its whole life (a folder's
    /// statistics may change with its files). Checkpoints of versions before datasets had
    /// their own normalisation lack it: those runs used CIFAR's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalisation: Option<Normalisation>,
}

/// An epoch stopped between two steps: what its remaining steps need to end as if it had not
/// been stopped (the batches and random draws of a step depend only on the seed, the epoch and
/// the batch index).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PartialEpoch {
    /// The epoch in progress (`ResumeMeta::epoch + 1`).
    pub epoch: usize,
    /// Batches done (all of them when evaluation was interrupted).
    pub batches: usize,
    /// Optimizer steps taken in those batches.
    pub steps: i64,
    /// The epoch's training sums so far.
    pub sums: SumsState,
    /// Training time and data wait so far, in seconds.
    pub train_seconds: f64,
    pub data_wait_seconds: f64,
}

/// Reads null (how JSON writes minus infinity) as minus infinity.
fn neg_infinity_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NEG_INFINITY))
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
            metrics_line: None,
            partial: None,
            normalisation: None,
        }
    }

    /// The normalisation the run keeps: the one it started with, or `fresh` (the dataset's
    /// today) for a run that has not trained yet; recorded here for the run's later sessions.
    pub fn keep_normalisation(&mut self, fresh: Normalisation) -> Normalisation {
        let started = self.epoch > 0 || self.partial.is_some();
        *self.normalisation.get_or_insert(if started { Normalisation::CIFAR } else { fresh })
    }
}

/// Tensors by state_dict key.
pub type Named = [(String, Tensor)];
/// Tensors by state_dict key, owned.
pub type NamedVec = Vec<(String, Tensor)>;

/// A host copy of the weights (state_dict) and momentum buffers, taken between two steps and
/// written while training goes on.
pub struct Snapshot {
    /// In the order of the reference's `model.state_dict()`.
    weights: Vec<(String, Tensor)>,
    momentum: Vec<(String, Tensor)>,
    /// The parameters in the order of `model.parameters()`, and the SGD settings: what a
    /// `.pth` checkpoint's optimizer state is written with.
    params: Vec<String>,
    sgd: SgdSettings,
    /// The GPU whose copies into `weights` and `momentum` may still be in flight.
    copying: Option<Device>,
}

impl Snapshot {
    /// Copies the state of `model` and `opt` to host memory without stopping training on a GPU:
    /// the tensors of each dtype are gathered into one device buffer (one kernel) and copied to
    /// pinned host memory asynchronously (one transfer); whoever reads the copy waits for it
    /// ([`Snapshot::host`]), on the background writer's thread. On the CPU the copy is made at once.
    pub fn take(model: &Model, opt: &Sgd) -> Self {
        let weights: Vec<(String, Tensor)> = model.state_dict_ordered();
        let momentum = opt.state();
        let device = weights.first().map_or(Device::Cpu, |(_, t)| t.device());
        let mut host = host_copies(weights.iter().chain(&momentum).map(|(_, t)| t)).into_iter();
        let mut named = |from: Vec<(String, Tensor)>| -> Vec<(String, Tensor)> {
            from.into_iter().map(|(k, _)| (k, host.next().expect("one copy per tensor"))).collect()
        };
        let (weights, momentum) = (named(weights), named(momentum));
        let (params, sgd) = (model.parameter_names(), SgdSettings::of(opt));
        Snapshot { weights, momentum, params, sgd, copying: device.is_cuda().then_some(device) }
    }

    /// A snapshot of weights and momentum buffers already in host memory (the parameters are
    /// those with a momentum buffer, with the reference's SGD settings).
    pub fn from_host(weights: Vec<(String, Tensor)>, momentum: Vec<(String, Tensor)>) -> Self {
        let params = momentum.iter().map(|(k, _)| k.clone()).collect();
        let sgd = SgdSettings { momentum: 0.9, weight_decay: 5e-4, nesterov: true };
        Snapshot { weights, momentum, params, sgd, copying: None }
    }

    /// Writes the weights at `path` in the format its name says ([`SaveFormat::of_path`]): the
    /// state_dict as safetensors, or the reference's torch.save checkpoint with the momentum
    /// buffers and `meta`'s epoch and metrics.
    pub fn write_weights(&self, path: &Path, meta: &ResumeMeta) -> Result<(), ModelError> {
        let (weights, momentum) = self.host();
        match SaveFormat::of_path(path) {
            SaveFormat::Safetensors => write_safetensors_atomic(path, weights),
            SaveFormat::Pth => {
                let state = TrainingState { weights, params: &self.params, momentum, sgd: self.sgd };
                write_reference_checkpoint(path, &state, meta)
            }
        }
    }

    /// The host copies of the weights and of the momentum buffers, once they are complete.
    pub fn host(&self) -> (&Named, &Named) {
        if let Some(device) = self.copying {
            crate::device::synchronize(device);
        }
        (&self.weights, &self.momentum)
    }

    /// Writes the checkpoint file of this state and `meta`, with the checksum of both, atomically.
    pub fn write_checkpoint(&self, path: &Path, meta: &ResumeMeta) -> Result<(), ModelError> {
        let (weights, momentum) = self.host();
        let mut tensors: Vec<(String, Tensor)> =
            weights.iter().map(|(k, v)| (format!("{MODEL}{k}"), v.shallow_clone())).collect();
        tensors.extend(momentum.iter().map(|(k, v)| (format!("{MOMENTUM}{k}"), v.shallow_clone())));
        let json = serde_json::to_vec(meta).expect("meta serialises");
        tensors.push((META.into(), Tensor::from_slice(&json)));
        tensors.push((CHECKSUM.into(), Tensor::from_slice(checksum(&tensors).as_bytes())));
        write_safetensors_atomic(path, &tensors)
    }
}

/// SGD's settings, as a checkpoint's optimizer state records them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdSettings {
    pub momentum: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
}

impl SgdSettings {
    /// The settings of `opt`.
    pub fn of(opt: &Sgd) -> Self {
        SgdSettings { momentum: opt.momentum, weight_decay: opt.weight_decay, nesterov: opt.nesterov }
    }
}

/// What a run's weights file in the reference's layout is written from.
pub struct TrainingState<'a> {
    /// The state_dict, in the order of the reference's `model.state_dict()`.
    pub weights: &'a Named,
    /// The parameters in the order of `model.parameters()`.
    pub params: &'a [String],
    /// Momentum buffers by parameter name.
    pub momentum: &'a Named,
    pub sgd: SgdSettings,
}

/// The MD5 of tensors: key, type, shape and bytes of each, in key order.
fn checksum(tensors: &[(String, Tensor)]) -> String {
    let mut sorted: Vec<&(String, Tensor)> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut md5 = Md5::new();
    for (k, t) in sorted {
        md5.update(format!("{k}\0{:?}\0{:?}\0", t.kind(), t.size()).as_bytes());
        let bytes = t.contiguous().reshape([-1]).view_dtype(Kind::Uint8);
        md5.update(Vec::<u8>::try_from(&bytes).unwrap_or_default());
    }
    md5.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Host copies of `tensors` (contiguous, in order, detached from the live ones): per dtype, the
/// tensors flattened into one buffer on their device and moved to the host in one copy
/// (asynchronous into pinned memory from a GPU), then viewed back in their shapes.
fn host_copies<'a>(tensors: impl Iterator<Item = &'a Tensor>) -> Vec<Tensor> {
    let tensors: Vec<&Tensor> = tensors.collect();
    let mut groups: Vec<(Kind, Vec<usize>)> = Vec::new();
    for (i, t) in tensors.iter().enumerate() {
        match groups.iter_mut().find(|(kind, _)| *kind == t.kind()) {
            Some((_, members)) => members.push(i),
            None => groups.push((t.kind(), vec![i])),
        }
    }
    let mut out: Vec<Option<Tensor>> = tensors.iter().map(|_| None).collect();
    tch::no_grad(|| {
        for (kind, members) in groups {
            let flat: Vec<Tensor> = members.iter().map(|&i| tensors[i].reshape([-1])).collect();
            // `cat` makes a new buffer: on the CPU too the copy is not the live tensors' memory
            let flat = Tensor::cat(&flat, 0);
            let host = if flat.device().is_cuda() { flat.to_device_(Device::Cpu, kind, true, false) } else { flat };
            let mut offset = 0;
            for &i in &members {
                let numel = tensors[i].numel() as i64;
                out[i] = Some(host.narrow(0, offset, numel).view(tensors[i].size().as_slice()));
                offset += numel;
            }
        }
    });
    out.into_iter().map(|t| t.expect("every tensor has a dtype group")).collect()
}

/// Writes model, momentum buffers and `meta` to `path` atomically (waiting for the write).
pub fn save(path: &Path, model: &Model, opt: &Sgd, meta: &ResumeMeta) -> Result<(), ModelError> {
    Snapshot::take(model, opt).write_checkpoint(path, meta)
}

/// A checkpoint read and checked: its metadata and its tensors.
pub struct Checkpoint {
    pub meta: ResumeMeta,
    tensors: Vec<(String, Tensor)>,
}

impl Checkpoint {
    /// Reads a checkpoint, checking that it is whole: a truncated file fails to parse, a
    /// damaged one fails its checksum.
    pub fn read(path: &Path) -> Result<Self, ModelError> {
        let bad = |err: String| ModelError::Read { path: path.to_path_buf(), err };
        let mut tensors = read_safetensors(path)?;
        if let Some(at) = tensors.iter().position(|(k, _)| k == CHECKSUM) {
            let (_, t) = tensors.swap_remove(at);
            let want = String::from_utf8(Vec::<u8>::try_from(&t).unwrap_or_default()).unwrap_or_default();
            let got = checksum(&tensors);
            if got != want {
                return Err(bad(format!(
                    "its tensors have MD5 {got}, not the {want} written with them (the file is damaged)"
                )));
            }
        }
        let at = tensors
            .iter()
            .position(|(k, _)| k == META)
            .ok_or_else(|| bad("not a resmooth checkpoint (no metadata)".into()))?;
        let (_, t) = tensors.swap_remove(at);
        let bytes = Vec::<u8>::try_from(&t).map_err(|e| bad(format!("corrupt metadata: {e}")))?;
        let meta: ResumeMeta = serde_json::from_slice(&bytes).map_err(|e| bad(format!("corrupt metadata: {e}")))?;
        Ok(Checkpoint { meta, tensors })
    }

    /// The weights (by state_dict key) and the momentum buffers (by parameter key) it holds.
    pub fn tensors(&self) -> (NamedVec, NamedVec) {
        let (mut weights, mut momentum) = (Vec::new(), Vec::new());
        for (k, t) in &self.tensors {
            if let Some(key) = k.strip_prefix(MODEL) {
                weights.push((key.to_string(), t.shallow_clone()));
            } else if let Some(key) = k.strip_prefix(MOMENTUM) {
                momentum.push((key.to_string(), t.shallow_clone()));
            }
        }
        (weights, momentum)
    }

    /// Copies the weights into `model` and the momentum buffers into `opt`.
    pub fn restore(self, path: &Path, model: &mut Model, opt: &mut Sgd) -> Result<ResumeMeta, ModelError> {
        let mut weights = std::collections::BTreeMap::new();
        let mut momentum = Vec::new();
        for (k, t) in self.tensors {
            if let Some(key) = k.strip_prefix(MODEL) {
                weights.insert(key.to_string(), t);
            } else if let Some(key) = k.strip_prefix(MOMENTUM) {
                momentum.push((key.to_string(), t));
            }
        }
        model.load_from(path, weights)?;
        opt.load_state(momentum).map_err(|err| ModelError::Read { path: path.to_path_buf(), err })?;
        Ok(self.meta)
    }
}

/// Reads only the metadata of a checkpoint (the whole file is read and checked).
pub fn read_meta(path: &Path) -> Result<ResumeMeta, ModelError> {
    Ok(Checkpoint::read(path)?.meta)
}

/// Loads a checkpoint into `model` and `opt` and returns its metadata.
pub fn load(path: &Path, model: &mut Model, opt: &mut Sgd) -> Result<ResumeMeta, ModelError> {
    Checkpoint::read(path)?.restore(path, model, opt)
}

/// The files that record an epoch (or, after an interruption, the checkpoint alone), written in
/// this order: the weights, the best weights, the checkpoint, the metrics line. The line is
/// appended only once the checkpoint that covers it is durable (and the checkpoint carries a
/// copy of it, should a crash come in between).
pub struct EpochFiles {
    pub snapshot: Snapshot,
    pub meta: ResumeMeta,
    pub checkpoint: PathBuf,
    /// `model.safetensors` (or `--save`), for a finished epoch.
    pub weights: Option<PathBuf>,
    /// `best.safetensors`, when the epoch improved the test accuracy.
    pub best: Option<PathBuf>,
    /// `metrics.jsonl`, for a finished epoch (its line is `meta.metrics_line`).
    pub metrics: Option<PathBuf>,
}

impl EpochFiles {
    fn write(self) -> Result<(), EngineError> {
        for path in self.weights.iter().chain(&self.best) {
            self.snapshot.write_weights(path, &self.meta)?;
        }
        self.snapshot.write_checkpoint(&self.checkpoint, &self.meta)?;
        if let (Some(path), Some(line)) = (&self.metrics, &self.meta.metrics_line) {
            report::append_metrics_line(path, line)?;
        }
        Ok(())
    }
}

/// A write of an epoch's files in flight: the epoch, its checkpoint file, the thread.
struct Pending {
    epoch: usize,
    checkpoint: PathBuf,
    thread: JoinHandle<Result<(), EngineError>>,
}

/// Writes epochs' files on a background thread, one epoch at a time. A write's error
/// ([`EngineError::Record`]) comes out of the next call; dropping the writer waits for the
/// write in flight, so a run never ends before its checkpoint is on disk.
#[derive(Default)]
pub struct Writer {
    pending: Option<Pending>,
}

impl Writer {
    /// Waits for the write in flight; its error if it failed.
    pub fn wait(&mut self) -> Result<(), EngineError> {
        let Some(p) = self.pending.take() else { return Ok(()) };
        let result = p.thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        result.map_err(|e| EngineError::Record { epoch: p.epoch, checkpoint: p.checkpoint, source: Box::new(e) })
    }

    /// The error of a write that has ended, without waiting for one still in flight.
    pub fn poll(&mut self) -> Result<(), EngineError> {
        if self.pending.as_ref().is_some_and(|p| p.thread.is_finished()) {
            return self.wait();
        }
        Ok(())
    }

    /// Starts writing `files` once the previous write is done (its error, if it failed).
    pub fn submit(&mut self, files: EpochFiles) -> Result<(), EngineError> {
        self.wait()?;
        let epoch = files.meta.partial.as_ref().map_or(files.meta.epoch, |p| p.epoch);
        let checkpoint = files.checkpoint.clone();
        self.pending = Some(Pending { epoch, checkpoint, thread: std::thread::spawn(move || files.write()) });
        Ok(())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.wait();
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_keeps_the_normalisation_it_started_with() {
        let folder = Normalisation { mean: [0.5; 3], std: [0.25; 3] };
        let mut fresh = ResumeMeta::fresh(&TrainConfig::default());
        assert_eq!(fresh.keep_normalisation(folder), folder);
        assert_eq!(fresh.keep_normalisation(Normalisation::TINY), folder, "recorded for later sessions");
        // a checkpoint of an earlier version, written after an epoch: those used CIFAR's
        let mut old = ResumeMeta { epoch: 1, ..ResumeMeta::fresh(&TrainConfig::default()) };
        assert_eq!(old.keep_normalisation(folder), Normalisation::CIFAR);
    }
    use crate::config::ModelName;

    fn state() -> (Model, Sgd) {
        tch::manual_seed(3);
        let model = Model::new(ModelName::ResNet18, 3, Device::Cpu);
        let mut opt = Sgd::new(&model.vs, 0.9, 5e-4, true);
        let x = Tensor::randn([2, 3, 8, 8], (Kind::Float, Device::Cpu));
        model.forward_t(&x, true).sum(Kind::Float).backward();
        opt.step(0.1);
        (model, opt)
    }

    #[test]
    fn a_checkpoint_restores_weights_momentum_and_meta_and_a_damaged_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.safetensors");
        let (model, opt) = state();
        let mut meta = ResumeMeta::fresh(&TrainConfig::default());
        meta.epoch = 2;
        meta.best_test_top1 = 0.1 + 0.2;
        meta.metrics_line = Some("{\"epoch\":2}".into());
        save(&path, &model, &opt, &meta).unwrap();
        let mut m2 = Model::new(ModelName::ResNet18, 3, Device::Cpu);
        let mut o2 = Sgd::new(&m2.vs, 0.9, 5e-4, true);
        let back = load(&path, &mut m2, &mut o2).unwrap();
        assert_eq!(back.best_test_top1.to_bits(), meta.best_test_top1.to_bits());
        assert_eq!(back.metrics_line, meta.metrics_line);
        for ((k, a), (_, b)) in model.state_dict().iter().zip(m2.state_dict().iter()) {
            assert!(a.equal(b), "{k}");
        }
        for ((k, a), (_, b)) in opt.state().iter().zip(o2.state().iter()) {
            assert!(a.equal(b), "{k}");
        }

        // one flipped byte in the tensors' data fails the checksum; a cut file fails to parse
        let bytes = std::fs::read(&path).unwrap();
        let mut flipped = bytes.clone();
        let at = bytes.len() / 2;
        flipped[at] ^= 0x40;
        std::fs::write(&path, &flipped).unwrap();
        let err = read_meta(&path).unwrap_err().to_string();
        assert!(err.contains("damaged") && err.contains("checkpoint.safetensors"), "{err}");
        std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
        assert!(read_meta(&path).unwrap_err().to_string().contains("checkpoint.safetensors"));
    }

    #[test]
    fn host_copies_keep_order_dtype_shape_and_values_in_contiguous_memory() {
        let conv = Tensor::arange(2 * 3 * 2 * 2, (Kind::Float, Device::Cpu)).reshape([2, 3, 2, 2]);
        let channels_last = conv.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]);
        assert!(!channels_last.is_contiguous());
        let tensors = [
            channels_last,
            Tensor::from(5i64),
            Tensor::from_slice(&[0.5f32, -1.0]),
            Tensor::zeros([0], (Kind::Float, Device::Cpu)),
            Tensor::from_slice(&[1.5f64]),
        ];
        let copies = host_copies(tensors.iter());
        assert_eq!(copies.len(), tensors.len());
        for (t, c) in tensors.iter().zip(&copies) {
            assert_eq!((c.kind(), c.size()), (t.kind(), t.size()));
            assert!(c.is_contiguous() && c.equal(t), "{t:?}");
            if t.numel() > 0 {
                assert_ne!(c.data_ptr(), t.data_ptr(), "a copy, not the live tensor");
            }
        }
        // safetensors takes the copies as they are (row-major)
        assert!(copies[0].equal(&conv));
    }

    #[test]
    fn the_writer_writes_in_the_background_from_a_copy() {
        let dir = tempfile::tempdir().unwrap();
        let (model, mut opt) = state();
        let before = model.state_dict()["classifier.weight"].copy();
        let mut meta = ResumeMeta::fresh(&TrainConfig::default());
        meta.epoch = 1;
        meta.metrics_line = Some("{\"epoch\":1}".into());
        let run = crate::run_folder::RunFolder::at(dir.path());
        let files = EpochFiles {
            snapshot: Snapshot::take(&model, &opt),
            meta,
            checkpoint: run.checkpoint.clone(),
            weights: Some(run.weights.clone()),
            best: Some(run.best.clone()),
            metrics: Some(run.metrics.clone()),
        };
        let mut writer = Writer::default();
        writer.submit(files).unwrap();
        // training goes on: the live weights change while the copy is written
        tch::no_grad(|| {
            let _ = model.vs.variables()["classifier.weight"].shallow_clone().fill_(7.0);
        });
        writer.wait().unwrap();
        let mut m2 = Model::new(ModelName::ResNet18, 3, Device::Cpu);
        m2.load(&run.best).unwrap();
        assert!(m2.state_dict()["classifier.weight"].equal(&before));
        let meta = load(&run.checkpoint, &mut m2, &mut opt).unwrap();
        assert_eq!(meta.epoch, 1);
        assert_eq!(std::fs::read_to_string(&run.metrics).unwrap(), "{\"epoch\":1}\n");
    }
}
