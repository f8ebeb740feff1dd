//! Data-parallel training over several processes (GPUs, machines): PyTorch's own distributed
//! engine, c10d, through the C++ shim (src/shim/dist.cpp), in the environment `torchrun` (or
//! Slurm's srun, or any launcher) gives each process.
//!
//! [`Dist`] is this process's place in the group: its rank, the collectives (broadcast from rank
//! 0, all-reduce, all-gather, barrier), gloo for CPU tensors and NCCL for CUDA ones. [`Reducer`]
//! is DistributedDataParallel's C++ engine over a [`VarStore`]'s trainable parameters: armed
//! before a step, it averages their gradients over the ranks bucket by bucket while backward
//! runs. Every failure (a rank gone, a collective past `--dist-timeout`) is a [`DistError`] that
//! says what to do, never an abort or a hang.

pub use crate::pipeline::shard;
use crate::pipeline::Part;
use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::Arc;
use std::time::Duration;
use tch::nn::VarStore;
use tch::{Device, Tensor};

/// `--dist-timeout`'s default: how long joining the group or one collective may wait for the
/// other ranks (DistributedDataParallel's default too).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// DistributedDataParallel's default gradient bucket (`bucket_cap_mb=25`).
pub const DEFAULT_BUCKET_BYTES: i64 = 25 << 20;

/// The launcher's variables, all set or none.
const LAUNCH_VARS: [&str; 5] = ["RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"];

/// What the shim's process groups cannot do, or what failed in one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DistError {
    /// Some of the launcher's variables are set, not all.
    #[error(
        "the launcher's environment is incomplete: {} set but {} missing; set all of RANK, WORLD_SIZE, \
         LOCAL_RANK, MASTER_ADDR and MASTER_PORT (torchrun does), or none to train in one process",
        set.join(", "),
        missing.join(", ")
    )]
    PartialEnvironment { set: Vec<&'static str>, missing: Vec<&'static str> },
    /// A launcher's variable does not hold what it must.
    #[error("{name}={value:?} in the environment: {expected}")]
    BadVariable { name: &'static str, value: String, expected: String },
    /// This build has no process groups (gloo's headers were missing when it was compiled).
    #[error(
        "the environment asks for distributed training (RANK {rank} of WORLD_SIZE {world_size}) but this build \
         of resmooth has no distributed backend: gloo's headers were missing when it was compiled; install \
         libgloo-dev (apt-get install libgloo-dev) and rerun scripts/setup.sh"
    )]
    NoGloo { rank: usize, world_size: usize },
    /// Training on CUDA needs NCCL, which this build lacks.
    #[error(
        "distributed training on CUDA needs NCCL, but this build has none: the NCCL or CUDA headers \
         (pip packages nvidia-nccl-cu13, nvidia-cuda-cccl) were missing when it was compiled; rerun \
         scripts/setup.sh, which installs them, or train on the CPU"
    )]
    NoNccl,
    /// `--dist-timeout` is not a usable duration.
    #[error("--dist-timeout {seconds} s: give a whole number of seconds from 1 to 2^31 ms")]
    BadTimeout { seconds: f64 },
    /// Joining the group failed (a rank missing, the address unreachable, the port taken).
    #[error(
        "rank {rank} of {world_size} could not join the process group at {addr}:{port}: {message}; check that \
         every rank was started with the same MASTER_ADDR and MASTER_PORT, that the address is reachable \
         and the port free (joining waits at most --dist-timeout, {timeout_s} s)"
    )]
    Join { rank: usize, world_size: usize, addr: String, port: u16, timeout_s: u64, message: String },
    /// A collective failed: a rank stopped, or did not answer within the timeout.
    #[error(
        "{op} across the ranks failed: {message}; another rank has probably stopped (see its output), or did \
         not answer within --dist-timeout"
    )]
    Collective { op: &'static str, message: String },
    /// A tensor a collective cannot take.
    #[error("{op}: {message}")]
    BadTensor { op: &'static str, message: String },
    /// `--batch-size` does not split evenly among the ranks.
    #[error(
        "--batch-size {batch_size} does not divide among {world_size} ranks: --batch-size is the global batch, \
         of which every rank takes an equal part so that training is the same as in one process; use a \
         multiple of {world_size} (e.g. {})",
        batch_size.div_ceil(*world_size) * world_size
    )]
    BatchSplit { batch_size: usize, world_size: usize },
}

/// Where this process stands in the launch: what the launcher's environment says.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    /// This process's rank, 0..world_size.
    pub rank: usize,
    /// How many processes train together.
    pub world_size: usize,
    /// This process's rank on its machine: its GPU.
    pub local_rank: usize,
    /// The host serving the rendezvous store (rank 0's, or torchrun's agent's).
    pub master_addr: String,
    /// Its port.
    pub master_port: u16,
    /// Under torchrun's agent (`TORCHELASTIC_USE_AGENT_STORE=True`), which already serves the
    /// store: the key prefix of this attempt, `/worker/attempt_<TORCHELASTIC_RESTART_COUNT>`.
    pub agent_store_prefix: Option<String>,
    /// `GLOO_SOCKET_IFNAME`: the network interfaces gloo uses (empty: the host name's address).
    pub gloo_interfaces: String,
}

impl Launch {
    /// The launch the process environment describes; `None` when none of RANK, WORLD_SIZE,
    /// LOCAL_RANK, MASTER_ADDR, MASTER_PORT is set (one process, nothing distributed).
    pub fn from_env() -> Result<Option<Launch>, DistError> {
        Launch::from_vars(|name| std::env::var(name).ok())
    }

    /// [`Launch::from_env`] over the variables `var` looks up.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Launch>, DistError> {
        let (set, missing): (Vec<&'static str>, Vec<&'static str>) =
            LAUNCH_VARS.iter().partition(|name| var(name).is_some_and(|v| !v.is_empty()));
        if set.is_empty() {
            return Ok(None);
        }
        if !missing.is_empty() {
            return Err(DistError::PartialEnvironment { set, missing });
        }
        let number = |name: &'static str, min: usize, max: usize| parse(name, var(name).unwrap_or_default(), min, max);
        let world_size = number("WORLD_SIZE", 1, u16::MAX as usize)?;
        let rank = number("RANK", 0, world_size - 1)?;
        let local_rank = number("LOCAL_RANK", 0, world_size - 1)?;
        let master_port = number("MASTER_PORT", 1, u16::MAX as usize)? as u16;
        let master_addr = var("MASTER_ADDR").unwrap_or_default();
        let agent_store_prefix = (var("TORCHELASTIC_USE_AGENT_STORE").as_deref() == Some("True"))
            .then(|| format!("/worker/attempt_{}", var("TORCHELASTIC_RESTART_COUNT").unwrap_or_else(|| "0".into())));
        let gloo_interfaces = var("GLOO_SOCKET_IFNAME").unwrap_or_default();
        Ok(Some(Launch { rank, world_size, local_rank, master_addr, master_port, agent_store_prefix, gloo_interfaces }))
    }
}

/// The whole number `value` of variable `name`, in `min..=max`.
fn parse(name: &'static str, value: String, min: usize, max: usize) -> Result<usize, DistError> {
    match value.trim().parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(DistError::BadVariable {
            name,
            value,
            expected: format!("expected a whole number from {min} to {max}"),
        }),
    }
}

/// How the group is made: the collective timeout and whether training runs on CUDA (then NCCL
/// carries the CUDA tensors, on GPU LOCAL_RANK).
#[derive(Debug, Clone, PartialEq)]
pub struct DistOptions {
    /// `--dist-timeout`: how long joining or one collective may wait for the other ranks.
    pub timeout: Duration,
    /// Train on CUDA device LOCAL_RANK with NCCL, instead of on the CPU with gloo.
    pub cuda: bool,
}

impl Default for DistOptions {
    fn default() -> Self {
        DistOptions { timeout: DEFAULT_TIMEOUT, cuda: false }
    }
}

/// The backends this build has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backends {
    /// gloo: process groups at all, and CPU tensors.
    pub gloo: bool,
    /// NCCL: CUDA tensors.
    pub nccl: bool,
}

/// The backends this build of the shim was compiled with.
pub fn backends() -> Backends {
    // SAFETY: a plain C function of the shim with no arguments.
    let bits = unsafe { shim::resmooth_dist_backends() };
    Backends { gloo: bits & 1 != 0, nccl: bits & 2 != 0 }
}

impl Backends {
    /// Whether these backends can run `launch` as `options` asks, or what to install.
    pub fn check(self, launch: &Launch, options: &DistOptions) -> Result<(), DistError> {
        if !self.gloo {
            return Err(DistError::NoGloo { rank: launch.rank, world_size: launch.world_size });
        }
        if options.cuda && !self.nccl {
            return Err(DistError::NoNccl);
        }
        Ok(())
    }
}

/// The C++ shim (src/shim/dist.cpp, built by build.rs).
mod shim {
    use std::ffi::{c_char, c_int, c_void};

    /// `resmooth_dist_config` of dist.cpp.
    #[repr(C)]
    pub struct Config {
        pub master_addr: *const c_char,
        pub store_prefix: *const c_char,
        pub gloo_interfaces: *const c_char,
        pub timeout_ms: i64,
        pub rank: i32,
        pub world_size: i32,
        pub master_port: i32,
        pub store_server: i32,
        pub cuda_device: i32,
    }

    extern "C" {
        pub fn resmooth_free_error(error: *mut c_char);
        pub fn resmooth_dist_backends() -> c_int;
        pub fn resmooth_dist_new(config: *const Config, out: *mut *mut c_void) -> *mut c_char;
        pub fn resmooth_dist_free(group: *mut c_void);
        pub fn resmooth_dist_broadcast(
            group: *mut c_void,
            tensors: *const *mut c_void,
            n: usize,
            src: c_int,
        ) -> *mut c_char;
        pub fn resmooth_dist_all_reduce_sum(group: *mut c_void, tensor: *mut c_void) -> *mut c_char;
        pub fn resmooth_dist_all_gather(group: *mut c_void, input: *const c_void, out: *mut *mut c_void)
            -> *mut c_char;
        pub fn resmooth_dist_barrier(group: *mut c_void) -> *mut c_char;
        pub fn resmooth_dist_reducer_new(
            group: *mut c_void,
            params: *const *mut c_void,
            n: usize,
            bucket_bytes: i64,
            out: *mut *mut c_void,
        ) -> *mut c_char;
        pub fn resmooth_dist_reducer_prepare(reducer: *mut c_void) -> *mut c_char;
        #[allow(clippy::too_many_arguments)] // one C call, mirrored by BatchNormLayer
        pub fn resmooth_dist_sync_batch_norm(
            group: *mut c_void,
            x: *const c_void,
            weight: *const c_void,
            bias: *const c_void,
            running_mean: *mut c_void,
            running_var: *mut c_void,
            momentum: f64,
            eps: f64,
            out: *mut *mut c_void,
        ) -> *mut c_char;
        pub fn resmooth_dist_reducer_free(reducer: *mut c_void);
    }
}

/// The shim's error message, if it returned one.
fn message(error: *mut c_char) -> Option<String> {
    if error.is_null() {
        return None;
    }
    // SAFETY: a non-null return is a NUL-terminated string from strdup, released once here.
    unsafe {
        let m = CStr::from_ptr(error).to_string_lossy().into_owned();
        shim::resmooth_free_error(error);
        Some(m)
    }
}

/// The shim's result of collective `op`.
fn collective(error: *mut c_char, op: &'static str) -> Result<(), DistError> {
    message(error).map_or(Ok(()), |message| Err(DistError::Collective { op, message }))
}

/// The shim's process group, shut down when the last [`Dist`] or [`Reducer`] holding it goes.
struct Group {
    raw: *mut c_void,
}

// SAFETY: c10d's ProcessGroup is made to be used from any thread (DDP's autograd hooks call it
// from the autograd engine's); the pointer is freed once, by the last owner.
unsafe impl Send for Group {}
// SAFETY: as above; its collectives take `&self` and c10d serialises them per backend.
unsafe impl Sync for Group {}

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: `raw` came from resmooth_dist_new and is freed once, here.
        unsafe { shim::resmooth_dist_free(self.raw) }
    }
}

/// This process's place in a group of processes training together, and the group's collectives.
/// A clone is the same place in the same group.
#[derive(Clone)]
pub struct Dist {
    group: Arc<Group>,
    launch: Launch,
    device: Device,
}

impl std::fmt::Debug for Dist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dist").field("launch", &self.launch).field("device", &self.device).finish()
    }
}

impl Dist {
    /// Joins the group the launcher's environment describes; `None` without a launcher (no
    /// variable of it set). Blocks until every rank has joined, at most `options.timeout`.
    pub fn from_env(options: &DistOptions) -> Result<Option<Dist>, DistError> {
        Launch::from_env()?.map(|launch| Dist::join(launch, options)).transpose()
    }

    /// Joins the group `launch` describes.
    pub fn join(launch: Launch, options: &DistOptions) -> Result<Dist, DistError> {
        backends().check(&launch, options)?;
        let timeout_ms = i64::try_from(options.timeout.as_millis())
            .ok()
            .filter(|ms| (1..=i64::from(i32::MAX)).contains(ms))
            .ok_or(DistError::BadTimeout { seconds: options.timeout.as_secs_f64() })?;
        let text = |name: &'static str, value: &str| {
            CString::new(value).map_err(|_| DistError::BadVariable {
                name,
                value: value.into(),
                expected: "expected text without NUL characters".into(),
            })
        };
        let addr = text("MASTER_ADDR", &launch.master_addr)?;
        let prefix = text("TORCHELASTIC_RESTART_COUNT", launch.agent_store_prefix.as_deref().unwrap_or(""))?;
        let interfaces = text("GLOO_SOCKET_IFNAME", &launch.gloo_interfaces)?;
        let device = if options.cuda { Device::Cuda(launch.local_rank) } else { Device::Cpu };
        let config = shim::Config {
            master_addr: addr.as_ptr(),
            store_prefix: prefix.as_ptr(),
            gloo_interfaces: interfaces.as_ptr(),
            timeout_ms,
            rank: launch.rank as i32,
            world_size: launch.world_size as i32,
            master_port: i32::from(launch.master_port),
            store_server: i32::from(launch.rank == 0 && launch.agent_store_prefix.is_none()),
            cuda_device: if options.cuda { launch.local_rank as i32 } else { -1 },
        };
        let mut raw = std::ptr::null_mut();
        // SAFETY: `config`'s strings outlive the call; `raw` is a valid out-pointer set on success.
        if let Some(message) = message(unsafe { shim::resmooth_dist_new(&config, &mut raw) }) {
            return Err(DistError::Join {
                rank: launch.rank,
                world_size: launch.world_size,
                addr: launch.master_addr.clone(),
                port: launch.master_port,
                timeout_s: options.timeout.as_secs(),
                message,
            });
        }
        Ok(Dist { group: Arc::new(Group { raw }), launch, device })
    }

    /// This process's rank, 0..world_size.
    pub fn rank(&self) -> usize {
        self.launch.rank
    }

    /// How many processes train together.
    pub fn world_size(&self) -> usize {
        self.launch.world_size
    }

    /// This process's rank on its machine.
    pub fn local_rank(&self) -> usize {
        self.launch.local_rank
    }

    /// Whether this is rank 0, the one that writes the run's files.
    pub fn is_primary(&self) -> bool {
        self.launch.rank == 0
    }

    /// The device this rank trains on: CUDA device LOCAL_RANK under NCCL, else the CPU.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The launch this group was made from.
    pub fn launch(&self) -> &Launch {
        &self.launch
    }

    /// Overwrites `tensors` (the same shapes and kinds on every rank, in the same order) with
    /// rank 0's, in few messages.
    pub fn broadcast_(&self, tensors: &[Tensor]) -> Result<(), DistError> {
        let raw: Vec<*mut c_void> = tensors.iter().map(|t| t.as_ptr() as *mut c_void).collect();
        // SAFETY: `raw` holds live tensors for the duration of the call; the group is live.
        collective(unsafe { shim::resmooth_dist_broadcast(self.group.raw, raw.as_ptr(), raw.len(), 0) }, "broadcast")
    }

    /// Replaces `tensor` with its sum over the ranks (in place, any device).
    pub fn all_reduce_sum_(&self, tensor: &Tensor) -> Result<(), DistError> {
        // SAFETY: `tensor` is live for the duration of the call; the group is live.
        collective(
            unsafe { shim::resmooth_dist_all_reduce_sum(self.group.raw, tensor.as_ptr() as *mut c_void) },
            "all-reduce",
        )
    }

    /// The sums over the ranks of `values` (the same length on every rank): epoch metrics and
    /// counts, added exactly in f64.
    pub fn sum_f64(&self, values: &[f64]) -> Result<Vec<f64>, DistError> {
        let t = Tensor::from_slice(values);
        self.all_reduce_sum_(&t)?;
        Ok(Vec::<f64>::try_from(&t).expect("a 1-D f64 tensor"))
    }

    /// Means over every rank's samples: from the `means` of this rank's `count` samples, the
    /// means over all ranks' samples (0 where there are none) and their total count.
    pub fn mean_over_ranks(&self, means: &[f64], count: usize) -> Result<(Vec<f64>, usize), DistError> {
        let mut weighted: Vec<f64> = means.iter().map(|m| m * count as f64).collect();
        weighted.push(count as f64);
        let sums = self.sum_f64(&weighted)?;
        let (sums, total) = sums.split_at(means.len());
        let total = total[0];
        let means = sums.iter().map(|s| if total > 0.0 { s / total } else { 0.0 }).collect();
        Ok((means, total as usize))
    }

    /// Every rank's `input` (the same shape on every rank) stacked in rank order: a tensor of
    /// shape `[world_size, ..input's shape]` on the input's device.
    pub fn all_gather(&self, input: &Tensor) -> Result<Tensor, DistError> {
        let mut out = std::ptr::null_mut();
        // SAFETY: `input` is live for the duration of the call; on success `out` is a new
        // `at::Tensor*` that `Tensor::from_ptr` takes ownership of.
        collective(
            unsafe { shim::resmooth_dist_all_gather(self.group.raw, input.as_ptr() as *const c_void, &mut out) },
            "all-gather",
        )?;
        // SAFETY: as above.
        Ok(unsafe { Tensor::from_ptr(out as *mut _) })
    }

    /// Every rank's 1-D `input` (any length, the same kind on every rank) concatenated in rank
    /// order: the detection pass's losses, each rank having scored its share of the samples.
    pub fn all_gather_varlen(&self, input: &Tensor) -> Result<Tensor, DistError> {
        let op = "all-gather";
        if input.dim() != 1 {
            return Err(DistError::BadTensor {
                op,
                message: format!("expected a 1-D tensor, got shape {:?}", input.size()),
            });
        }
        let len = input.size()[0];
        let lengths =
            Vec::<i64>::try_from(&self.all_gather(&Tensor::from_slice(&[len]))?.view([-1])).expect("a 1-D i64 tensor");
        let longest = lengths.iter().copied().max().unwrap_or(0);
        if longest == 0 {
            return Ok(Tensor::zeros([0], (input.kind(), input.device())));
        }
        let padded = Tensor::zeros([longest], (input.kind(), input.device()));
        padded.narrow(0, 0, len).copy_(input);
        let all = self.all_gather(&padded)?;
        let parts: Vec<Tensor> = lengths.iter().enumerate().map(|(r, &n)| all.get(r as i64).narrow(0, 0, n)).collect();
        Ok(Tensor::cat(&parts, 0))
    }

    /// Returns when every rank has reached it.
    pub fn barrier(&self) -> Result<(), DistError> {
        // SAFETY: the group is live.
        collective(unsafe { shim::resmooth_dist_barrier(self.group.raw) }, "barrier")
    }

    /// Whether `mine` holds on any rank: every rank gets the same answer (a stop asked on one
    /// rank, or on each at a different step, is taken by all at the same step).
    pub fn any(&self, mine: bool) -> Result<bool, DistError> {
        Ok(self.sum_f64(&[f64::from(u8::from(mine))])?[0] > 0.0)
    }

    /// Rank 0's `text` on every rank (the others' `text` is not read).
    pub fn broadcast_text(&self, text: &str) -> Result<String, DistError> {
        let len = Tensor::from_slice(&[text.len() as i64]);
        self.broadcast_(std::slice::from_ref(&len))?;
        let len = len.int64_value(&[0]) as usize;
        let bytes = if self.is_primary() { text.as_bytes().to_vec() } else { vec![0u8; len] };
        let t = Tensor::from_slice(&bytes);
        if len > 0 {
            self.broadcast_(std::slice::from_ref(&t))?;
        }
        let bytes = Vec::<u8>::try_from(&t).expect("a 1-D u8 tensor");
        String::from_utf8(bytes).map_err(|e| DistError::BadTensor { op: "broadcast", message: e.to_string() })
    }

    /// `--sync-bn`: BatchNorm of `x` (`[N, C, ...]`) in training mode with the mean and
    /// variance of every rank's batch together, as torch.nn.SyncBatchNorm, updating `layer`'s
    /// running statistics with them. Differentiable: backward all-reduces the per-channel sums
    /// the input's gradient needs. Every rank must call it for the same layers in the same order
    /// (it is a collective, forward and backward). Evaluation uses the running statistics, as
    /// without it.
    pub fn sync_batch_norm(&self, x: &Tensor, layer: &BatchNormLayer) -> Result<Tensor, DistError> {
        let mut out = std::ptr::null_mut();
        let ptr = |t: &Tensor| t.as_ptr() as *const c_void;
        // SAFETY: every tensor is live for the call; on success `out` is a new `at::Tensor*`
        // that `Tensor::from_ptr` takes ownership of. The group outlives the backward that uses
        // it only if `self` does: the caller keeps the Dist for the whole run.
        collective(
            unsafe {
                shim::resmooth_dist_sync_batch_norm(
                    self.group.raw,
                    ptr(x),
                    ptr(layer.weight),
                    ptr(layer.bias),
                    layer.running_mean.as_ptr() as *mut c_void,
                    layer.running_var.as_ptr() as *mut c_void,
                    layer.momentum,
                    layer.eps,
                    &mut out,
                )
            },
            "sync BatchNorm",
        )?;
        // SAFETY: as above.
        Ok(unsafe { Tensor::from_ptr(out as *mut _) })
    }
}

/// `--sync-bn` for the BatchNorm layers of one model: [`Dist::sync_batch_norm`] in training
/// forwards. A collective that fails is kept (the first one), and every later layer normalises
/// with its own batch's statistics instead of waiting on a broken group; the step asks
/// [`SyncBatchNorm::failure`] after its forward and stops with the error.
pub struct SyncBatchNorm {
    dist: Dist,
    failed: std::sync::Mutex<Option<DistError>>,
}

impl std::fmt::Debug for SyncBatchNorm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncBatchNorm").field("dist", &self.dist).finish()
    }
}

impl SyncBatchNorm {
    /// BatchNorm across the ranks of `dist`, shared by a model's layers.
    pub fn new(dist: Dist) -> Arc<SyncBatchNorm> {
        Arc::new(SyncBatchNorm { dist, failed: std::sync::Mutex::new(None) })
    }

    /// `layer` over `x` in training mode with every rank's batch statistics; `None` once a
    /// collective of this model has failed (the layer then uses its own batch's).
    pub fn forward(&self, x: &Tensor, layer: &BatchNormLayer) -> Option<Tensor> {
        let mut failed = self.failed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if failed.is_some() {
            return None;
        }
        match self.dist.sync_batch_norm(x, layer) {
            Ok(y) => Some(y),
            Err(e) => {
                *failed = Some(e);
                None
            }
        }
    }

    /// The collective that failed, if one did (it stays failed).
    pub fn failure(&self) -> Option<DistError> {
        self.failed.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

/// A BatchNorm layer's tensors and settings, for [`Dist::sync_batch_norm`].
pub struct BatchNormLayer<'a> {
    /// The per-channel scale (`weight`) and shift (`bias`).
    pub weight: &'a Tensor,
    pub bias: &'a Tensor,
    /// The running statistics, updated in place.
    pub running_mean: &'a Tensor,
    pub running_var: &'a Tensor,
    /// PyTorch's momentum (0.1) and epsilon (1e-5).
    pub momentum: f64,
    pub eps: f64,
}

/// DistributedDataParallel's gradient engine (c10d's Reducer) over a [`VarStore`]'s trainable
/// parameters: after [`Reducer::average_next_backward`], the next backward leaves in every
/// rank's gradients their mean over the ranks, all-reduced bucket by bucket while backward
/// still runs.
pub struct Reducer {
    raw: *mut c_void,
    buffers: Vec<Tensor>,
    group: Arc<Group>,
}

// SAFETY: the Reducer is used from one thread at a time (its methods take `&mut self`); its
// autograd hooks run on the autograd engine's threads by c10d's design.
unsafe impl Send for Reducer {}

impl Reducer {
    /// Makes every rank's variables (parameters and buffers) rank 0's, as DDP does when it is
    /// made, then builds the Reducer over the trainable ones (in creation order, the same on
    /// every rank) with buckets of `bucket_bytes` ([`DEFAULT_BUCKET_BYTES`]). Fails, naming the
    /// difference, if another rank's model has other shapes.
    pub fn new(dist: &Dist, vs: &VarStore, bucket_bytes: i64) -> Result<Reducer, DistError> {
        let params = vs.trainable_variables();
        let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let buffers: Vec<Tensor> =
            named.iter().filter(|(_, t)| !t.requires_grad()).map(|(_, t)| t.shallow_clone()).collect();
        let all: Vec<Tensor> = params.iter().chain(&buffers).map(|t| t.shallow_clone()).collect();
        let mut raw_params: Vec<*mut c_void> = params.iter().map(|t| t.as_ptr() as *mut c_void).collect();
        let mut raw = std::ptr::null_mut();
        // the shapes first, so a different model is named instead of broadcast into
        // SAFETY: `raw_params` holds live tensors for the call; `raw` is set on success.
        collective(
            unsafe {
                shim::resmooth_dist_reducer_new(
                    dist.group.raw,
                    raw_params.as_mut_ptr(),
                    raw_params.len(),
                    bucket_bytes,
                    &mut raw,
                )
            },
            "the gradient reducer's setup",
        )?;
        let reducer = Reducer { raw, buffers, group: Arc::clone(&dist.group) };
        dist.broadcast_(&all)?;
        Ok(reducer)
    }

    /// Arms the gradient averaging for the next backward (DDP's forward with gradient sync on).
    /// Every rank must call it before each step's forward, the same number of times; a backward
    /// without it keeps this rank's own gradients (DDP's `no_sync`).
    pub fn average_next_backward(&mut self) -> Result<(), DistError> {
        // SAFETY: `raw` is a live Reducer.
        collective(unsafe { shim::resmooth_dist_reducer_prepare(self.raw) }, "the gradient reducer")
    }

    /// Makes every rank's buffers (BatchNorm's running statistics) rank 0's, as DDP does before
    /// each forward (`broadcast_buffers=True`), so every rank evaluates and saves the same model.
    pub fn sync_buffers(&self) -> Result<(), DistError> {
        if self.buffers.is_empty() {
            return Ok(());
        }
        let dist_raw = self.group.raw;
        let raw: Vec<*mut c_void> = self.buffers.iter().map(|t| t.as_ptr() as *mut c_void).collect();
        // SAFETY: the buffers are live for the call; the group is live (held by `self`).
        collective(unsafe { shim::resmooth_dist_broadcast(dist_raw, raw.as_ptr(), raw.len(), 0) }, "broadcast")
    }
}

impl Drop for Reducer {
    fn drop(&mut self) {
        // SAFETY: `raw` came from resmooth_dist_reducer_new and is freed once, here, before the
        // group it uses (held by `self.group`, released after this).
        unsafe { shim::resmooth_dist_reducer_free(self.raw) }
    }
}

/// This rank's part of every global batch: `--batch-size` stays the global batch, the epoch's
/// seeded order and its cut into batches stay those of one process, and rank r takes positions
/// `r·B/N .. (r+1)·B/N` of each batch. Every view is drawn from (seed, epoch, sample) alone, so
/// which rank makes it changes nothing; the global batch's first `floor(B·prob)` positions are
/// its original views, wherever they fall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchShare {
    /// The global batch size B.
    pub batch_size: usize,
    /// This rank.
    pub rank: usize,
    /// The number of ranks N.
    pub world_size: usize,
}

impl BatchShare {
    /// Rank `rank` of `world_size`'s share of global batches of `batch_size`; refused (saying
    /// why) when the batch size does not divide, as equal shares keep every rank's BatchNorm
    /// batch and step count the same.
    pub fn new(batch_size: usize, rank: usize, world_size: usize) -> Result<BatchShare, DistError> {
        assert!(rank < world_size, "rank {rank} of {world_size}");
        if batch_size == 0 || !batch_size.is_multiple_of(world_size) {
            return Err(DistError::BatchSplit { batch_size, world_size });
        }
        Ok(BatchShare { batch_size, rank, world_size })
    }

    /// The part of every batch the data pipeline makes for this rank.
    pub fn part(&self) -> Part {
        Part { rank: self.rank, world_size: self.world_size }
    }

    /// The share of every full batch: B/N.
    pub fn local_batch_size(&self) -> usize {
        self.batch_size / self.world_size
    }

    /// The positions of a batch of `len` samples that are this rank's: B/N of them for a full
    /// batch; a last partial batch (kept when `drop_last` is off) is split as evenly as it goes.
    pub fn positions(&self, len: usize) -> std::ops::Range<usize> {
        shard(len, self.rank, self.world_size)
    }

    /// This rank's samples of `batch` (a batch of the epoch's plan).
    pub fn take<'a>(&self, batch: &'a [usize]) -> &'a [usize] {
        &batch[self.positions(batch.len())]
    }

    /// How many of this rank's samples of a batch of `len` are original views when the global
    /// batch's first `n_ori` are.
    pub fn originals(&self, len: usize, n_ori: usize) -> usize {
        let mine = self.positions(len);
        n_ori.clamp(mine.start, mine.end) - mine.start
    }

    /// The factor that turns a sum over this rank's samples of a part into its share of the
    /// part's mean over the global batch of `global_count` samples, pre-multiplied by N because
    /// the Reducer averages the ranks' gradients: Σ_ranks (N / count · Σ_mine) / N = the global
    /// mean. 0 for an empty part, which counts 0 (as in one process).
    pub fn mean_weight(&self, global_count: usize) -> f64 {
        if global_count == 0 {
            0.0
        } else {
            self.world_size as f64 / global_count as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn launch_of(vars: &[(&str, &str)]) -> Result<Option<Launch>, DistError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Launch::from_vars(|name| vars.get(name).cloned())
    }

    const PLAIN: [(&str, &str); 5] =
        [("RANK", "1"), ("WORLD_SIZE", "4"), ("LOCAL_RANK", "1"), ("MASTER_ADDR", "node0"), ("MASTER_PORT", "29500")];

    #[test]
    fn no_launcher_variables_means_one_process() {
        assert_eq!(launch_of(&[]).unwrap(), None);
        assert_eq!(launch_of(&[("GLOO_SOCKET_IFNAME", "lo"), ("RANK", "")]).unwrap(), None);
    }

    #[test]
    fn a_plain_launcher_environment_is_read_whole() {
        let launch = launch_of(&PLAIN).unwrap().unwrap();
        assert_eq!(
            launch,
            Launch {
                rank: 1,
                world_size: 4,
                local_rank: 1,
                master_addr: "node0".into(),
                master_port: 29500,
                agent_store_prefix: None,
                gloo_interfaces: String::new(),
            }
        );
    }

    #[test]
    fn under_torchrun_the_store_is_the_agents_under_the_attempts_prefix() {
        let mut vars = PLAIN.to_vec();
        vars.extend([("TORCHELASTIC_USE_AGENT_STORE", "True"), ("TORCHELASTIC_RESTART_COUNT", "2")]);
        vars.push(("GLOO_SOCKET_IFNAME", "eth0,eth1"));
        let launch = launch_of(&vars).unwrap().unwrap();
        assert_eq!(launch.agent_store_prefix.as_deref(), Some("/worker/attempt_2"));
        assert_eq!(launch.gloo_interfaces, "eth0,eth1");
        vars.retain(|(k, _)| *k != "TORCHELASTIC_RESTART_COUNT");
        assert_eq!(launch_of(&vars).unwrap().unwrap().agent_store_prefix.as_deref(), Some("/worker/attempt_0"));
    }

    #[test]
    fn a_half_set_environment_names_what_is_missing() {
        let err = launch_of(&[("RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "h")]).unwrap_err();
        assert_eq!(
            err,
            DistError::PartialEnvironment {
                set: vec!["RANK", "WORLD_SIZE", "MASTER_ADDR"],
                missing: vec!["LOCAL_RANK", "MASTER_PORT"]
            }
        );
        let text = err.to_string();
        assert!(text.contains("LOCAL_RANK, MASTER_PORT missing") && text.contains("torchrun"), "{text}");
    }

    #[test]
    fn bad_values_are_named_with_what_was_expected() {
        for (name, value, expected) in [
            ("RANK", "4", "from 0 to 3"),
            ("RANK", "-1", "from 0 to 3"),
            ("WORLD_SIZE", "0", "from 1 to"),
            ("LOCAL_RANK", "x", "from 0 to 3"),
            ("MASTER_PORT", "70000", "from 1 to 65535"),
        ] {
            let mut vars = PLAIN.to_vec();
            vars.retain(|(k, _)| *k != name);
            vars.push((name, value));
            let err = launch_of(&vars).unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, DistError::BadVariable { name: n, .. } if n == name), "{text}");
            assert!(text.contains(&format!("{name}=\"{value}\"")) && text.contains(expected), "{text}");
        }
    }

    #[test]
    fn a_build_without_gloo_says_how_to_get_it() {
        let launch = launch_of(&PLAIN).unwrap().unwrap();
        let none = Backends { gloo: false, nccl: false };
        let text = none.check(&launch, &DistOptions::default()).unwrap_err().to_string();
        assert!(text.contains("install libgloo-dev") && text.contains("rerun scripts/setup.sh"), "{text}");
        assert!(text.contains("RANK 1 of WORLD_SIZE 4"), "{text}");
        let cpu_only = Backends { gloo: true, nccl: false };
        assert_eq!(cpu_only.check(&launch, &DistOptions::default()), Ok(()));
        let cuda = DistOptions { cuda: true, ..DistOptions::default() };
        let text = cpu_only.check(&launch, &cuda).unwrap_err().to_string();
        assert!(
            text.contains("NCCL") && text.contains("nvidia-cuda-cccl") && text.contains("scripts/setup.sh"),
            "{text}"
        );
    }

    #[test]
    fn ranks_take_equal_consecutive_parts_of_every_global_batch() {
        let batch: Vec<usize> = (100..112).collect();
        let shares: Vec<BatchShare> = (0..4).map(|r| BatchShare::new(12, r, 4).unwrap()).collect();
        assert!(shares.iter().all(|s| s.local_batch_size() == 3));
        let parts: Vec<&[usize]> = shares.iter().map(|s| s.take(&batch)).collect();
        assert_eq!(parts[0], &[100, 101, 102]);
        assert_eq!(parts[3], &[109, 110, 111]);
        assert_eq!(parts.concat(), batch, "the parts in rank order are the global batch");
        // a last partial batch of 5 (drop_last off) is split as evenly as it goes
        let lens: Vec<usize> = shares.iter().map(|s| s.positions(5).len()).collect();
        assert_eq!(lens, vec![1, 1, 1, 2]);
        assert_eq!(shares.iter().map(|s| s.take(&batch[..5]).to_vec()).collect::<Vec<_>>().concat(), batch[..5]);
    }

    #[test]
    fn a_batch_size_that_does_not_divide_is_refused_saying_why() {
        let err = BatchShare::new(250, 0, 4).unwrap_err();
        assert_eq!(err, DistError::BatchSplit { batch_size: 250, world_size: 4 });
        let text = err.to_string();
        assert!(text.contains("--batch-size 250 does not divide among 4 ranks") && text.contains("e.g. 252"), "{text}");
        assert!(BatchShare::new(0, 0, 2).is_err());
        assert_eq!(BatchShare::new(256, 0, 1).unwrap().local_batch_size(), 256);
    }

    #[test]
    fn the_original_views_of_a_global_batch_fall_to_the_ranks_holding_its_first_positions() {
        // B = 8 over 2 ranks, prob 0.75: positions 0..6 are originals
        let shares = [BatchShare::new(8, 0, 2).unwrap(), BatchShare::new(8, 1, 2).unwrap()];
        assert_eq!(shares.map(|s| s.originals(8, 6)), [4, 2]);
        assert_eq!(shares.map(|s| s.originals(8, 0)), [0, 0]);
        assert_eq!(shares.map(|s| s.originals(8, 8)), [4, 4]);
        assert_eq!(shares.map(|s| s.originals(8, 3)), [3, 0]);
    }

    #[test]
    fn weighted_rank_sums_average_to_the_global_batch_mean() {
        // losses of a global batch of 8 whose first 3 are originals, over 4 ranks
        let losses = [0.5, 1.0, 2.0, 4.0, 0.25, 3.0, 1.5, 0.75];
        let (n_ori, b) = (3, losses.len());
        let global_org = losses[..n_ori].iter().sum::<f64>() / n_ori as f64;
        let global_aug = losses[n_ori..].iter().sum::<f64>() / (b - n_ori) as f64;
        let averaged = (0..4)
            .map(|r| {
                let share = BatchShare::new(b, r, 4).unwrap();
                let mine = share.positions(b);
                let (org, aug): (Vec<usize>, Vec<usize>) = mine.clone().partition(|&k| k < n_ori);
                assert_eq!(org.len(), share.originals(b, n_ori));
                let sum = |ks: &[usize]| ks.iter().map(|&k| losses[k]).sum::<f64>();
                share.mean_weight(n_ori) * sum(&org) * 0.3 + share.mean_weight(b - n_ori) * sum(&aug) * 0.7
            })
            .sum::<f64>()
            / 4.0;
        assert!((averaged - (0.3 * global_org + 0.7 * global_aug)).abs() < 1e-12);
        assert_eq!(BatchShare::new(8, 0, 4).unwrap().mean_weight(0), 0.0);
    }

    #[test]
    fn shards_in_rank_order_are_the_whole() {
        for (len, world) in [(10, 3), (2, 4), (0, 2), (10_000, 8)] {
            let parts: Vec<usize> = (0..world).flat_map(|r| shard(len, r, world)).collect();
            assert_eq!(parts, (0..len).collect::<Vec<_>>());
            let sizes: Vec<usize> = (0..world).map(|r| shard(len, r, world).len()).collect();
            assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1, "{sizes:?}");
        }
    }

    #[test]
    fn a_timeout_libtorch_cannot_hold_is_refused_before_joining() {
        if !backends().gloo {
            return; // without gloo the missing backend is the error (tested above)
        }
        let launch = launch_of(&PLAIN).unwrap().unwrap();
        for timeout in [Duration::ZERO, Duration::from_secs(3_000_000)] {
            let err = Dist::join(launch.clone(), &DistOptions { timeout, cuda: false }).unwrap_err();
            assert!(matches!(err, DistError::BadTimeout { .. }), "{err}");
            assert!(err.to_string().contains("--dist-timeout"), "{err}");
        }
    }

    #[test]
    fn a_group_of_one_process_joins_alone_and_its_collectives_are_identities() {
        if !backends().gloo {
            return;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let launch = Launch {
            rank: 0,
            world_size: 1,
            local_rank: 0,
            master_addr: "127.0.0.1".into(),
            master_port: port,
            agent_store_prefix: None,
            gloo_interfaces: "lo".into(),
        };
        let dist = Dist::join(launch, &DistOptions { timeout: Duration::from_secs(20), cuda: false }).unwrap();
        assert!(dist.is_primary() && dist.world_size() == 1 && dist.device() == Device::Cpu);
        let t = Tensor::from_slice(&[1.5f32, -2.0]);
        dist.all_reduce_sum_(&t).unwrap();
        assert_eq!(Vec::<f32>::try_from(&t).unwrap(), vec![1.5, -2.0]);
        assert_eq!(dist.mean_over_ranks(&[0.25, 3.0], 8).unwrap(), (vec![0.25, 3.0], 8));
        assert_eq!(dist.mean_over_ranks(&[0.25], 0).unwrap(), (vec![0.0], 0));
        let gathered = dist.all_gather_varlen(&Tensor::from_slice(&[7i64, 8, 9])).unwrap();
        assert_eq!(Vec::<i64>::try_from(&gathered).unwrap(), vec![7, 8, 9]);
        dist.barrier().unwrap();
    }

    #[test]
    fn joining_an_address_nobody_serves_fails_within_the_timeout_naming_it() {
        if !backends().gloo {
            return;
        }
        // rank 1 of 2 connects as a client to a port nobody listens on
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let launch = Launch {
            rank: 1,
            world_size: 2,
            local_rank: 1,
            master_addr: "127.0.0.1".into(),
            master_port: port,
            agent_store_prefix: None,
            gloo_interfaces: "lo".into(),
        };
        let start = std::time::Instant::now();
        let err = Dist::join(launch, &DistOptions { timeout: Duration::from_secs(2), cuda: false }).unwrap_err();
        let took = start.elapsed();
        assert!(took < Duration::from_secs(20), "joining took {took:?} with a 2 s timeout");
        let text = err.to_string();
        assert!(matches!(err, DistError::Join { .. }), "{text}");
        assert!(text.contains(&format!("127.0.0.1:{port}")) && text.contains("rank 1 of 2"), "{text}");
    }
}
