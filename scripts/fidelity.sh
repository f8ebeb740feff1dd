#!/usr/bin/env bash
# Side-by-side fidelity check (docs/FIDELITY.md): the reference PyTorch ReSmooth train.py and our
# `resmooth train` (fp32 and bf16) on the very same CIFAR-10 pixels, a short schedule each:
# baseline (--prob 1.0), then ReSmooth (--prob 0.0 --M 28 --N 2 --smooth-aug 0.4 --gmm --loss
# SampleSmooth) from that side's own baseline. Writes three files into OUT (the device tool brings
# back at most 8): fidelity.md (tables: per-epoch test top1 and seconds, the fitted GMMs, the OOD
# fraction of augmented views), fidelity.json (the same data, parsed) and fidelity-records.tar.gz
# (every record and log behind them). They are rewritten after each phase, so a cut run leaves
# what it measured.
#
# usage: scripts/fidelity.sh --bin PATH --archive cifar10-jpeg.tar.gz --reference STAGED --out DIR [options]
#   --bin PATH        the resmooth binary (default target/release/resmooth)
#   --archive FILE    the CIFAR-10 JPEG archive; decoded once (cifar_from_jpeg.py --py) into --data
#   --data DIR        where the decoded data goes or already is (cifar-10-batches-bin and -py);
#                     default ${TMPDIR:-/tmp}/fidelity-cifar10, reused when complete
#   --reference DIR   the staged reference (tools/reference/stage.sh), holding run_reference.py
#   --out DIR         results (default fidelity-results)
#   --epochs E        epochs of every run (default 10)
#   --sides LIST      any of ref,fp32,bf16 (default all three)
#   --budget S        wall-clock budget of the whole script in seconds (default 470); each phase
#                     runs under the time left and a phase with under 15 s left is skipped
#   --tools DIR       where cifar_from_jpeg.py is (default: next to this script or the archive, then
#                     .gpu/, then ../../shared/tools)
#   --probe FILE      fidelity_probe.py (default: next to this script, then scripts/)
#   --work DIR        scratch for logs and weights (default a new temporary folder)
#   --python PY       the Python with torch that runs the reference (default python3)
#   --quick           tiny sizes to try the script on a CPU: ours --train-size 512 --test-size 256,
#                     the reference on a 512/256-image copy; --batch-size 64 --epochs 2 for both
#   --cpu             run the CUDA-only reference on the CPU (the probe's --cpu; implied by --quick
#                     on a machine without CUDA)
# On the GPU machine: bash .gpu/fidelity.sh --bin .gpu/resmooth --archive .gpu/cifar10-jpeg.tar.gz \
#   --reference .gpu/reference --out $OUT [--epochs 10]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
started_at=$(date +%s.%N)
start_s=$(date +%s)

bin=target/release/resmooth
archive=""
data=""
reference=.gpu/reference
out=fidelity-results
epochs=""
sides="ref,fp32,bf16"
budget=470
tools=""
probe=""
work=""
python=python3
quick=0
cpu=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --archive) archive=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --reference) reference=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --sides) sides=$2; shift 2 ;;
    --budget) budget=$2; shift 2 ;;
    --tools) tools=$2; shift 2 ;;
    --probe) probe=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    --cpu) cpu=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "fidelity: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done

abspath() { case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$PWD/$1" ;; esac; }
elapsed() { awk -v a="$started_at" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
say() { printf '[fidelity %6ss] %s\n' "$(elapsed)" "$*"; }
die() { echo "fidelity: $*" >&2; exit 2; }
has_side() { case ",$sides," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

bin=$(abspath "$bin")
case "$python" in */*) python=$(abspath "$python") ;; esac
reference=$(abspath "$reference")
mkdir -p "$out"
out=$(cd "$out" && pwd)
[ -n "$archive" ] && archive=$(abspath "$archive")
[ -n "$data" ] || data=${TMPDIR:-/tmp}/fidelity-cifar10
data=$(abspath "$data")
if [ -z "$work" ]; then work=$(mktemp -d "${TMPDIR:-/tmp}/fidelity-work.XXXXXX"); fi
mkdir -p "$work"
work=$(cd "$work" && pwd)
if [ -z "$probe" ]; then
  for p in "$here/fidelity_probe.py" "$here/../scripts/fidelity_probe.py" "$PWD/scripts/fidelity_probe.py"; do
    [ -f "$p" ] && { probe=$p; break; }
  done
fi
[ -n "$probe" ] && [ -f "$probe" ] || die "fidelity_probe.py not found (pass --probe FILE)"
probe=$(abspath "$probe")
if [ -z "$epochs" ]; then if [ $quick = 1 ]; then epochs=2; else epochs=10; fi; fi
batch=256
if [ $quick = 1 ]; then batch=64; fi
deadline=$(( start_s + budget - 10 ))   # 10 s kept for the report
min_phase=15
timeout_cmd=()
command -v timeout >/dev/null && timeout_cmd=(timeout -k 10)
records=$work/records   # everything measured; OUT gets the report and a tarball of this
rm -rf "$records"
mkdir -p "$records"

# ---- the report, after each phase and at the end whatever happened
report() {  # report [quiet]
  if [ "${1:-}" = quiet ]; then
    "$python" "$probe" report "$records" --out "$out" >/dev/null 2>&1 || true
  else
    "$python" "$probe" report "$records" --out "$out" || echo "fidelity: the report failed" >&2
  fi
  tar -czf "$out/fidelity-records.tar.gz.tmp" -C "$records" . 2>/dev/null \
    && mv "$out/fidelity-records.tar.gz.tmp" "$out/fidelity-records.tar.gz" || true
}
finish() {
  local rc=$?
  trap - EXIT
  say "report"
  report
  say "done: $out/fidelity.md, fidelity.json, fidelity-records.tar.gz"
  exit $rc
}
trap finish EXIT

record() {  # record PHASE STATUS SECONDS COMMAND...
  "$python" - "$records/phases.jsonl" "$@" <<'PY'
import json, sys
path, phase, status, seconds = sys.argv[1:5]
with open(path, "a") as f:
    f.write(json.dumps({"phase": phase, "status": status, "seconds": float(seconds),
                        "command": " ".join(sys.argv[5:])}) + "\n")
PY
}

trim_log() {  # keeps logs small enough to come back: the head and tail of a big one
  local f=$1
  [ -f "$f" ] || return 0
  local size
  size=$(wc -c <"$f")
  if [ "$size" -gt 1000000 ]; then
    { head -c 100000 "$f"; printf '\n[... %s bytes cut by fidelity.sh ...]\n' "$size"; tail -c 400000 "$f"; } >"$f.tmp"
    mv "$f.tmp" "$f"
  fi
}

run_phase() {  # run_phase NAME CWD LOGDIR COMMAND...
  local name=$1 cwd=$2 logdir=$3; shift 3
  local left=$(( deadline - $(date +%s) ))
  mkdir -p "$logdir"
  if [ "$left" -lt "$min_phase" ]; then
    record "$name" "skipped: out of the ${budget}s budget" 0 "$@"
    say "$name: skipped, ${left}s left of the budget"
    return 0
  fi
  say "$name: $* (up to ${left}s)"
  local t0 rc=0 dt status
  t0=$(date +%s.%N)
  if [ ${#timeout_cmd[@]} -gt 0 ]; then
    (cd "$cwd" && "${timeout_cmd[@]}" "$left" "$@") >"$logdir/stdout.log" 2>"$logdir/stderr.log" || rc=$?
  else
    (cd "$cwd" && "$@") >"$logdir/stdout.log" 2>"$logdir/stderr.log" || rc=$?
  fi
  dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  case $rc in
    0) status=ok ;;
    124|137) status="timed out after ${left}s (budget)" ;;
    *) status="failed (rc $rc)" ;;
  esac
  trim_log "$logdir/stdout.log"
  trim_log "$logdir/stderr.log"
  record "$name" "$status" "$dt" "$@"
  say "$name: $status, ${dt}s"
  if [ $rc != 0 ]; then
    tail -c 3000 "$logdir/stderr.log" | tr '\r' '\n' | grep -v '^\s*$' | tail -n 12 | sed 's/^/    /' || true
  fi
  return 0
}

# ---- the binary, the reference, the device
if ! "$bin" --version >/dev/null 2>&1; then
  LD_LIBRARY_PATH=$("$python" -c 'import torch, os; print(os.path.dirname(torch.__file__))')/lib
  export LD_LIBRARY_PATH
fi
if has_side fp32 || has_side bf16; then
  "$bin" --version >/dev/null || die "$bin does not run (see the message above)"
fi
if has_side ref; then
  [ -f "$reference/run_reference.py" ] && [ -f "$reference/train.py" ] \
    || die "no staged reference in $reference (stage it with shared/tools/reference/stage.sh)"
fi
has_cuda=$("$python" -c 'import torch; print(int(torch.cuda.is_available()))' 2>/dev/null || echo 0)
if [ "$has_cuda" != 1 ]; then
  if [ $quick = 1 ]; then
    cpu=1
  elif [ $cpu != 1 ] && has_side ref; then
    die "no CUDA device for the reference; pass --quick (or --cpu) to try the script on a CPU"
  fi
fi
probe_flags=()
[ $cpu = 1 ] && probe_flags=(--cpu)
device=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -n 1 || true)
[ -n "$device" ] || device="CPU ($(nproc) cores), no GPU"
"$python" - "$records/config.json" "$device" "$epochs" "$batch" "$quick" "$reference/train.py" \
  "$("$bin" --version 2>/dev/null || echo unavailable)" "$budget" "$sides" <<'PY'
import hashlib, json, sys, time
path, device, epochs, batch, quick, train_py, version, budget, sides = sys.argv[1:]
try:
    import torch
    tv = torch.__version__
except Exception as e:
    tv = "unavailable (%s)" % e
try:
    md5 = hashlib.md5(open(train_py, "rb").read()).hexdigest()
except OSError:
    md5 = "not staged"
json.dump({"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "device": device, "epochs": int(epochs),
           "batch_size": int(batch), "mode": "quick (CPU smoke test, tiny data)" if quick == "1" else "full CIFAR-10",
           "reference_train_py_md5": md5, "resmooth_version": version, "torch": tv,
           "budget_s": int(budget), "sides": sides}, open(path, "w"), indent=1)
PY
say "device: $device; epochs $epochs, batch $batch; sides $sides; budget ${budget}s; work $work"
if [ $quick = 0 ]; then
  est=$(( epochs * 10 + 15 + epochs * 23 / 2 + 10 + 15 ))
  say "estimate for the reference on the H200 (docs/FIDELITY.md): about ${est}s; ours should take less"
fi

# ---- data: both programs read the very same decoded pixels
t0=$(date +%s.%N)
if [ -f "$data/cifar-10-batches-bin/batches.meta.txt" ] && [ -f "$data/cifar-10-batches-py/batches.meta" ]; then  # written last
  say "data: reusing $data"
  record data "ok (reused)" 0 "reused $data"
else
  [ -n "$archive" ] || die "no decoded data in $data; pass --archive cifar10-jpeg.tar.gz"
  decoder=""
  for d in ${tools:+"$tools"} "$here" "$here/tools" "$(dirname "$archive")" "$PWD/.gpu" "$here/../../shared/tools" "$here/../shared/tools" "$PWD/shared/tools"; do
    [ -f "$d/cifar_from_jpeg.py" ] && { decoder=$d/cifar_from_jpeg.py; break; }
  done
  [ -n "$decoder" ] || die "cifar_from_jpeg.py not found (pass --tools DIR)"
  say "data: decoding $archive into $data"
  "$python" "$decoder" "$archive" "$data" --py
  record data ok "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')" "$python $decoder $archive $data --py"
fi
ref_data=$data
ours_sizes=()
ref_extra=()
if [ $quick = 1 ]; then
  ref_data=$work/tiny
  "$python" "$probe" tiny-cifar "$data" "$ref_data" --train 512 --test 256
  ours_sizes=(--train-size 512 --test-size 256 --batch-size 64)
  ref_extra=(--batch-size 64)
fi
say "data ready"
report quiet

baseline_flags=(--prob 1.0)
resmooth_flags=(--prob 0.0 --M 28 --N 2 --smooth-aug 0.4 --gmm --loss SampleSmooth)

# ---- 1. the reference (its ReSmooth loads its own baseline's model.pth: logs/fid/res18/baseline)
if has_side ref; then
  mkdir -p "$work/ref"
  ref_cmd=("$python" "$probe" run "${probe_flags[@]}")
  ref_common=(--gpu 0 --dataset cifar10 --dataroot "$ref_data" --epochs "$epochs" "${ref_extra[@]}")
  export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
  run_phase ref/baseline "$work/ref" "$records/ref/baseline" \
    "${ref_cmd[@]}" --record "$records/ref/baseline" "$reference/run_reference.py" \
    "${ref_common[@]}" "${baseline_flags[@]}" --tag fid/res18/baseline
  cp "$work/ref/logs/fid/res18/baseline/model.log" "$records/ref/baseline/" 2>/dev/null || true
  report quiet
  if [ -f "$work/ref/logs/fid/res18/baseline/model.pth" ]; then
    run_phase ref/rs_ra "$work/ref" "$records/ref/rs_ra" \
      "${ref_cmd[@]}" --record "$records/ref/rs_ra" "$reference/run_reference.py" \
      "${ref_common[@]}" "${resmooth_flags[@]}" --tag fid/res18/rs_ra
    cp "$work/ref/logs/fid/res18/rs_ra/model.log" "$records/ref/rs_ra/" 2>/dev/null || true
    report quiet
  else
    record ref/rs_ra "skipped: the reference baseline left no model.pth" 0 ""
    say "ref/rs_ra: skipped, no reference baseline"
  fi
fi

# ---- 2./3. ours, fp32 then bf16 (ReSmooth from <logdir>/fid/res18/baseline/best.safetensors)
for prec in fp32 bf16; do
  has_side $prec || continue
  logs=$work/$prec
  ours_common=(train --gpu 0 --dataset cifar10 --dataroot "$data" --epochs "$epochs" "${ours_sizes[@]}"
               --precision $prec --logdir "$logs" --restart)
  for run in baseline rs_ra; do
    if [ $run = baseline ]; then flags=("${baseline_flags[@]}"); else flags=("${resmooth_flags[@]}"); fi
    if [ $run = rs_ra ] && [ ! -f "$logs/fid/res18/baseline/best.safetensors" ] && [ ! -f "$logs/fid/res18/baseline/model.safetensors" ]; then
      record $prec/rs_ra "skipped: the $prec baseline left no weights" 0 ""
      say "$prec/rs_ra: skipped, no $prec baseline"
      continue
    fi
    if [ "${ours_on_cpu:-0}" = 1 ]; then
      record $prec/$run "skipped: resmooth found no CUDA GPU" 0 ""
      continue
    fi
    run_phase $prec/$run "$work" "$records/$prec/$run" "$bin" "${ours_common[@]}" "${flags[@]}" --tag fid/res18/$run
    if [ $quick = 0 ] && grep -q "no CUDA GPU found" "$records/$prec/$run/stderr.log" 2>/dev/null; then
      say "WARNING: resmooth ran on the CPU (its libtorch has no CUDA: see /work/shared/GPU.md); skipping our other runs"
      ours_on_cpu=1
    fi
    for f in metrics.jsonl gmm.json summary.json; do
      cp "$logs/fid/res18/$run/$f" "$records/$prec/$run/" 2>/dev/null || true
    done
    report quiet
  done
done
