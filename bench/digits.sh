#!/usr/bin/env bash
# A short from-scratch run on real small data: scikit-learn's handwritten
# digits (1500 train / 297 test, 8x8 upsampled to 32x32) in CIFAR-10 binary
# layout, trained with the `cifar` preset as a user would (t2t_vit_7_cifar at
# depth 4, 15 epochs, no flips: digits are not mirror-symmetric). Then
# `t2t validate` of the run directory on the same test images as PNG files.
#
#   bash bench/digits.sh [DIGITS_CSV_GZ]
#
# Without an argument the digits file is taken from the scikit-learn wheel
# (downloaded once into bench/.cache with pip).
set -euo pipefail
cd "$(dirname "$0")/.."

csv=${1:-}
source bench/digits_prepare.sh

cargo build --release -q
lscpu | grep 'Model name'
run=$cache/digits-run
rm -rf "$run"
model=(--model t2t_vit_7_cifar --model-kwargs depth=4)
./target/release/t2t train "${model[@]}" --dataset cifar10 --data-dir "$data/cifar" \
    --epochs 15 --hflip 0 -o "$run" --json | tail -n 1 | tee "$cache/digits-train.json"
./target/release/t2t validate "${model[@]}" --checkpoint "$run" --dataset folder \
    --data-dir "$data/png" --split test --json | tail -n 1 | tee "$cache/digits-validate.json"
