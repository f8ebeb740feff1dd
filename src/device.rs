//! Picks the compute device for `--gpu N`.

use tch::Device;

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
