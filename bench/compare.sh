#!/usr/bin/env bash
# t2t against the PyTorch baseline on the same machine, in the same run:
# each workload runs ROUNDS times, alternating the two sides, and the table
# shows medians and their ratio (t2t / PyTorch; above 1 means t2t is faster).
#
#   bash bench/compare.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
export T2T_FIXTURES=${T2T_FIXTURES:-../shared/fixtures}

# The baseline's own environment: torch at 2 threads, numpy, safetensors.
if [ ! -x bench/.venv/bin/python ]; then
    python3 -m venv bench/.venv
    bench/.venv/bin/pip install -q torch==2.15.0 numpy safetensors
fi
cargo build --release -q

workloads=(
    "t2t_vit_7 1 inference"
    "t2t_vit_7 16 inference"
    "t2t_vit_14 16 inference"
    "t2t_vit_7 16 train"
)
results=$(mktemp)
for workload in "${workloads[@]}"; do
    read -r model batch mode <<<"$workload"
    train_flag=""
    [ "$mode" = train ] && train_flag="--train"
    iters=5
    [ "$batch" -gt 1 ] && iters=3
    for round in $(seq "$rounds"); do
        ours=$(./target/release/t2t bench --model "$model" --batch-size "$batch" $train_flag --iters $iters --json | tail -n 1)
        theirs=$(bench/.venv/bin/python bench/pytorch_baseline.py --model "$model" --batch-size "$batch" $train_flag --iters $iters --json | tail -n 1)
        echo "$model $batch $mode $round $ours $theirs" >>"$results"
        echo "round $round $model b$batch $mode done" >&2
    done
done

python3 - "$results" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    model, batch, mode, _round, rest = line.split(" ", 4)
    ours, theirs = rest.strip().split("} {")
    ours, theirs = json.loads(ours + "}"), json.loads("{" + theirs)
    rows.setdefault((model, batch, mode), []).append((ours, theirs))
print(f"| workload | t2t img/s | PyTorch img/s | ratio | t2t peak RSS | PyTorch peak RSS | memory ratio |")
print(f"|---|---|---|---|---|---|---|")
for (model, batch, mode), runs in rows.items():
    ours = statistics.median(r[0]["img_per_s"] for r in runs)
    theirs = statistics.median(r[1]["img_per_s"] for r in runs)
    ratios = statistics.median(r[0]["img_per_s"] / r[1]["img_per_s"] for r in runs)
    mem_ours = statistics.median(r[0]["peak_rss_mb"] for r in runs)
    mem_theirs = statistics.median(r[1]["peak_rss_mb"] for r in runs)
    print(f"| {model} {mode} b{batch} | {ours:.2f} | {theirs:.2f} | {ratios:.2f}x | {mem_ours:.0f} MB | {mem_theirs:.0f} MB | {mem_ours / mem_theirs:.2f} |")
PY
rm -f "$results"
