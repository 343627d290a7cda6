#!/usr/bin/env bash
# ONNX Runtime (CPU, 2 intra-op threads) on `t2t export`'s file against
# `t2t bench` on the same model, in the same run: each workload runs ROUNDS
# times, alternating the two sides; the table shows medians and their ratio
# (t2t / ONNX Runtime; above 1 means t2t is faster).
#
#   bash bench/onnx_compare.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
fixtures=${T2T_FIXTURES:-../shared/fixtures}

if [ ! -x .venv-onnx/bin/python ]; then
    python3 -m venv .venv-onnx
    .venv-onnx/bin/pip install -q onnx==1.23.2 onnxruntime==1.32.0 numpy==2.4.6
fi
cargo build --release -q -p t2t
exports=$(mktemp -d)
results=$(mktemp)
trap 'rm -rf "$exports" "$results"' EXIT

workloads=(
    "t2t_vit_7 1"
    "t2t_vit_7 16"
    "t2t_vit_14 16"
)
for workload in "${workloads[@]}"; do
    read -r model batch <<<"$workload"
    onnx_file="$exports/$model.onnx"
    [ -f "$onnx_file" ] || ./target/release/t2t export "$model" --weights "$fixtures/t2t/$model.safetensors" -o "$onnx_file" >&2
    iters=5
    [ "$batch" -gt 1 ] && iters=3
    for round in $(seq "$rounds"); do
        ours=$(./target/release/t2t bench --model "$model" --batch-size "$batch" --iters $iters --json | tail -n 1)
        theirs=$(.venv-onnx/bin/python bench/onnxruntime_bench.py "$onnx_file" --batch-size "$batch" --iters $iters | tail -n 1)
        echo "$model $batch $round $ours $theirs" >>"$results"
        echo "round $round $model b$batch done" >&2
    done
done

lscpu | grep 'Model name'
python3 - "$results" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    model, batch, _round, rest = line.split(" ", 3)
    ours, theirs = rest.strip().split("} {")
    rows.setdefault((model, batch), []).append((json.loads(ours + "}"), json.loads("{" + theirs)))
print("| workload | t2t img/s | ONNX Runtime img/s | ratio |")
print("|---|---|---|---|")
for (model, batch), runs in rows.items():
    ours = statistics.median(r[0]["img_per_s"] for r in runs)
    theirs = statistics.median(r[1]["img_per_s"] for r in runs)
    ratio = statistics.median(r[0]["img_per_s"] / r[1]["img_per_s"] for r in runs)
    print(f"| {model} inference b{batch} | {ours:.2f} | {theirs:.2f} | {ratio:.2f}x |")
PY
