#!/usr/bin/env bash
# Table 2 of ReSmooth (negative augmentation: jigsaw and rotation, label smoothing, no GMM) as the
# reference README runs it, in resmooth form. Baselines come from reproduce-table1.sh.
#
# usage: scripts/reproduce-table2.sh [--epochs N] [--datasets "cifar10 cifar100"] [--models "res18 w10"] [-- EXTRA TRAIN FLAGS]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${RESMOOTH:-target/release/resmooth}
epochs=200
datasets="cifar10 cifar100"
models="res18 w10"
while [ $# -gt 0 ]; do
  case "$1" in
    --epochs) epochs=$2; shift 2 ;;
    --datasets) datasets=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
extra=("$@")

run() { echo "+ $bin train $*" >&2; "$bin" train "$@" --epochs "$epochs" "${extra[@]}"; }

# smooth-aug for jigsaw / rotate, per dataset and model (SPEC.md, Table 2)
smooth() {
  case "$1/$2/$3" in
    cifar10/res18/jigsaw) echo 0.2 ;;  cifar10/res18/rotate) echo 0.5 ;;
    cifar100/res18/jigsaw) echo 0.4 ;; cifar100/res18/rotate) echo 0.5 ;;
    cifar10/w10/jigsaw) echo 0.3 ;;    cifar10/w10/rotate) echo 0.5 ;;
    cifar100/w10/jigsaw) echo 0.4 ;;   cifar100/w10/rotate) echo 0.5 ;;
    *) echo "no Table 2 setting for $1 $2 $3" >&2; exit 2 ;;
  esac
}

for ds in $datasets; do
  for m in $models; do
    model=(); cut=()
    [ "$m" = w10 ] && { model=(--model wresnet28_10); cut=(--cutout 16); }
    for aug in jigsaw rotate; do
      s=$(smooth "$ds" "$m" "$aug")
      run --dataset "$ds" --aug "$aug" --prob 0.6 --smooth-aug "$s" "${model[@]}" "${cut[@]}" --tag "$ds/$m/$aug"
    done
  done
done
