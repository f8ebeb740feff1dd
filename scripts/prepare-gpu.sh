#!/usr/bin/env bash
# Makes the folder the GPU proof carries to the H200 (scripts/gpu_proof.py, docs/FIDELITY.md), on
# the development machine: .gpu/ (ignored by git) with the release binary, the CIFAR-10 archive,
# its decoder, the staged reference code and a manifest; checks what will travel and prints the
# device call. The H200 has no Rust toolchain and no network: nothing is built there.
#
# usage: scripts/prepare-gpu.sh [--archive PATH] [--decoder PATH] [--stage PATH]
#                               [--resmooth-git DIR] [--warmup-git DIR] [--bin PATH]
#   --archive       default ../shared/datasets/cifar10-jpeg.tar.gz (next to the checkout, else /work/shared)
#   --decoder       default ../shared/tools/cifar_from_jpeg.py
#   --stage         default ../shared/tools/reference/stage.sh
#   --resmooth-git  a git directory of Chenyang4/ReSmooth (default /work/.mirror/Chenyang4+ReSmooth/repo,
#                   where the `fetch` tool puts github:Chenyang4/ReSmooth)
#   --warmup-git    one of ildoonet/pytorch-gradual-warmup-lr (default
#                   /work/.mirror/ildoonet+pytorch-gradual-warmup-lr/repo)
#   --bin           a release binary to take instead of building this tree's
#                   (default: `cargo build --release`, then ${CARGO_TARGET_DIR:-target}/release/resmooth)
# Export LIBTORCH as for any build (the one target/ was built with), or cargo rebuilds torch-sys.
set -euo pipefail
cd "$(dirname "$0")/.."
shared=../shared
[ -d "$shared" ] || shared=/work/shared
archive=$shared/datasets/cifar10-jpeg.tar.gz
decoder=$shared/tools/cifar_from_jpeg.py
stage=$shared/tools/reference/stage.sh
resmooth_git=/work/.mirror/Chenyang4+ReSmooth/repo
warmup_git=/work/.mirror/ildoonet+pytorch-gradual-warmup-lr/repo
bin=""
while [ $# -gt 0 ]; do
  case "$1" in
    --archive) archive=$2; shift 2 ;;
    --decoder) decoder=$2; shift 2 ;;
    --stage) stage=$2; shift 2 ;;
    --resmooth-git) resmooth_git=$2; shift 2 ;;
    --warmup-git) warmup_git=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "prepare-gpu: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
die() { echo "prepare-gpu: $*" >&2; exit 1; }

for f in "$archive" "$decoder" "$stage"; do
  [ -f "$f" ] || die "$f does not exist (pass --archive, --decoder or --stage)"
done
for g in "$resmooth_git" "$warmup_git"; do
  git -C "$g" rev-parse --git-dir >/dev/null 2>&1 ||
    die "$g is not a git directory: bring it with the fetch tool (github:Chenyang4/ReSmooth, github:ildoonet/pytorch-gradual-warmup-lr) or pass --resmooth-git/--warmup-git"
done
git check-ignore -q .gpu/resmooth || die ".gpu/ is not ignored by git here; add /.gpu to .gitignore or .git/info/exclude"

if [ -z "$bin" ]; then
  cargo build --release
  bin=${CARGO_TARGET_DIR:-target}/release/resmooth
fi
[ -x "$bin" ] || die "$bin is not an executable"
# without libtorch_cuda in the needed list, libtorch never registers CUDA (/work/shared/GPU.md)
readelf -d "$bin" | grep -q 'NEEDED.*libtorch_cuda\.so' ||
  die "$bin does not list libtorch_cuda.so as NEEDED: it would find no GPU there (see build.rs and /work/shared/GPU.md)"
# without the CUDA headers at build time the binary has no CUDA graphs (scripts/setup.sh installs them)
readelf -d "$bin" | grep -q 'NEEDED.*libc10_cuda\.so' ||
  echo "prepare-gpu: warning: $bin was built without CUDA graphs; the proof's --cuda-graphs on phases will FAIL" >&2

rm -rf .gpu/reference
mkdir -p .gpu
install -m 755 "$bin" .gpu/resmooth
install -m 644 "$archive" .gpu/cifar10-jpeg.tar.gz
install -m 644 "$decoder" .gpu/cifar_from_jpeg.py
bash "$stage" "$resmooth_git" "$warmup_git" .gpu/reference
commit=$(git rev-parse --short=12 HEAD)
git diff --quiet HEAD -- src build.rs Cargo.toml Cargo.lock || commit="$commit with uncommitted changes to the Rust sources"
cat > .gpu/manifest.json <<EOF
{"built_from": "commit $commit", "prepared": "$(date -u '+%Y-%m-%d %H:%M:%S UTC')",
 "reference": "Chenyang4/ReSmooth $(git -C "$resmooth_git" rev-parse --short=12 HEAD), ildoonet/pytorch-gradual-warmup-lr $(git -C "$warmup_git" rev-parse --short=12 HEAD)"}
EOF

# what the device tool sends: the tracked and untracked-not-ignored files, and .gpu/ (carried)
tree=$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -n 1 | cut -f1)
gpu=$(du -sb .gpu | cut -f1)
total=$((tree + gpu))
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "prepare-gpu: .gpu/ $(mib "$gpu") + the working tree $(mib "$tree") = $(mib "$total") to travel (limit 64 MiB)"
[ "$total" -le $((64 * 1048576)) ] || die "over the device tool's 64 MiB: leave untracked files out of the tree"
for f in scripts/gpu_proof.py scripts/gpu_proof_report.py scripts/fidelity_probe.py scripts/torch_ceiling.py scripts/check_weights.py; do
  { [ -f "$f" ] && ! git check-ignore -q "$f"; } || die "$f would not travel (missing, or ignored by git)"
done
cat <<EOF
prepare-gpu: ready ($(.gpu/resmooth --version 2>/dev/null || echo resmooth), $commit). The device call:
  run(carry: [".gpu"], timeout_s: 600,
      command: "PYTHONUNBUFFERED=1 python3 scripts/gpu_proof.py --out \$OUT")
Then, here: python3 scripts/gpu_proof_report.py FILES_AT/proof-records.tar.gz --out /tmp/proof --patch-docs
EOF
