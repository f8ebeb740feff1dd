#!/usr/bin/env bash
# The benchmark suite for a machine with a GPU (see docs/BENCHMARKS.md): train-step throughput,
# full-pipeline throughput with its breakdown, and real epoch / detection / evaluation times on
# CIFAR-10, written as a markdown table.
#
# usage: scripts/gpu-bench.sh [--bin PATH] [--archive cifar10-jpeg.tar.gz | --dataroot DIR] [--out DIR] [--quick]
#   --bin       the resmooth binary (default target/release/resmooth)
#   --archive   the CIFAR-10 JPEG archive, decoded once with tools/cifar_from_jpeg.py (needs Pillow)
#   --dataroot  a folder that already holds cifar-10-batches-bin/
#   --out       where results go (default bench-results)
#   --quick     tiny sizes, to try the script on a CPU
# On a machine without a Rust toolchain, copy the release binary; the script points the loader
# at that machine's PyTorch libtorch when the binary's own rpath does not resolve.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=target/release/resmooth
archive=""
dataroot=""
out=bench-results
quick=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --archive) archive=$2; shift 2 ;;
    --dataroot) dataroot=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
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

if [ $quick = 1 ]; then
  steps=(--steps 2 --warmup 1 --batch-size 32); sizes=(--train-size 256 --test-size 128 --batch-size 32); epochs=1
else
  steps=(--steps 50 --warmup 10); sizes=(); epochs=2
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$out/gpu.txt" 2>/dev/null || echo "no GPU" > "$out/gpu.txt"

# 1. the training step alone, and the full pipeline (baseline and ReSmooth settings)
models="resnet18 wresnet28_10"; [ $quick = 1 ] && models=resnet18
for model in $models; do
  for prec in fp32 bf16; do
    for fmt in nchw channels_last; do
      "$bin" bench train --synthetic --model "$model" --precision $prec --memory-format $fmt --prob 1.0 "${steps[@]}" \
        --json "$out/step-$model-$prec-$fmt.json" | tee -a "$out/log.txt"
    done
  done
done
for prec in fp32 bf16; do
  "$bin" bench train --dataset cifar10 --dataroot "$dataroot" --model resnet18 --precision $prec --prob 0.0 --aug ra --N 2 --M 28 --gmm \
    "${steps[@]}" --json "$out/pipeline-rs-$prec.json" | tee -a "$out/log.txt"
done

# 2. real epochs: baseline, then ReSmooth from it (detection pass included), then WRN-28-10
logs="$out/logs"
run() { "$bin" train --dataset cifar10 --dataroot "$dataroot" --logdir "$logs" --epochs $epochs "${sizes[@]}" --restart "$@" 2>&1 | tee -a "$out/log.txt"; }
run --prob 1.0 --tag bench/res18/baseline
run --prob 0.0 --M 28 --N 2 --smooth-aug 0.4 --gmm --loss SampleSmooth --tag bench/res18/rs_ra
[ $quick = 1 ] || run --prob 1.0 --model wresnet28_10 --tag bench/w10/baseline

# 3. the table
python3 - "$out" <<'PY'
import json, glob, os, re, sys
out = sys.argv[1]
rows = ["| measurement | value |", "| --- | --- |"]
for f in sorted(glob.glob(os.path.join(out, "step-*.json"))):
    r = json.load(open(f))
    rows.append(f"| {r['model']} train step, {r['precision']} {r['memory_format']} | {r['step_images_per_sec']:.0f} img/s |")
for f in sorted(glob.glob(os.path.join(out, "pipeline-*.json"))):
    r = json.load(open(f))
    rows.append(f"| ReSmooth pipeline (RA 2/28 + scorer), {r['precision']} | {r['pipeline_images_per_sec']:.0f} img/s "
                f"(per step: wait {r['wait_ms']:.1f} ms, transfer {r['transfer_ms']:.1f} ms, scorer {r['scorer_ms']:.1f} ms, step {r['step_ms']:.1f} ms) |")
for tag in ["bench/res18/baseline", "bench/res18/rs_ra", "bench/w10/baseline"]:
    path = os.path.join(out, "logs", tag, "metrics.jsonl")
    if not os.path.exists(path):
        continue
    ms = [json.loads(l) for l in open(path)]
    best = min(ms, key=lambda m: m["train_seconds"])
    rows.append(f"| {tag} epoch (train only, best of {len(ms)}) | {best['train_seconds']:.2f} s, {best['images_per_sec']:.0f} img/s, data wait {best['data_wait_seconds']:.2f} s |")
    rows.append(f"| {tag} test evaluation | {best['eval_seconds']:.2f} s |")
log = open(os.path.join(out, "log.txt")).read()
m = re.search(r"detection pass \(([0-9.]+)s\)", log)
if m:
    rows.append(f"| GMM detection pass | {m.group(1)} s |")
open(os.path.join(out, "results.md"), "w").write("\n".join(rows) + "\n")
print("\n".join(rows))
PY
