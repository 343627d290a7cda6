#!/usr/bin/env bash
# t2t against PyTorch eager, torch.compile (inductor) and ONNX Runtime on the
# same machine, in the same run: each workload runs ROUNDS times with the
# sides alternating, and the table shows medians of img/s, t2t's speed over
# each side (above 1 means t2t is faster) and its peak memory over PyTorch
# eager's. Every PyTorch side reproduces the fixture logits before it is
# timed, and ONNX Runtime reproduces PyTorch's (bench/pytorch_baseline.py).
#
#   bash bench/compare.sh [ROUNDS] [--avx2]
#
# --avx2 holds every side to AVX2 on a CPU with AVX-512: t2t built without
# its `avx512` feature (into target/avx2) and run with T2T_SIMD=avx2, PyTorch
# with ATEN_CPU_CAPABILITY=avx2 and MKL_ENABLE_INSTRUCTIONS=AVX2. ONNX Runtime
# has no such switch and stays native; the table says so.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3
pinned=false
for arg in "$@"; do
    case $arg in
    --avx2) pinned=true ;;
    *) rounds=$arg ;;
    esac
done
T2T_FIXTURES=$(realpath "${T2T_FIXTURES:-../shared/fixtures}")
export T2T_FIXTURES

# The baselines' own environment: torch at 2 threads, ONNX Runtime at 2 intra-op threads.
if ! bench/.venv/bin/python -c "import torch, onnxruntime, onnxscript, safetensors" 2>/dev/null; then
    python3 -m venv bench/.venv
    bench/.venv/bin/pip install -q torch==2.15.0 numpy safetensors onnx==1.23.2 onnxruntime==1.32.0 onnxscript
fi
if $pinned; then
    cargo build --release -q --no-default-features --target-dir target/avx2 --bin t2t
    t2t=target/avx2/release/t2t
    export T2T_SIMD=avx2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2
else
    cargo build --release -q --bin t2t
    t2t=target/release/t2t
fi
lscpu | grep 'Model name'
$t2t bench --model t2t_vit_7 --iters 1 --warmup 0 --json | tail -n 1 |
    python3 -c "import json, sys; print('t2t instruction sets:', json.load(sys.stdin)['simd'])"

workloads=(
    "t2t_vit_7 1 inference"
    "t2t_vit_7 16 inference"
    "t2t_vit_14 16 inference"
    "t2t_vit_7 16 train"
    "t2t_vit_7_cifar 128 train"
)
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for workload in "${workloads[@]}"; do
    read -r model batch mode <<<"$workload"
    train_flag=""
    [ "$mode" = train ] && train_flag="--train"
    kwargs=""
    [ "$model" = t2t_vit_7_cifar ] && kwargs="--model-kwargs depth=4"
    iters=5
    [ "$batch" -gt 1 ] && iters=3
    sides=(eager compile)
    [ "$mode" = inference ] && sides+=(onnxruntime)
    for round in $(seq "$rounds"); do
        line=$($t2t bench --model "$model" $kwargs --batch-size "$batch" $train_flag --iters $iters --json | tail -n 1)
        echo "$model $batch $mode t2t $line" >>"$results"
        for side in "${sides[@]}"; do
            # A side that fails is left out of the table ("–"), and says why on stderr.
            if line=$(bench/.venv/bin/python bench/pytorch_baseline.py --model "$model" --impl "$side" \
                --batch-size "$batch" $train_flag --iters $iters --warmup 3 --json | tail -n 1) &&
                [ -n "$line" ]; then
                echo "$model $batch $mode $side $line" >>"$results"
            else
                echo "round $round $model b$batch $mode: $side failed" >&2
            fi
        done
        echo "round $round $model b$batch $mode done" >&2
    done
done

python3 - "$results" "$pinned" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    model, batch, mode, side, result = line.split(" ", 4)
    runs.setdefault((model, batch, mode), {}).setdefault(side, []).append(json.loads(result))
pinned = sys.argv[2] == "true"
ort = "ONNX Runtime (native)" if pinned else "ONNX Runtime"
print(f"| workload | t2t img/s | eager | compile | {ort} | t2t / eager | t2t / compile | t2t / ORT | t2t peak RSS | eager peak RSS | memory ratio |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for (model, batch, mode), sides in runs.items():
    speed = {side: statistics.median(r["img_per_s"] for r in rs) for side, rs in sides.items()}
    memory = {side: statistics.median(r["peak_rss_mb"] for r in rs) for side, rs in sides.items()}
    cell = lambda side: f"{speed[side]:.2f}" if side in speed else "–"
    ratio = lambda side: f"{speed['t2t'] / speed[side]:.2f}×" if side in speed else "–"
    name = f"{model} (depth 4) {mode} b{batch} at 32" if model.endswith("_cifar") else f"{model} {mode} b{batch}"
    print(f"| {name} | {cell('t2t')} | {cell('eager')} | {cell('compile')} | {cell('onnxruntime')} "
          f"| {ratio('eager')} | {ratio('compile')} | {ratio('onnxruntime')} "
          f"| {memory['t2t']:.0f} MB | {memory['eager']:.0f} MB | {memory['t2t'] / memory['eager']:.2f} |")
PY
