#!/usr/bin/env bash
# Fills .gpu/ (ignored by git) with what scripts/gpu-session.sh needs on the GPU machine, which
# has no Rust toolchain and no network: the release binaries before and after, the CIFAR-10
# archive and its decoder. Copy the working tree with .gpu/ there (about 40 MB) and run
# `scripts/gpu-session.sh --out OUT` in it.
#
# usage: scripts/prepare-gpu.sh --before PATH --before-name 'COMMIT NOTE'
#                               [--after PATH] [--archive PATH] [--decoder PATH]
#   --before       the release binary to compare with (e.g. one built from main)
#   --before-name  what it is, for the table: its commit and anything to know about it
#   --after        default: the release binary of this tree, built when missing
#                  (${CARGO_TARGET_DIR:-target}/release/resmooth)
#   --archive      default ../shared/datasets/cifar10-jpeg.tar.gz
#   --decoder      default ../shared/tools/cifar_from_jpeg.py
set -euo pipefail
cd "$(dirname "$0")/.."
before=""
before_name=""
after=${CARGO_TARGET_DIR:-target}/release/resmooth
archive=../shared/datasets/cifar10-jpeg.tar.gz
decoder=../shared/tools/cifar_from_jpeg.py
while [ $# -gt 0 ]; do
  case "$1" in
    --before) before=$2; shift 2 ;;
    --before-name) before_name=$2; shift 2 ;;
    --after) after=$2; shift 2 ;;
    --archive) archive=$2; shift 2 ;;
    --decoder) decoder=$2; shift 2 ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
[ -n "$before" ] && [ -n "$before_name" ] || { echo "pass --before PATH and --before-name 'COMMIT NOTE'" >&2; exit 2; }
[ -x "$after" ] || cargo build --release
for f in "$before" "$after" "$archive" "$decoder"; do
  [ -f "$f" ] || { echo "prepare-gpu: $f does not exist" >&2; exit 2; }
done
# without libtorch_cuda in the needed list, libtorch never registers CUDA (docs/BENCHMARKS.md)
for b in "$before" "$after"; do
  readelf -d "$b" | grep -q 'libtorch_cuda.so' || { echo "prepare-gpu: $b does not link libtorch_cuda" >&2; exit 1; }
done
# without the CUDA headers at build time the binary has no CUDA graphs (scripts/setup.sh)
readelf -d "$after" | grep -q 'libc10_cuda.so' ||
  echo "prepare-gpu: warning: $after was built without CUDA graphs; its --cuda-graphs on runs will fail" >&2
mkdir -p .gpu
install -m 755 "$before" .gpu/resmooth-before
install -m 755 "$after" .gpu/resmooth-after
install -m 644 "$archive" .gpu/cifar10-jpeg.tar.gz
install -m 755 "$decoder" .gpu/cifar_from_jpeg.py
echo "$before_name" > .gpu/before.txt
du -sh .gpu
echo "prepare-gpu: ready; on the GPU machine run scripts/gpu-session.sh --out OUT (with .gpu/ carried along)"
