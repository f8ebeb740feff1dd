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
//!
//! Distributed training (dist.cpp, PyTorch's c10d) needs gloo's headers, which the wheel leaves
//! out: Debian's libgloo-dev (/usr/include/gloo; `GLOO_INCLUDE_DIR` names another folder).
//! Without them dist.cpp builds without process groups and src/dist.rs says how to get them.
//! NCCL is added where the NCCL and CUDA headers of the PyPI packages beside the wheel are all
//! there (nvidia-nccl-cu13, nvidia-cuda-runtime, nvidia-cuda-crt, nvidia-cuda-cccl). dist.cpp
//! takes ~25 s to compile, so its object is kept in OUT_DIR and reused while its source, its
//! flags and the headers' versions are unchanged, whichever other shim file changed.
use std::path::{Path, PathBuf};

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

/// The c10d translation unit, compiled on its own (see [`dist_object`]).
const DIST: &str = "src/shim/dist.cpp";

/// Compiles src/shim/*.cpp into one static library linked into the crate.
fn build_shim(include: &Path) {
    if !include.join("ATen/ops/_fused_sgd.h").exists() {
        panic!(
            "{} has no ATen/ops/_fused_sgd.h: the C++ shim needs the headers of the PyTorch 2.11 wheel; run scripts/setup.sh",
            include.display()
        );
    }
    for file in SHIM {
        println!("cargo:rerun-if-changed={file}");
    }
    let cuda = cuda_include(include);
    let graphs = cuda.is_some() && !env_flag("RESMOOTH_NO_CUDA_GRAPHS");
    let dist = dist_headers(include, cuda.as_deref());
    let mut build = base_build(include);
    if graphs {
        build.include(cuda.as_ref().expect("graphs need the CUDA headers")).define("RESMOOTH_CUDA_GRAPHS", None);
    }
    build.files(SHIM).object(dist_object(include, &dist)).compile("resmooth_shim");
    if dist.nccl.is_some() {
        // after the shim in the link order: dist.cpp calls ProcessGroupNCCL
        println!("cargo:rustc-link-lib=dylib=torch_cuda");
    }
    if graphs || dist.nccl.is_some() {
        // after the shim in the link order: graph.cpp and dist.cpp call c10's CUDA functions
        println!("cargo:rustc-link-lib=dylib=c10_cuda");
    }
}

/// The compiler settings every shim file shares: C++17 against the wheel's headers and ABI.
fn base_build(include: &Path) -> cc::Build {
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .include(include)
        .include(include.join("torch/csrc/api/include"))
        .std("c++17")
        .define("_GLIBCXX_USE_CXX11_ABI", abi.as_str())
        .define("GLOG_USE_GLOG_EXPORT", None)
        // the PyTorch headers are not warning-clean under -Wall -Wextra
        .warnings(false)
        .opt_level(2);
    build
}

/// What dist.cpp is compiled with: gloo's include folder (none: no process groups) and, with
/// gloo, the NCCL and CUDA include folders (none: no NCCL).
struct DistHeaders {
    gloo: Option<PathBuf>,
    nccl: Option<[PathBuf; 2]>,
}

/// Finds gloo's headers (`GLOO_INCLUDE_DIR`, else /usr/include, /usr/local/include) and, where
/// the CUDA runtime headers are complete (`cuda`) and `nv/target` (nvidia-cuda-cccl) and the
/// wheel's `nccl.h` (nvidia-nccl-cu13) are there too, NCCL's. `RESMOOTH_NO_DIST=1` builds
/// without process groups, `RESMOOTH_NO_NCCL=1` without NCCL.
fn dist_headers(torch_include: &Path, cuda: Option<&Path>) -> DistHeaders {
    println!("cargo:rerun-if-env-changed=GLOO_INCLUDE_DIR");
    println!("cargo:rerun-if-env-changed=RESMOOTH_NO_DIST");
    println!("cargo:rerun-if-env-changed=RESMOOTH_NO_NCCL");
    let candidates: Vec<PathBuf> = match std::env::var_os("GLOO_INCLUDE_DIR") {
        Some(dir) => vec![PathBuf::from(dir)],
        None => vec!["/usr/include".into(), "/usr/local/include".into()],
    };
    for dir in &candidates {
        // a later install of libgloo-dev makes the next build compile the distributed backend
        watch(&dir.join("gloo"));
    }
    let gloo = candidates.into_iter().find(|dir| dir.join("gloo/rendezvous/store.h").is_file());
    let gloo = gloo.filter(|_| !env_flag("RESMOOTH_NO_DIST"));
    let nccl_dir =
        torch_include.canonicalize().ok().and_then(|inc| Some(inc.parent()?.parent()?.join("nvidia/nccl/include")));
    if let Some(dir) = &nccl_dir {
        watch(&dir.join("nccl.h"));
    }
    let nccl = match (&gloo, cuda, nccl_dir) {
        (Some(_), Some(cuda), Some(nccl)) if !env_flag("RESMOOTH_NO_NCCL") => {
            watch(&cuda.join("nv/target"));
            let complete = cuda.join("nv/target").is_file() && nccl.join("nccl.h").is_file();
            complete.then(|| [nccl, cuda.to_path_buf()])
        }
        _ => None,
    };
    DistHeaders { gloo, nccl }
}

/// dist.cpp's object file, compiled only when its source, flags or headers' versions changed
/// since the last build (a key of all of them is kept beside the object in OUT_DIR).
fn dist_object(include: &Path, headers: &DistHeaders) -> PathBuf {
    println!("cargo:rerun-if-changed={DIST}");
    let mut build = base_build(include);
    build.file(DIST);
    if let Some(gloo) = &headers.gloo {
        if !["/usr/include", "/usr/local/include"].iter().any(|system| gloo == Path::new(system)) {
            build.include(gloo);
        }
        build.define("USE_C10D_GLOO", None);
    }
    if let Some(nccl) = &headers.nccl {
        build.includes(nccl).define("USE_C10D_NCCL", None);
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let cached = out.join("resmooth_dist.o");
    let key_file = out.join("resmooth_dist.key");
    let key = dist_key(&build, include, headers);
    if cached.is_file() && std::fs::read_to_string(&key_file).is_ok_and(|k| k == key) {
        return cached;
    }
    let objects = build.compile_intermediates();
    std::fs::copy(&objects[0], &cached).expect("copy dist.cpp's object into OUT_DIR");
    std::fs::write(&key_file, key).expect("write dist.cpp's build key into OUT_DIR");
    cached
}

/// What dist.cpp's object depends on: its source, the compiler command, and the modification
/// times of the c10d and gloo headers it includes (a new wheel or libgloo-dev changes them).
fn dist_key(build: &cc::Build, include: &Path, headers: &DistHeaders) -> String {
    let source = std::fs::read_to_string(DIST).expect("read src/shim/dist.cpp");
    let compiler = build.get_compiler();
    let mut stamps = vec![include.join("torch/csrc/distributed/c10d/reducer.hpp")];
    stamps.extend(headers.gloo.iter().map(|g| g.join("gloo/config.h")));
    stamps.extend(headers.nccl.iter().map(|[nccl, _]| nccl.join("nccl.h")));
    let times: Vec<String> = stamps
        .iter()
        .map(|p| format!("{} {:?}", p.display(), std::fs::metadata(p).and_then(|m| m.modified()).ok()))
        .collect();
    format!("{:?}\n{:?}\n{}\n{source}", compiler.path(), compiler.args(), times.join("\n"))
}

/// Reruns the build script when `path` changes, or, while it does not exist, when its nearest
/// existing folder does (cargo would rerun it on every build for a missing path).
fn watch(path: &Path) {
    if let Some(existing) = path.ancestors().find(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", existing.display());
    }
}

/// Whether the environment variable `name` is set to something other than 0.
fn env_flag(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| v != "0")
}

/// The CUDA runtime headers of the PyPI packages beside the torch wheel (`site-packages/nvidia/
/// cu*/include`), when they are complete enough for ATen's CUDA headers (`crt/host_config.h`
/// comes from nvidia-cuda-crt). `RESMOOTH_NO_CUDA_GRAPHS=1` builds without CUDA graphs.
fn cuda_include(torch_include: &Path) -> Option<PathBuf> {
    println!("cargo:rerun-if-env-changed=RESMOOTH_NO_CUDA_GRAPHS");
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
