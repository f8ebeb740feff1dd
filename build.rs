//! Links the binary against the project's libtorch (the PyTorch wheel in `.venv`, see
//! scripts/setup.sh) with an rpath, so `target/*/resmooth` runs with no environment variables,
//! and keeps libtorch_cuda in the needed list so CUDA registers itself where a GPU exists.
//! Compiles the C++ shim of TorchScript models (src/model/torchscript.cpp) against its headers,
//! and the optimizer shim (src/shim/optim.cpp: the fused SGD step and setting gradients to none,
//! which tch's bindings leave out) against the ATen headers alone, which keeps it quick to build;
//! neither needs a CUDA toolkit, and cc rebuilds them only when their files change.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    println!("cargo:rerun-if-changed=src/model/torchscript.cpp");
    println!("cargo:rerun-if-changed=src/shim/optim.cpp");
    let Ok(libtorch) = std::env::var("LIBTORCH") else {
        panic!("LIBTORCH is not set: run scripts/setup.sh first (.cargo/config.toml points it at .venv/libtorch)");
    };
    let include = PathBuf::from(&libtorch).join("include");
    cc::Build::new()
        .cpp(true)
        .file("src/model/torchscript.cpp")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .define("_GLIBCXX_USE_CXX11_ABI", std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into()).as_str())
        .define("GLOG_USE_GLOG_EXPORT", None)
        .warnings(false)
        .compile("resmooth_torchscript");
    if !include.join("ATen/ops/_fused_sgd.h").exists() {
        panic!("{} has no ATen/ops/_fused_sgd.h: the optimizer shim needs the headers of the PyTorch 2.11 wheel; run scripts/setup.sh", include.display());
    }
    cc::Build::new()
        .cpp(true)
        .file("src/shim/optim.cpp")
        .include(&include)
        .flag("-std=c++17")
        .define("_GLIBCXX_USE_CXX11_ABI", std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into()).as_str())
        .define("GLOG_USE_GLOG_EXPORT", None)
        .warnings(false)
        .opt_level(2)
        .compile("resmooth_shim");
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
