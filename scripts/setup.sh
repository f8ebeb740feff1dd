#!/usr/bin/env bash
# One-time (and idempotent) setup: PyTorch 2.11.0 into .venv for libtorch, then a release build.
# Usage: scripts/setup.sh [--with-reference-tools]
#   --with-reference-tools  also installs Pillow, torchvision, scikit-learn and scikit-image into
#                           .venv (only needed to regenerate the golden test fixtures by hand).
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
# A CPU-only wheel needs neither: the shim then builds without graphs.
cuda=$(.venv/bin/python -c 'import torch; print(torch.version.cuda or "")')
if [ -n "$cuda" ] && ! .venv/bin/python -m pip show --quiet nvidia-cuda-crt >/dev/null 2>&1; then
  echo "setup: installing nvidia-cuda-crt==$cuda.* (CUDA headers for CUDA graphs)"
  .venv/bin/python -m pip install --quiet "nvidia-cuda-crt==$cuda.*"
fi

torch_dir=$(.venv/bin/python -c 'import torch, os; print(os.path.dirname(torch.__file__))')
ln -sfn "$torch_dir" .venv/libtorch
echo "setup: libtorch at $torch_dir (linked as .venv/libtorch)"

cargo build --release
echo "setup: done; the binary is target/release/resmooth"
