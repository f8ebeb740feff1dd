// PyTorch's distributed engine (c10d) for src/dist.rs: the process group a launcher's environment
// describes, the collectives training needs, and DistributedDataParallel's C++ engine, the
// `c10d::Reducer` (gradient buckets all-reduced from autograd hooks while backward runs). What
// torch.distributed and torch.nn.parallel.DistributedDataParallel do from Python, done from C++
// because tch has no binding for c10d.
//
// gloo serves CPU tensors, NCCL CUDA tensors. libtorch_cpu.so exports c10d and gloo, but the
// PyTorch wheel has no gloo headers: build.rs defines USE_C10D_GLOO only where Debian's
// libgloo-dev provides them, and USE_C10D_NCCL only where the NCCL and CUDA headers of the PyPI
// packages beside the wheel are found (scripts/setup.sh installs them). Debian's gloo::Context is
// laid out differently from the gloo libtorch was built with, while every c10d class has the same
// layout with either, so this file calls c10d functions only, never an inline gloo accessor.
//
// Tensors come as tch's raw `C_tensor` pointers (`at::Tensor*`). No C++ exception crosses into
// Rust: every function returns NULL on success or a malloc'd message released with
// `resmooth_free_error` (optim.cpp).

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

// Which backends this build has: bit 0 gloo (CPU), bit 1 NCCL (CUDA).
#if defined(USE_C10D_GLOO)
#define RESMOOTH_DIST_GLOO 1
#else
#define RESMOOTH_DIST_GLOO 0
#endif
#if defined(USE_C10D_GLOO) && defined(USE_C10D_NCCL)
#define RESMOOTH_DIST_NCCL 2
#else
#define RESMOOTH_DIST_NCCL 0
#endif

// What src/dist.rs reads from the launcher's environment, checked there.
struct resmooth_dist_config {
  const char* master_addr;
  const char* store_prefix;     // "" or torchrun's "/worker/attempt_<restart count>"
  const char* gloo_interfaces;  // GLOO_SOCKET_IFNAME: comma-separated, "" for the host name's
  int64_t timeout_ms;           // of joining and of every collective
  int32_t rank;
  int32_t world_size;
  int32_t master_port;
  int32_t store_server;  // 1: this process serves the TCPStore (rank 0 without torchrun's agent)
  int32_t cuda_device;   // NCCL on this CUDA device; -1: none
};

namespace {

char* error_text(const char* what) {
  char* e = strdup(what);
  return e != nullptr ? e : strdup("out of memory");
}

// Runs `body`, turning any exception into an error message (c10's without its C++ backtrace).
template <typename F>
char* guarded(F body) {
  try {
    body();
    return nullptr;
  } catch (const c10::Error& e) {
    return error_text(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return error_text(e.what());
  } catch (...) {
    return error_text("unknown C++ exception");
  }
}

}  // namespace

#if RESMOOTH_DIST_GLOO

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/comm.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>
#include <torch/csrc/autograd/custom_function.h>
#if RESMOOTH_DIST_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <sstream>
#include <vector>

namespace {

// The process group, and the CUDA device its NCCL backend serves (none: CPU tensors only).
struct Group {
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
  std::optional<c10::Device> cuda;
};

// DDP's gradient engine over a list of parameters; it keeps the group alive.
struct DdpReducer {
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
  std::unique_ptr<c10d::Reducer> reducer;
};

// broadcast_coalesced's buffer, as DistributedDataParallel's _sync_module_states uses.
constexpr size_t kBroadcastBucketBytes = 250 << 20;

std::vector<at::Tensor> gather(at::Tensor* const* tensors, size_t n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(*tensors[i]);
  }
  return out;
}

// One gloo device per interface of GLOO_SOCKET_IFNAME (as torch.distributed reads it), or the
// one the host name resolves to.
std::vector<std::shared_ptr<::gloo::transport::Device>> gloo_devices(const std::string& interfaces) {
  std::vector<std::shared_ptr<::gloo::transport::Device>> devices;
  std::stringstream names(interfaces);
  std::string name;
  while (std::getline(names, name, ',')) {
    if (!name.empty()) {
      devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(name));
    }
  }
  if (devices.empty()) {
    devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  return devices;
}

// The TCPStore every rank meets at, as torch.distributed's env:// rendezvous makes it; under
// torchrun's agent (which already serves MASTER_PORT) a client under the attempt's prefix.
c10::intrusive_ptr<c10d::Store> make_store(const resmooth_dist_config& c) {
  c10d::TCPStoreOptions options;
  options.port = static_cast<uint16_t>(c.master_port);
  options.isServer = c.store_server != 0;
  options.numWorkers = static_cast<size_t>(c.world_size);
  options.timeout = std::chrono::milliseconds(c.timeout_ms);
  options.multiTenant = true;
  c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(c.master_addr, options);
  if (c.store_prefix[0] != '\0') {
    store = c10::make_intrusive<c10d::PrefixStore>(c.store_prefix, store);
  }
  return store;
}

// The group's tensor for `t`: `t` itself when a backend serves its device, else a copy on the
// device that does (a CPU tensor in a group with NCCL only, or the reverse).
at::Tensor served(const Group& g, const at::Tensor& t) {
  at::Tensor out = t;
  if (t.is_cuda() && !g.cuda) {
    out = t.cpu();
  }
  return out.contiguous();
}

// The shape that broadcasts a per-channel [C] tensor over an input of `dim` dimensions.
std::vector<int64_t> channel_shape(int64_t c, int64_t dim) {
  std::vector<int64_t> shape(dim, 1);
  shape[1] = c;
  return shape;
}

// Every dimension of an input of `dim` dimensions but the channels'.
std::vector<int64_t> reduced_dims(int64_t dim) {
  std::vector<int64_t> dims{0};
  for (int64_t d = 2; d < dim; ++d) {
    dims.push_back(d);
  }
  return dims;
}

// BatchNorm in training mode with the statistics of every rank's batch, as
// torch.nn.SyncBatchNorm computes them; libtorch's own kernels for it (batch_norm_stats,
// batch_norm_gather_stats_with_counts, batch_norm_backward_reduce) exist on CUDA only, so this is
// written with plain ATen ops, the same on the CPU and on CUDA, in float32 whatever the input's
// type. Forward: one all-gather of every rank's (count, mean, count·variance), combined exactly
// (Chan's parallel variance); the running statistics are updated with the unbiased variance of
// the whole batch. Backward: one all-reduce of (Σ dy, Σ dy·(x-mean)) per channel; the gradient
// of x is that of the sum of every rank's loss, the gradients of weight and bias are this rank's
// own (both, as in PyTorch, so that DDP's averaging over the ranks gives the gradient of the mean
// loss). Every rank must run it in the same order, as any collective.
struct SyncBatchNorm : public torch::autograd::Function<SyncBatchNorm> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias, at::Tensor running_mean, at::Tensor running_var,
                            double momentum, double eps, int64_t group) {
    const Group& g = *reinterpret_cast<const Group*>(group);
    TORCH_CHECK(x.dim() >= 2, "sync BatchNorm needs an input of shape [N, C, ...], got ", x.sizes());
    int64_t c = x.size(1);
    auto shape = channel_shape(c, x.dim());
    auto dims = reduced_dims(x.dim());
    at::Tensor xf = x.to(at::kFloat);
    double count = static_cast<double>(x.numel() / c);
    auto [var, mean] = at::var_mean(xf, dims, /*correction=*/0, /*keepdim=*/false);
    at::Tensor mine = at::cat({at::full({1}, count, xf.options()), mean, var * count});
    std::vector<at::Tensor> inputs{served(g, mine)};
    std::vector<std::vector<at::Tensor>> outputs(1);
    for (int r = 0; r < g.pg->getSize(); ++r) {
      outputs[0].push_back(at::empty_like(inputs[0]));
    }
    g.pg->allgather(outputs, inputs)->wait();
    at::Tensor all = at::stack(outputs[0]).to(xf.device());
    at::Tensor counts = all.narrow(1, 0, 1);
    at::Tensor means = all.narrow(1, 1, c);
    at::Tensor n = counts.sum();
    at::Tensor global_mean = (means * counts).sum(0) / n;
    at::Tensor m2 = all.narrow(1, 1 + c, c).sum(0) + ((means - global_mean).pow(2) * counts).sum(0);
    at::Tensor invstd = (m2 / n + eps).rsqrt();
    {
      at::NoGradGuard no_grad;
      running_mean.mul_(1 - momentum).add_(global_mean.to(running_mean.scalar_type()) * momentum);
      at::Tensor unbiased = m2 / (n - 1).clamp_min(1);
      running_var.mul_(1 - momentum).add_(unbiased.to(running_var.scalar_type()) * momentum);
    }
    at::Tensor scale = invstd * weight.to(at::kFloat);
    at::Tensor y = (xf - global_mean.view(shape)) * scale.view(shape) + bias.to(at::kFloat).view(shape);
    ctx->save_for_backward({x, weight, global_mean, invstd, n});
    ctx->saved_data["group"] = group;
    return y.to(x.scalar_type());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const Group& g = *reinterpret_cast<const Group*>(ctx->saved_data["group"].toInt());
    auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &weight = saved[1], &mean = saved[2], &invstd = saved[3], &n = saved[4];
    int64_t c = x.size(1);
    auto shape = channel_shape(c, x.dim());
    auto dims = reduced_dims(x.dim());
    at::Tensor dy = grad_outputs[0].to(at::kFloat);
    at::Tensor xmu = x.to(at::kFloat) - mean.view(shape);
    at::Tensor sum_dy = dy.sum(dims);
    at::Tensor sum_dy_xmu = (dy * xmu).sum(dims);
    at::Tensor grad_x;
    if (ctx->needs_input_grad(0)) {
      std::vector<at::Tensor> both{served(g, at::cat({sum_dy, sum_dy_xmu}))};
      g.pg->allreduce(both)->wait();
      at::Tensor total = both[0].to(dy.device());
      at::Tensor mean_dy = total.narrow(0, 0, c) / n;
      at::Tensor mean_dy_xmu = total.narrow(0, c, c) / n;
      at::Tensor scale = invstd * weight.to(at::kFloat);
      grad_x = ((dy - mean_dy.view(shape) - xmu * (invstd * invstd * mean_dy_xmu).view(shape)) * scale.view(shape))
                   .to(x.scalar_type());
    }
    at::Tensor grad_weight = (sum_dy_xmu * invstd).to(weight.scalar_type());
    at::Tensor grad_bias = sum_dy.to(weight.scalar_type());
    return {grad_x, grad_weight, grad_bias, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

extern "C" {

int resmooth_dist_backends() { return RESMOOTH_DIST_GLOO | RESMOOTH_DIST_NCCL; }

// Joins the process group `config` describes (blocks until every rank has joined, or fails after
// the timeout). On success `*out` is the group, freed with resmooth_dist_free.
char* resmooth_dist_new(const resmooth_dist_config* config, void** out) {
  *out = nullptr;
  return guarded([&] {
    const resmooth_dist_config& c = *config;
    auto timeout = std::chrono::milliseconds(c.timeout_ms);
    auto store = make_store(c);
    auto group = std::make_unique<Group>();
    group->pg = c10::make_intrusive<c10d::ProcessGroup>(store, c.rank, c.world_size);
    auto gloo_options = c10d::ProcessGroupGloo::Options::create(timeout);
    gloo_options->devices = gloo_devices(c.gloo_interfaces);
    auto gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(
        c10::make_intrusive<c10d::PrefixStore>("resmooth/cpu/", store), c.rank, c.world_size, gloo_options);
    group->pg->setBackend(c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::GLOO, gloo);
    group->pg->setDefaultBackend(c10d::ProcessGroup::BackendType::GLOO);
    if (c.cuda_device >= 0) {
#if RESMOOTH_DIST_NCCL
      auto device = static_cast<c10::DeviceIndex>(c.cuda_device);
      c10::cuda::set_device(device);
      auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
      nccl_options->timeout = timeout;
      auto nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(
          c10::make_intrusive<c10d::PrefixStore>("resmooth/cuda/", store), c.rank, c.world_size, nccl_options);
      group->pg->setBackend(c10::DeviceType::CUDA, c10d::ProcessGroup::BackendType::NCCL, nccl);
      group->pg->setDefaultBackend(c10d::ProcessGroup::BackendType::NCCL);
      group->cuda = c10::Device(c10::DeviceType::CUDA, device);
#else
      TORCH_CHECK(false, "this build has no NCCL backend");
#endif
    }
    *out = group.release();
  });
}

// Shuts the group down and frees it.
void resmooth_dist_free(void* group) {
  auto* g = static_cast<Group*>(group);
  try {
    g->pg->shutdown();
  } catch (...) {
    // a backend that cannot shut down cleanly (a peer gone) is released all the same
  }
  delete g;
}

// Overwrites `n` tensors with rank `src`'s, in few messages (coalesced by type and device).
char* resmooth_dist_broadcast(void* group, at::Tensor* const* tensors, size_t n, int src) {
  return guarded([&] {
    const Group& g = *static_cast<Group*>(group);
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> originals = gather(tensors, n);
    std::vector<at::Tensor> sent;
    for (const auto& t : originals) {
      sent.push_back(served(g, t));
    }
    c10d::broadcast_coalesced(g.pg, sent, kBroadcastBucketBytes, src);
    for (size_t i = 0; i < n; ++i) {
      if (!sent[i].is_same(originals[i])) {
        originals[i].copy_(sent[i]);
      }
    }
  });
}

// Replaces `tensor` with its sum over the ranks.
char* resmooth_dist_all_reduce_sum(void* group, at::Tensor* tensor) {
  return guarded([&] {
    const Group& g = *static_cast<Group*>(group);
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> buffer{served(g, *tensor)};
    g.pg->allreduce(buffer)->wait();
    if (!buffer[0].is_same(*tensor)) {
      tensor->copy_(buffer[0]);
    }
  });
}

// `*out` = every rank's `input` (same shape on every rank) stacked in rank order, on the
// input's device: a new tensor owned by the caller (tch's Tensor::from_ptr).
char* resmooth_dist_all_gather(void* group, const at::Tensor* input, at::Tensor** out) {
  *out = nullptr;
  return guarded([&] {
    const Group& g = *static_cast<Group*>(group);
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> inputs{served(g, *input)};
    std::vector<std::vector<at::Tensor>> outputs(1);
    for (int r = 0; r < g.pg->getSize(); ++r) {
      outputs[0].push_back(at::empty_like(inputs[0]));
    }
    g.pg->allgather(outputs, inputs)->wait();
    *out = new at::Tensor(at::stack(outputs[0]).to(input->device()));
  });
}

// Returns when every rank has reached it.
char* resmooth_dist_barrier(void* group) {
  return guarded([&] { static_cast<Group*>(group)->pg->barrier()->wait(); });
}

// DDP's Reducer over `n` parameters (leaves requiring a gradient, the same list in the same order
// on every rank), after checking that every rank has the same shapes: buckets of at most
// `bucket_bytes` (the first 1 MiB) assigned by size as DistributedDataParallel assigns them, in
// reverse order (gradients come back last layer first). Gradients are averaged over the ranks
// from backward's autograd hooks, bucket by bucket, after resmooth_dist_reducer_prepare.
char* resmooth_dist_reducer_new(void* group, at::Tensor* const* params, size_t n, int64_t bucket_bytes,
                                void** out) {
  *out = nullptr;
  return guarded([&] {
    const Group& g = *static_cast<Group*>(group);
    std::vector<at::Tensor> list = gather(params, n);
    c10d::verify_params_across_processes(g.pg, list, std::nullopt);
    std::vector<bool> sparse(n, false);
    auto [buckets, limits] = c10d::compute_bucket_assignment_by_size(
        list, {static_cast<size_t>(c10d::kDefaultFirstBucketBytes), static_cast<size_t>(bucket_bytes)}, sparse);
    std::reverse(buckets.begin(), buckets.end());
    std::reverse(limits.begin(), limits.end());
    auto r = std::make_unique<DdpReducer>();
    r->pg = g.pg;
    r->reducer = std::make_unique<c10d::Reducer>(
        list, buckets, g.pg, sparse, bucket_bytes, /*find_unused_parameters=*/false,
        /*gradient_as_bucket_view=*/false, std::unordered_map<size_t, std::string>{},
        c10d::kDefaultFirstBucketBytes, /*skip_all_reduce_unused_params=*/false, /*use_python_reducer=*/false,
        std::vector<int64_t>(limits.begin(), limits.end()));
    *out = r.release();
  });
}

// Before a step's forward: what DistributedDataParallel does before forward with gradient sync
// on (after the first step every rank rebuilds its buckets in the order gradients arrived, which
// is a collective) and after it (arm the hooks), so the next backward averages the gradients.
// Every rank must call it the same number of times; a backward without it keeps local gradients.
char* resmooth_dist_reducer_prepare(void* reducer) {
  return guarded([&] {
    c10d::Reducer& r = *static_cast<DdpReducer*>(reducer)->reducer;
    r.prepare_for_forward();
    r.rebuild_buckets();
    r.prepare_for_backward({});
  });
}

// `*out` = BatchNorm of `x` ([N, C, ...]) in training mode with the statistics of every rank's
// batch (SyncBatchNorm above), updating the running statistics in place: a new tensor owned by
// the caller, differentiable with respect to x, weight and bias.
char* resmooth_dist_sync_batch_norm(void* group, const at::Tensor* x, const at::Tensor* weight, const at::Tensor* bias,
                                    at::Tensor* running_mean, at::Tensor* running_var, double momentum, double eps,
                                    at::Tensor** out) {
  *out = nullptr;
  return guarded([&] {
    at::Tensor y = SyncBatchNorm::apply(*x, *weight, *bias, *running_mean, *running_var, momentum, eps,
                                        reinterpret_cast<int64_t>(group));
    *out = new at::Tensor(y);
  });
}

// Removes the Reducer's hooks and frees it.
void resmooth_dist_reducer_free(void* reducer) {
  auto* r = static_cast<DdpReducer*>(reducer);
  try {
    r->reducer.reset();
  } catch (...) {
    // ~Reducer may rethrow an error of an unfinished backward; the hooks are gone either way
  }
  delete r;
}

}  // extern "C"

#else  // !RESMOOTH_DIST_GLOO: a build without gloo's headers has no process groups

namespace {
constexpr const char* kNoGloo = "this build of resmooth has no distributed backend";
}

extern "C" {
int resmooth_dist_backends() { return 0; }
char* resmooth_dist_new(const resmooth_dist_config*, void** out) {
  *out = nullptr;
  return error_text(kNoGloo);
}
void resmooth_dist_free(void*) {}
char* resmooth_dist_broadcast(void*, at::Tensor* const*, size_t, int) { return error_text(kNoGloo); }
char* resmooth_dist_all_reduce_sum(void*, at::Tensor*) { return error_text(kNoGloo); }
char* resmooth_dist_all_gather(void*, const at::Tensor*, at::Tensor** out) {
  *out = nullptr;
  return error_text(kNoGloo);
}
char* resmooth_dist_barrier(void*) { return error_text(kNoGloo); }
char* resmooth_dist_reducer_new(void*, at::Tensor* const*, size_t, int64_t, void** out) {
  *out = nullptr;
  return error_text(kNoGloo);
}
char* resmooth_dist_reducer_prepare(void*) { return error_text(kNoGloo); }
char* resmooth_dist_sync_batch_norm(void*, const at::Tensor*, const at::Tensor*, const at::Tensor*, at::Tensor*,
                                    at::Tensor*, double, double, at::Tensor** out) {
  *out = nullptr;
  return error_text(kNoGloo);
}
void resmooth_dist_reducer_free(void*) {}
}  // extern "C"

#endif
