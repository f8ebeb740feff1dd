#!/usr/bin/env bash
# Table 1 of ReSmooth (RandAugment + ReSmooth) as the reference README runs it, in resmooth form:
# for each dataset, the baseline, plain RandAugment (for comparison) and ReSmooth, with ResNet-18
# and WideResNet-28-10.
#
# usage: scripts/reproduce-table1.sh [--epochs N] [--datasets "cifar10 cifar100 svhn"] [--models "res18 w10"] [-- EXTRA TRAIN FLAGS]
#   --epochs N   shorter runs (default: the reference's 200)
#   extra flags after -- go to every command (e.g. -- --dataroot data --gpu 0)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${RESMOOTH:-target/release/resmooth}
epochs=200
datasets="cifar10 cifar100 svhn"
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

for ds in $datasets; do
  case $ds in
    cifar10)  ra=(--prob 0.0 --M 28 --N 2); smooth=0.4 ;;
    cifar100) ra=(--prob 0.2 --M 28 --N 2); smooth=0.6 ;;
    svhn)     ra=(--prob 0.0 --M 28 --N 3); smooth=0.3 ;;
    *) echo "unknown dataset $ds" >&2; exit 2 ;;
  esac
  for m in $models; do
    case $m in
      res18) model=(); ;;
      w10)   model=(--model wresnet28_10); ;;
      *) echo "unknown model $m (res18 or w10)" >&2; exit 2 ;;
    esac
    cut=(); [ "$m" = w10 ] && cut=(--cutout 16)
    run --dataset "$ds" --prob 1.0 "${model[@]}" --tag "$ds/$m/baseline"
    run --dataset "$ds" "${ra[@]}" "${model[@]}" "${cut[@]}" --tag "$ds/$m/ra"
    run --dataset "$ds" "${ra[@]}" --smooth-aug "$smooth" --gmm --loss SampleSmooth "${model[@]}" "${cut[@]}" --tag "$ds/$m/rs_ra"
  done
done
