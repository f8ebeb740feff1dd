//! Picks the compute device for `--gpu N`.

use tch::{Device, Kind};

/// The values `--precision` accepts.
pub const PRECISIONS: [&str; 2] = ["bf16", "fp32"];

/// The compute kind for `--precision`: fp32 unless bf16 is asked for (the reference trains,
/// scores and evaluates in fp32; bf16 stays opt-in until a GPU comparison shows the same
/// accuracy, see docs/FIDELITY.md).
pub fn compute_kind(precision: Option<&str>) -> Kind {
    match precision {
        Some("bf16") => Kind::BFloat16,
        _ => Kind::Float,
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
