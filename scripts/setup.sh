#!/usr/bin/env bash
# One-time (and idempotent) setup: PyTorch 2.11.0 into .venv for libtorch, then a release build.
# Usage: scripts/setup.sh [--with-reference-tools]
#   --with-reference-tools  also installs Pillow, torchvision, scikit-learn and scikit-image into
#                           .venv (to regenerate the golden test fixtures by hand, and for the
#                           tests that compare with them: the Python package's, the GMM's).
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.11.0
PYTHON=${PYTHON:-python3}

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust (https://rustup.rs) first" >&2; exit 1; }
command -v "$PYTHON" >/dev/null || { echo "setup: $PYTHON not found; install Python 3.10+ first" >&2; exit 1; }
# the JPEG decoder (libjpeg-turbo, bundled with the turbojpeg crate) builds with CMake and NASM
if ! command -v cmake >/dev/null || ! command -v nasm >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing cmake and nasm (to build libjpeg-turbo)"
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q cmake nasm
  else
    echo "setup: cmake and nasm are needed to build libjpeg-turbo; install them first" \
      "(Debian/Ubuntu: sudo apt-get install cmake nasm; macOS: brew install cmake nasm)" >&2
    exit 1
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
have=$(.venv/bin/python -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null || true)
if [ "$have" != "$TORCH_VERSION" ]; then
  echo "setup: installing torch==$TORCH_VERSION into .venv (a few GB, once)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet "torch==$TORCH_VERSION" numpy
fi
if [ "${1:-}" = "--with-reference-tools" ]; then
  .venv/bin/python -m pip install --quiet pillow torchvision scikit-learn "scikit-image==0.26.0" numpy "torch==$TORCH_VERSION"
fi

# CUDA graphs (src/shim/graph.cpp) compile against the CUDA runtime headers; the CUDA wheel
# brings nvidia-cuda-runtime's but not crt/host_config.h, which nvidia-cuda-crt (134 kB) adds.
# NCCL for distributed training (src/shim/dist.cpp) also needs cuda_fp16.h's <nv/target>, from
# nvidia-cuda-cccl (headers only); nccl.h comes with nvidia-nccl-cu13, a dependency of torch.
# A CPU-only wheel needs none of them: the shim then builds without graphs and without NCCL.
cuda=$(.venv/bin/python -c 'import torch; print(torch.version.cuda or "")')
for pkg in nvidia-cuda-crt nvidia-cuda-cccl; do
  if [ -n "$cuda" ] && ! .venv/bin/python -m pip show --quiet "$pkg" >/dev/null 2>&1; then
    echo "setup: installing $pkg==$cuda.* (CUDA headers for CUDA graphs and NCCL)"
    .venv/bin/python -m pip install --quiet "$pkg==$cuda.*"
  fi
done

# Distributed training (torchrun) compiles PyTorch's c10d against gloo's headers, which the wheel
# leaves out; Debian/Ubuntu's libgloo-dev has them. Without them resmooth still builds and trains
# in one process, and says how to get them when a launcher asks for more.
if [ -z "${GLOO_INCLUDE_DIR:-}" ] && [ ! -f /usr/include/gloo/rendezvous/store.h ]; then
  apt_get=""
  if command -v apt-get >/dev/null; then
    if [ "$(id -u)" = 0 ]; then apt_get="apt-get"
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then apt_get="sudo apt-get"
    fi
  fi
  if [ -n "$apt_get" ]; then
    echo "setup: installing libgloo-dev (gloo's headers, for distributed training)"
    DEBIAN_FRONTEND=noninteractive $apt_get install -y -q libgloo-dev >/dev/null 2>&1 \
      || { $apt_get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive $apt_get install -y -q libgloo-dev >/dev/null 2>&1; } \
      || echo "setup: could not install libgloo-dev; distributed training will be unavailable" >&2
  else
    echo "setup: gloo's headers are missing, so this build will train in one process only; for distributed" >&2
    echo "       training (torchrun) install libgloo-dev (sudo apt-get install libgloo-dev) and rerun scripts/setup.sh," >&2
    echo "       or point GLOO_INCLUDE_DIR at a folder holding gloo/ headers" >&2
  fi
fi

torch_dir=$(.venv/bin/python -c 'import torch, os; print(os.path.dirname(torch.__file__))')
ln -sfn "$torch_dir" .venv/libtorch
echo "setup: libtorch at $torch_dir (linked as .venv/libtorch)"

cargo build --release
echo "setup: done; the binary is target/release/resmooth"
