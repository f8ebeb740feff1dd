// The few libtorch calls a TorchScript model needs that tch 0.24 does not expose: its named
// buffers (BatchNorm running statistics live there, and tch's CModule lists only parameters),
// next to loading, train/eval mode and the forward pass on one module handle. Compiled by
// build.rs against the project's libtorch. No C++ exception crosses into Rust: every function
// catches, and reports the message through `error` (a malloc'd string the caller frees with
// resmooth_ts_free_error).

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>

#include <cstdlib>
#include <cstring>
#include <exception>

using torch::jit::Module;

// Receives one named tensor; `tensor` is a new handle the callee owns (tch's `Tensor::from_ptr`).
typedef void (*resmooth_ts_named_fn)(void *data, const char *name, at::Tensor *tensor);

namespace {

void set_error(char **error, const char *message) { *error = strdup(message); }

template <typename F> void guarded(char **error, F body) {
  *error = nullptr;
  try {
    body();
  } catch (const std::exception &e) {
    set_error(error, e.what());
  } catch (...) {
    set_error(error, "unknown C++ exception");
  }
}

}  // namespace

extern "C" {

// Loads a module saved by torch.jit.save onto device `device` (-1: CPU, n >= 0: CUDA n).
Module *resmooth_ts_load(const char *path, int device, char **error) {
  Module *module = nullptr;
  guarded(error, [&] {
    c10::Device where = device < 0 ? c10::Device(c10::kCPU) : c10::Device(c10::kCUDA, device);
    module = new Module(torch::jit::load(path, where));
  });
  return module;
}

void resmooth_ts_free(Module *module) { delete module; }

void resmooth_ts_free_error(char *error) { free(error); }

void resmooth_ts_named_parameters(Module *module, void *data, resmooth_ts_named_fn f, char **error) {
  guarded(error, [&] {
    for (const auto &p : module->named_parameters(true)) f(data, p.name.c_str(), new at::Tensor(p.value));
  });
}

void resmooth_ts_named_buffers(Module *module, void *data, resmooth_ts_named_fn f, char **error) {
  guarded(error, [&] {
    for (const auto &b : module->named_buffers(true)) f(data, b.name.c_str(), new at::Tensor(b.value));
  });
}

// Switches the module and every submodule to training (1) or evaluation (0) mode.
void resmooth_ts_train(Module *module, int on, char **error) {
  guarded(error, [&] { module->train(on != 0); });
}

// The module's forward on one tensor; an output that is not a tensor is an error.
at::Tensor *resmooth_ts_forward(Module *module, const at::Tensor *input, char **error) {
  at::Tensor *output = nullptr;
  guarded(error, [&] {
    auto out = module->forward({*input});
    if (!out.isTensor()) {
      throw std::runtime_error("forward returned " + out.tagKind() + ", not a tensor of logits");
    }
    output = new at::Tensor(out.toTensor());
  });
  return output;
}

}  // extern "C"
