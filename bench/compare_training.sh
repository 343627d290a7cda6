#!/usr/bin/env bash
# Accuracy and epoch time of `t2t train` against the same model and recipe
# in PyTorch (bench/pytorch_train.py), trained side by side on the
# handwritten digits in CIFAR-10 binary layout: t2t_vit_7_cifar at depth 4,
# the `cifar` preset (AdamW 1e-3, wd 0.05, warm-up then cosine per step,
# label smoothing 0.1, drop path 0.1, EMA 0.9998 with warm-up, batch 128),
# no flips. The two sides alternate, seed by seed. The time per epoch is
# each side's training loop (steps, data, augmentation; not evaluation)
# averaged over all epochs, the first included.
#
#   bash bench/compare_training.sh [SEEDS] [EPOCHS]
#
# Each finished run appends a line to bench/.cache/compare_training.jsonl,
# and the table is printed from whatever that file holds.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-3}
epochs=${2:-15}
source bench/digits_prepare.sh

if [ ! -x bench/.venv/bin/python ]; then
    python3 -m venv bench/.venv
    bench/.venv/bin/pip install -q torch==2.15.0 numpy safetensors
fi
cargo build --release -q
lscpu | grep 'Model name'
results=$cache/compare_training.jsonl
: >"$results"
warmup=$(python3 -c "print(max(0, min(5, int($epochs * 0.2))))")
for seed in $(seq "$seeds"); do
    run=$cache/compare-t2t-$seed
    ./target/release/t2t train --model t2t_vit_7_cifar --model-kwargs depth=4 --dataset cifar10 \
        --data-dir "$data/cifar" --epochs "$epochs" --hflip 0 --seed "$seed" -o "$run" --overwrite --json \
        2>/dev/null | tail -n 1 |
        python3 -c "
import json, sys
run = json.load(sys.stdin)
rows = [l.split(',') for l in open('$run/summary.csv').read().splitlines()[1:]]
print(json.dumps({'side': 't2t', 'seed': $seed, 'final': run['final']['raw']['top1'],
    'final_ema': run['final']['ema']['top1'], 'best': run['top1'],
    'epoch_seconds': run['train_seconds'] / $epochs, 'train_loss': run['train_loss']}))" >>"$results"
    (cd bench && .venv/bin/python pytorch_train.py --data ".cache/digits/cifar" --depth 4 \
        --epochs "$epochs" --warmup-epochs "$warmup" --hflip 0 --seed "$seed" --json) | tail -n 1 |
        python3 -c "
import json, sys
run = json.load(sys.stdin)
print(json.dumps({'side': 'pytorch', 'seed': $seed, 'final': run['final']['raw'],
    'final_ema': run['final']['ema'], 'best': run['best'],
    'epoch_seconds': run['epoch_seconds'], 'train_loss': run['train_loss']}))" >>"$results"
    echo "seed $seed done" >&2
done

python3 - "$results" <<'EOF'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
def cell(values, digits=2):
    if len(values) < 2:
        return f"{values[0]:.{digits}f}" if values else "-"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"
print("| side | seeds | final top-1 (raw) | final top-1 (EMA) | best top-1 | final train loss | s / epoch |")
print("|---|---|---|---|---|---|---|")
for side in ("t2t", "pytorch"):
    mine = [r for r in runs if r["side"] == side]
    column = lambda key: [r[key] for r in mine]
    print(f"| {side} | {len(mine)} | {cell(column('final'))} | {cell(column('final_ema'))} | {cell(column('best'))} "
          f"| {cell(column('train_loss'), 3)} | {cell(column('epoch_seconds'), 1)} |")
EOF
