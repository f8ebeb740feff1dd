//! Picks the compute device for `--gpu N`.

use tch::Device;

/// `--gpu N` names a CUDA device this machine does not have.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("--gpu {gpu} does not exist: this machine has {count} CUDA device(s), 0..{}", count - 1)]
pub struct DeviceError {
    pub gpu: usize,
    pub count: usize,
}

/// CUDA device `gpu` when a GPU exists (an error if the index is out of range), with cuDNN's
/// autotuner on; otherwise the CPU.
pub fn select(gpu: usize) -> Result<Device, DeviceError> {
    if !tch::Cuda::is_available() {
        return Ok(Device::Cpu);
    }
    let count = tch::Cuda::device_count() as usize;
    if gpu >= count {
        return Err(DeviceError { gpu, count });
    }
    tch::Cuda::cudnn_set_benchmark(true);
    Ok(Device::Cuda(gpu))
}

/// libtorch's threads for work on the CPU, unless `OMP_NUM_THREADS` sets them: one fewer than the
/// machine's cores, at least one, leaving a core to the data pipeline's workers and the main
/// thread. With as many libtorch threads as cores, they spin waiting for each other while the
/// pipeline runs: on a busy 2-core machine `resmooth run --dataset demo` took 10 to 16 minutes
/// with 2 threads and under 2 with 1 (README, the demo dataset). Returns the count it set.
pub fn set_cpu_threads() -> Option<usize> {
    if std::env::var_os("OMP_NUM_THREADS").is_some() {
        return None;
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let threads = cores.saturating_sub(1).max(1);
    tch::set_num_threads(threads as i32);
    Some(threads)
}

/// `--deterministic`: the same numbers on every run of a GPU. Turns cuDNN's autotuner off and
/// makes libtorch (cuDNN included) use deterministic algorithms only, an op without one failing
/// with its name; sets cuBLAS's fixed workspace (`CUBLAS_WORKSPACE_CONFIG`) unless the
/// environment sets it. Call before any GPU work. On the CPU the results are already the same.
pub fn set_deterministic() {
    if std::env::var_os("CUBLAS_WORKSPACE_CONFIG").is_none() {
        // read by cuBLAS when it makes its first handle, after this
        std::env::set_var("CUBLAS_WORKSPACE_CONFIG", ":4096:8");
    }
    tch::Cuda::cudnn_set_benchmark(false);
    // SAFETY: a plain C function of the shim (src/shim/context.cpp) taking a bool; it sets two
    // flags of libtorch's process-wide context, which lives for the whole run.
    unsafe { resmooth_set_deterministic(true) };
}

extern "C" {
    fn resmooth_set_deterministic(on: bool);
}

/// Waits for the work queued on `device` (a no-op on the CPU), so a clock read after it is true.
pub fn synchronize(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}
