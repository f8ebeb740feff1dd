// The settings of libtorch's global context that tch does not wrap, for src/device.rs:
// torch.backends.cudnn.deterministic and torch.use_deterministic_algorithms.

#include <ATen/Context.h>

extern "C" {

// Makes cuDNN and every libtorch op use deterministic algorithms only (an op without one fails
// with its name), as `--deterministic` asks.
void resmooth_set_deterministic(bool on) {
  at::globalContext().setDeterministicCuDNN(on);
  at::globalContext().setDeterministicAlgorithms(on, /*warn_only=*/false);
}

}  // extern "C"
