//! Picks the compute device for `--gpu N`.

use tch::{Device, Kind};

/// The values `--precision` accepts.
pub const PRECISIONS: [&str; 2] = ["bf16", "fp32"];

/// The compute kind for `--precision` on `device`: bf16 by default on a GPU, fp32 on the CPU.
pub fn compute_kind(precision: Option<&str>, device: Device) -> Kind {
    match precision {
        Some("bf16") => Kind::BFloat16,
        Some(_) => Kind::Float,
        None if device.is_cuda() => Kind::BFloat16,
        None => Kind::Float,
    }
}

/// CUDA device `gpu` when a GPU exists (an error if the index is out of range); otherwise the
/// CPU, said on one line of stderr.
pub fn select(gpu: usize) -> Result<Device, String> {
    if tch::Cuda::is_available() {
        let count = tch::Cuda::device_count() as usize;
        if gpu >= count {
            return Err(format!(
                "--gpu {gpu} does not exist: this machine has {count} CUDA device(s), 0..{}",
                count - 1
            ));
        }
        tch::Cuda::cudnn_set_benchmark(true);
        Ok(Device::Cuda(gpu))
    } else {
        eprintln!("no CUDA GPU found; running on the CPU");
        Ok(Device::Cpu)
    }
}
