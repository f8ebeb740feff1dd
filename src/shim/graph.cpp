// CUDA graphs of libtorch work (at::cuda::CUDAGraph), for src/graph.rs: what torch.cuda.graph
// does from Python, done from C++ because tch has no binding for it.
//
// Capture runs on a side stream made current for the capturing thread, so every libtorch op the
// Rust code issues in between (tch ops, the autograd engine's backward, the fused SGD step) is
// recorded instead of run; its memory comes from the graph's private pool, whose addresses every
// replay reuses. Replay launches the whole graph on the current stream.
//
// The CUDA parts need the CUDA runtime headers (PyPI's nvidia-cuda-runtime and nvidia-cuda-crt,
// installed by scripts/setup.sh where the torch wheel is a CUDA build). build.rs defines
// RESMOOTH_CUDA_GRAPHS only when it finds them; without it every function reports that this
// build has no CUDA graphs, and training runs eagerly. No C++ exception crosses into Rust: every
// function returns NULL on success or a malloc'd message freed with resmooth_free_error
// (optim.cpp).

#include <cstdlib>
#include <cstring>
#include <exception>

#ifdef RESMOOTH_CUDA_GRAPHS
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>

#include <optional>

namespace {

// A graph and, while it is being captured, the stream that was current before.
struct Graph {
  at::cuda::CUDAGraph graph;
  std::optional<c10::cuda::CUDAStream> previous;
};

char* error_text(const char* what) {
  char* e = strdup(what);
  return e != nullptr ? e : strdup("out of memory");
}

template <typename F>
char* guarded(F body) {
  try {
    body();
    return nullptr;
  } catch (const std::exception& e) {
    return error_text(e.what());
  } catch (...) {
    return error_text("unknown C++ exception");
  }
}

// Makes `previous` the current stream again, ending the capture's side stream.
void restore_stream(Graph* g) {
  if (g->previous) {
    c10::cuda::setCurrentCUDAStream(*g->previous);
    g->previous.reset();
  }
}

}  // namespace

extern "C" {

int resmooth_graphs_built() { return 1; }

// Starts capturing on CUDA device `device`: waits for its queued work (as torch.cuda.graph
// does), makes a side stream current and begins capture into a new private memory pool. On
// success `*out` is the graph, to end with resmooth_graph_end and free with resmooth_graph_free.
char* resmooth_graph_begin(int device, void** out) {
  *out = nullptr;
  Graph* g = nullptr;
  char* error = guarded([&] {
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(device));
    c10::cuda::device_synchronize();
    g = new Graph();
    g->previous = c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(device));
    c10::cuda::setCurrentCUDAStream(c10::cuda::getStreamFromPool(false, static_cast<c10::DeviceIndex>(device)));
    g->graph.capture_begin();
  });
  if (error != nullptr) {
    if (g != nullptr) {
      restore_stream(g);
      delete g;
    }
    return error;
  }
  *out = g;
  return nullptr;
}

// Ends the capture begun by resmooth_graph_begin (instantiating the graph) and makes the
// previous stream current again, also when the capture failed.
char* resmooth_graph_end(void* graph) {
  Graph* g = static_cast<Graph*>(graph);
  char* error = guarded([&] { g->graph.capture_end(); });
  restore_stream(g);
  return error;
}

// Launches the captured work once on the current stream.
char* resmooth_graph_replay(void* graph) {
  return guarded([&] { static_cast<Graph*>(graph)->graph.replay(); });
}

void resmooth_graph_free(void* graph) {
  Graph* g = static_cast<Graph*>(graph);
  restore_stream(g);
  delete g;
}

}  // extern "C"

#else  // no CUDA headers at build time: no graphs, the same functions

namespace {
const char* kNotBuilt =
    "this build of resmooth has no CUDA graphs: the CUDA headers (PyPI nvidia-cuda-runtime and "
    "nvidia-cuda-crt) were not in .venv when it was built; run scripts/setup.sh on a machine "
    "whose torch wheel is a CUDA build and rebuild";
}

extern "C" {

int resmooth_graphs_built() { return 0; }

char* resmooth_graph_begin(int, void** out) {
  *out = nullptr;
  return strdup(kNotBuilt);
}

char* resmooth_graph_end(void*) { return strdup(kNotBuilt); }

char* resmooth_graph_replay(void*) { return strdup(kNotBuilt); }

void resmooth_graph_free(void*) {}

}  // extern "C"

#endif
