//! Links the binary against the project's libtorch (the PyTorch wheel in `.venv`, see
//! scripts/setup.sh) with an rpath, so `target/*/resmooth` runs with no environment variables,
//! and keeps libtorch_cuda in the needed list so CUDA registers itself where a GPU exists.
//!
//! Also compiles the C++ shim (src/shim/*.cpp) against that wheel's headers: what tch's bindings
//! leave out, the fused SGD step and setting gradients to none (optim.cpp), TorchScript modules
//! with their buffers (torchscript.cpp), deterministic algorithms (context.cpp) and CUDA graphs
//! (graph.cpp). It needs a C++ compiler and the wheel's headers, no CUDA toolkit; cc rebuilds it
//! only when a file of src/shim/ changes. CUDA graphs also need the CUDA runtime headers of the
//! PyPI packages next to the wheel (nvidia-cuda-runtime, nvidia-cuda-crt; scripts/setup.sh
//! installs them for a CUDA wheel): where they are missing, graph.cpp builds without graphs and
//! training runs eagerly.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let Ok(libtorch) = std::env::var("LIBTORCH") else {
        panic!("LIBTORCH is not set: run scripts/setup.sh first (.cargo/config.toml points it at .venv/libtorch)");
    };
    build_shim(&PathBuf::from(&libtorch).join("include"));
    let lib = PathBuf::from(&libtorch).join("lib");
    let lib = lib.canonicalize().unwrap_or(lib);
    println!("cargo:rerun-if-changed={}", lib.display());
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-ltorch");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}

/// The shim's sources.
const SHIM: &[&str] = &["src/shim/context.cpp", "src/shim/graph.cpp", "src/shim/optim.cpp", "src/shim/torchscript.cpp"];

/// Compiles src/shim/*.cpp into one static library linked into the crate.
fn build_shim(include: &std::path::Path) {
    if !include.join("ATen/ops/_fused_sgd.h").exists() {
        panic!(
            "{} has no ATen/ops/_fused_sgd.h: the C++ shim needs the headers of the PyTorch 2.11 wheel; run scripts/setup.sh",
            include.display()
        );
    }
    for file in SHIM {
        println!("cargo:rerun-if-changed={file}");
    }
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    let mut build = cc::Build::new();
    let cuda = cuda_include(include);
    if let Some(cuda) = &cuda {
        build.include(cuda).define("RESMOOTH_CUDA_GRAPHS", None);
    }
    build
        .cpp(true)
        .files(SHIM)
        .include(include)
        .include(include.join("torch/csrc/api/include"))
        .std("c++17")
        .define("_GLIBCXX_USE_CXX11_ABI", abi.as_str())
        .define("GLOG_USE_GLOG_EXPORT", None)
        // the PyTorch headers are not warning-clean under -Wall -Wextra
        .warnings(false)
        .opt_level(2)
        .compile("resmooth_shim");
    if cuda.is_some() {
        // after the shim in the link order: graph.cpp calls c10's CUDA streams
        println!("cargo:rustc-link-lib=dylib=c10_cuda");
    }
}

/// The CUDA runtime headers of the PyPI packages beside the torch wheel (`site-packages/nvidia/
/// cu*/include`), when they are complete enough for ATen's CUDA headers (`crt/host_config.h`
/// comes from nvidia-cuda-crt). `RESMOOTH_NO_CUDA_GRAPHS=1` builds without them.
fn cuda_include(torch_include: &std::path::Path) -> Option<PathBuf> {
    println!("cargo:rerun-if-env-changed=RESMOOTH_NO_CUDA_GRAPHS");
    if std::env::var_os("RESMOOTH_NO_CUDA_GRAPHS").is_some_and(|v| v != "0") {
        return None;
    }
    let site = torch_include.canonicalize().ok()?.parent()?.parent()?.join("nvidia");
    println!("cargo:rerun-if-changed={}", site.display());
    let mut found: Vec<PathBuf> = std::fs::read_dir(&site)
        .ok()?
        .flatten()
        .map(|e| e.path().join("include"))
        .filter(|inc| inc.join("cuda_runtime_api.h").is_file() && inc.join("crt/host_config.h").is_file())
        .collect();
    found.sort();
    let include = found.pop()?;
    println!("cargo:rerun-if-changed={}", include.join("crt/host_config.h").display());
    Some(include)
}
