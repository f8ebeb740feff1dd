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

/// Waits for the work queued on `device` (a no-op on the CPU), so a clock read after it is true.
pub fn synchronize(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}
