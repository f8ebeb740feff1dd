#!/usr/bin/env bash
# The benchmark suite of one resmooth binary (see docs/BENCHMARKS.md): the training step alone
# and the whole loop with the share of time in each phase (`resmooth bench train`), and real
# epochs / detection pass / evaluation on CIFAR-10 from the program's own metrics.
#
# usage: scripts/gpu-bench.sh [--bin PATH] (--archive cifar10-jpeg.tar.gz | --dataroot DIR)
#                             [--out DIR] [--only STAGES] [--epochs N] [--quick]
#   --bin       the resmooth binary (default target/release/resmooth)
#   --archive   the CIFAR-10 JPEG archive, decoded once with cifar_from_jpeg.py (needs Pillow)
#   --dataroot  a folder that already holds cifar-10-batches-bin/
#   --out       where results go (default bench-results): *.json, logs/, log.txt
#   --only      comma-separated stages (default all): step (ResNet-18 step and loop), pipeline
#               (the ReSmooth loop on CIFAR-10), epochs (ResNet-18 baseline and ReSmooth runs),
#               wrn (WRN-28-10 step, loop and epoch); a binary with --cuda-graphs also runs
#               the step, the ReSmooth loop and the ResNet-18 runs with --cuda-graphs on
#   --epochs    epochs of each real run (default 2; the best epoch is quoted)
#   --quick     tiny sizes, to try the script on a CPU
# Binaries older than the fused optimizer (no `bench train --optimizer`) run the same
# configurations without the flags they lack. Every run passes --precision and --memory-format,
# since older binaries defaulted to bf16 on a GPU. On a machine without a Rust toolchain, copy
# the release binary; the loader is pointed at that machine's PyTorch when the binary's own
# rpath does not resolve.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=target/release/resmooth
archive=""
dataroot=""
out=bench-results
only=step,pipeline,epochs,wrn
epochs=2
quick=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --archive) archive=$2; shift 2 ;;
    --dataroot) dataroot=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
if ! "$bin" --version >/dev/null 2>&1; then
  LD_LIBRARY_PATH=$(python3 -c 'import torch, os; print(os.path.dirname(torch.__file__))')/lib
  export LD_LIBRARY_PATH
fi
"$bin" --version
if [ -z "$dataroot" ]; then
  [ -n "$archive" ] || { echo "pass --archive or --dataroot" >&2; exit 2; }
  dataroot=$(mktemp -d)/cifar10
  tools=${CIFAR_FROM_JPEG:-$here/cifar_from_jpeg.py}
  [ -f "$tools" ] || tools=$here/../../shared/tools/cifar_from_jpeg.py
  python3 "$tools" "$archive" "$dataroot"
fi
stage() { case ",$only," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
log() { tee -a "$out/log.txt"; }

if [ $quick = 1 ]; then
  steps=(--steps 1 --warmup 0 --batch-size 4); sizes=(--train-size 64 --test-size 20 --batch-size 16)
  eval_images=(--eval-images 8); epochs=1
else
  steps=(--steps 30 --warmup 10); sizes=(); eval_images=()
fi
new=0
"$bin" bench train --help | grep -q -- '--optimizer' && new=1
graphs=0
"$bin" bench train --help | grep -q -- '--cuda-graphs' && graphs=1
# on the GPU a graph or an error; --quick on a CPU tries the same commands, stepping eagerly
cuda_graphs=(--cuda-graphs on); [ $quick = 1 ] && cuda_graphs=(--cuda-graphs auto)
# a graph configuration that fails is logged and the suite goes on with the next one
try() { "$@" || echo "gpu-bench: FAILED: ${*:1:3}" | log; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$out/gpu.txt" 2>/dev/null || echo "no GPU" > "$out/gpu.txt"

# bench train NAME FLAGS...: one configuration, its JSON in $out/NAME.json
bench() {
  local name=$1; shift
  local extra=()
  [ $new = 1 ] && extra=("${eval_images[@]}")
  "$bin" bench train "$@" "${steps[@]}" "${extra[@]}" --json "$out/$name.json" 2>&1 | log
}
# the step alone and the whole loop on synthetic images, in fp32 and bf16 + channels_last
step_benches() {
  local model=$1
  bench "step-$model-fp32-nchw" --synthetic --model "$model" --precision fp32 --memory-format nchw --prob 1.0
  bench "step-$model-bf16-channels_last" --synthetic --model "$model" --precision bf16 --memory-format channels_last --prob 1.0
  if [ $graphs = 1 ]; then
    # the step as replays of a CUDA graph (--cuda-graphs on: a graph or an error saying why not)
    try bench "step-$model-fp32-nchw-graph" --synthetic --model "$model" --precision fp32 --memory-format nchw \
      --prob 1.0 "${cuda_graphs[@]}"
    try bench "step-$model-bf16-channels_last-graph" --synthetic --model "$model" --precision bf16 \
      --memory-format channels_last --prob 1.0 "${cuda_graphs[@]}"
  fi
  if [ $new = 1 ] && [ "$model" = resnet18 ]; then
    # the same binary with the per-parameter optimizer: what the fused step alone gains
    bench "step-$model-fp32-nchw-per-parameter" --synthetic --model "$model" --precision fp32 --memory-format nchw \
      --prob 1.0 --optimizer per-parameter
  fi
}
stage step && step_benches resnet18
if stage pipeline; then
  # the loop evaluates the test split (all 10,000 images; a few with --quick)
  bench "pipeline-rs-fp32-nchw" --dataset cifar10 --dataroot "$dataroot" --model resnet18 --precision fp32 \
    --memory-format nchw --prob 0.0 --aug ra --N 2 --M 28 --gmm
  if [ $graphs = 1 ]; then
    try bench "pipeline-rs-fp32-nchw-graph" --dataset cifar10 --dataroot "$dataroot" --model resnet18 \
      --precision fp32 --memory-format nchw --prob 0.0 --aug ra --N 2 --M 28 --gmm "${cuda_graphs[@]}"
  fi
fi

# real runs: baseline, then ReSmooth from it (detection pass included), then WRN-28-10
logs="$out/logs"
run() {
  "$bin" train --dataset cifar10 --dataroot "$dataroot" --logdir "$logs" --epochs "$epochs" "${sizes[@]}" \
    --precision fp32 --memory-format nchw --restart "$@" 2>&1 | log
}
if stage epochs; then
  run --prob 1.0 --tag bench/res18/baseline
  run --prob 0.0 --M 28 --N 2 --smooth-aug 0.4 --gmm --loss SampleSmooth --tag bench/res18/rs_ra
  if [ $graphs = 1 ]; then
    # the same two runs with the step as a CUDA graph: their metrics against the eager runs'
    # (same seed and batches) are the graph's end-to-end check (bench_table.py)
    try run --prob 1.0 "${cuda_graphs[@]}" --tag bench/res18/baseline-graph
    try run --prob 0.0 --M 28 --N 2 --smooth-aug 0.4 --gmm --loss SampleSmooth "${cuda_graphs[@]}" \
      --tag bench/res18/rs_ra-graph
  fi
fi
if stage wrn; then
  step_benches wresnet28_10
  [ $quick = 1 ] || run --prob 1.0 --model wresnet28_10 --tag bench/w10/baseline
fi
echo "gpu-bench: results in $out"
