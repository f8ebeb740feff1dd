// The ATen optimizer ops that tch's generated bindings leave out, for src/optim.rs.
//
// Tensors come as tch's raw `C_tensor` pointers, which are `torch::Tensor*` (= `at::Tensor*`),
// as tch's own C wrapper (torch-sys libtch/torch_api.h) dereferences them. Every function
// returns NULL on success or a malloc'd error message that the caller releases with
// `resmooth_free_error`; no C++ exception crosses into Rust.

#include <ATen/core/Tensor.h>
#include <ATen/ops/_fused_sgd.h>
#include <c10/core/GradMode.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <vector>

namespace {

std::vector<at::Tensor> gather(at::Tensor* const* tensors, size_t n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(*tensors[i]);
  }
  return out;
}

char* error_text(const char* what) {
  char* e = strdup(what);
  return e != nullptr ? e : strdup("out of memory");
}

}  // namespace

extern "C" {

void resmooth_free_error(char* error) { free(error); }

// One SGD step over `n` parameters with their gradients and momentum buffers, in one
// `at::_fused_sgd_` call: d = g + weight_decay p; b = momentum b + (1 - dampening) d (b = d when
// `first_step`); d = d + momentum b (nesterov) or b; p -= lr d. `lr` is a one-element tensor on
// the parameters' device, so a changing rate is a device write, not a kernel argument.
char* resmooth_fused_sgd(at::Tensor* const* params, at::Tensor* const* grads, at::Tensor* const* buffers,
                         size_t n, double weight_decay, double momentum, const at::Tensor* lr,
                         double dampening, int nesterov, int first_step) {
  try {
    c10::NoGradGuard no_grad;
    std::vector<at::Tensor> p = gather(params, n), g = gather(grads, n), b = gather(buffers, n);
    at::_fused_sgd_(p, g, b, weight_decay, momentum, *lr, dampening, nesterov != 0, /*maximize=*/false,
                    first_step != 0);
    return nullptr;
  } catch (const std::exception& e) {
    return error_text(e.what());
  }
}

// Drops the gradients of `n` parameters, as `zero_grad(set_to_none=True)` does: the next
// backward pass writes fresh gradients instead of zeroing and accumulating into old ones.
char* resmooth_grads_to_none(at::Tensor* const* params, size_t n) {
  try {
    for (size_t i = 0; i < n; ++i) {
      params[i]->mutable_grad().reset();
    }
    return nullptr;
  } catch (const std::exception& e) {
    return error_text(e.what());
  }
}

}  // extern "C"
