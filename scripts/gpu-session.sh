#!/usr/bin/env bash
# One measuring session on the GPU machine (H200): the suite of scripts/gpu-bench.sh with the
# binary from before and after the speed work, and the engine's ceiling (a PyTorch step loop on
# the same libtorch, scripts/torch_ceiling.py), in an order that keeps the most useful figures
# if time runs out; then the table, written into docs/BENCHMARKS.md between its
# `gpu-table` markers (with --quick: into OUT/BENCHMARKS.md) and into OUT/results.md.
#
# usage: scripts/gpu-session.sh [--out DIR] [--budget SECONDS] [--dataroot DIR] [--quick]
#   --out       where results go (default bench-session); after/, before/, ceiling-*.json, results.md
#   --budget    stages that would start after this many seconds are skipped (default 360, so
#               that the whole session ends within about 8 minutes on the H200)
#   --dataroot  a folder already holding cifar-10-batches-bin/ (default: decode .gpu's archive)
#   --quick     tiny sizes on any machine (a CPU), to try the whole session
#
# It reads .gpu/ (ignored by git; scripts/prepare-gpu.sh fills it on the development machine):
#   .gpu/resmooth-after    the release binary of this tree
#   .gpu/resmooth-before   the release binary it is compared with
#   .gpu/before.txt        one line naming that binary's commit
#   .gpu/cifar10-jpeg.tar.gz and .gpu/cifar_from_jpeg.py
# The GPU machine has python3 with torch, Pillow and numpy, and no Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench-session
budget=360
data=""
quick=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --budget) budget=$2; shift 2 ;;
    --dataroot) data=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
for f in resmooth-after resmooth-before cifar10-jpeg.tar.gz cifar_from_jpeg.py; do
  [ -e ".gpu/$f" ] || { echo "gpu-session: .gpu/$f is missing; run scripts/prepare-gpu.sh first" >&2; exit 2; }
done
python=${PYTHON:-python3}
mkdir -p "$out"
start=$SECONDS
q=(); [ $quick = 1 ] && q=(--quick)
# stage NAME COMMAND...: runs COMMAND unless the budget is spent, noting what ran and for how long
stage() {
  local name=$1; shift
  if (( SECONDS - start > budget )); then
    echo "gpu-session: skipped $name (past the ${budget}s budget)" | tee -a "$out/stages.txt"
    return 0
  fi
  local t=$SECONDS
  if "$@"; then
    echo "gpu-session: $name took $((SECONDS - t))s" | tee -a "$out/stages.txt"
  else
    echo "gpu-session: $name FAILED after $((SECONDS - t))s" | tee -a "$out/stages.txt"
  fi
}

if [ -z "$data" ]; then
  data=$(mktemp -d)/cifar10
  stage "decode CIFAR-10" "$python" .gpu/cifar_from_jpeg.py .gpu/cifar10-jpeg.tar.gz "$data"
fi
suite() { scripts/gpu-bench.sh --bin ".gpu/resmooth-$1" --dataroot "$data" --out "$out/$1" "${q[@]}" --only "$2"; }
stage "after: step" suite after step
stage "before: step" suite before step
stage "ceiling: resnet18" "$python" scripts/torch_ceiling.py --models resnet18 "${q[@]}" --json "$out/ceiling-resnet18.json"
stage "after: pipeline" suite after pipeline
stage "before: pipeline" suite before pipeline
stage "after: epochs" suite after epochs
stage "before: epochs" suite before epochs
if [ $quick = 0 ]; then
  stage "after: wrn" suite after wrn
  stage "ceiling: wresnet28_10" "$python" scripts/torch_ceiling.py --models wresnet28_10 --json "$out/ceiling-wrn.json"
  stage "before: wrn" suite before wrn
fi
# the table goes into docs/BENCHMARKS.md (a --quick session only patches the copy in $out/)
cp docs/BENCHMARKS.md "$out/BENCHMARKS.md"
doc=docs/BENCHMARKS.md; [ $quick = 1 ] && doc=$out/BENCHMARKS.md
"$python" scripts/bench_table.py "$out" --before "$(cat .gpu/before.txt)" --doc "$doc" > "$out/results.md"
[ $quick = 1 ] || cp docs/BENCHMARKS.md "$out/BENCHMARKS.md"
cat "$out/results.md"
echo "gpu-session: $((SECONDS - start))s in all; the table is in $doc"
