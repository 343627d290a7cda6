#!/usr/bin/env bash
# The GPU path measured on a machine with a Vulkan GPU, in one run:
#  1. parity on the GPU backend: `t2t verify --device gpu` against the
#     official code's T2T-ViT-7 and T2T-ViT-14 (the whole parity suite is
#     `T2T_TEST_DEVICE=gpu cargo test` as .ci/run runs it, where a Rust
#     toolchain is at hand);
#  2. a short training run on the GPU, resumed on the CPU and back;
#  3. `t2t bench --device gpu` at batch B (64 unless given) for T2T-ViT-7 and
#     T2T-ViT-14, inference and training step, against PyTorch eager on CUDA
#     (bench/pytorch_baseline.py --device cuda), with peak device memory.
#
#   bash bench/gpu.sh [B]
#
# Needs a t2t built with `--features t2t/gpu` (T2T defaults to
# target/release/t2t), the fixtures (T2T_FIXTURES, ../shared/fixtures unless
# set), and a Python with torch and safetensors (PYTHON, python3 unless set)
# for the baseline, which is left out when torch sees no CUDA device.
set -euo pipefail
cd "$(dirname "$0")/.."
batch=${1:-64}
t2t=${T2T:-target/release/t2t}
python=${PYTHON:-python3}
fixtures=$(realpath "${T2T_FIXTURES:-../shared/fixtures}")
export T2T_FIXTURES=$fixtures

lscpu | grep 'Model name' || true
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader

echo "== parity on the GPU backend"
for model in t2t_vit_7 t2t_vit_14; do
    file=t2t/$model.safetensors
    [ -f "$fixtures/$file" ] || { echo "missing fixture $fixtures/$file" >&2; exit 1; }
    $t2t verify "$model" --weights "$fixtures/$file" --device gpu --json | tail -n 1 |
        python3 -c "import json, sys; r = json.load(sys.stdin); print('$model', 'passed' if r['passed'] else 'FAILED', 'max diff', max(r['max_abs_diff'].values()), r['adapter'])"
done

echo "== training on the GPU, resumed across devices"
run=$(mktemp -d)/run
$t2t train --device gpu --epochs 2 --stop-after-steps 48 -o "$run" --json | tail -n 1
$t2t train --resume "$run" --device cpu --stop-after-steps 72 --json | tail -n 1
$t2t train --resume "$run" --device gpu --json | tail -n 1

echo "== speed and memory at batch $batch"
results=$(mktemp)
trap 'rm -f "$results"' EXIT
has_cuda=$($python -c "import torch; print(int(torch.cuda.is_available()))" 2>/dev/null || echo 0)
for model in t2t_vit_7 t2t_vit_14; do
    for train_flag in "" --train; do
        echo "t2t $model ${train_flag:-inference} $($t2t bench --model "$model" --device gpu --batch-size "$batch" \
            $train_flag --iters 5 --json | tail -n 1)" >>"$results"
        if [ "$has_cuda" = 1 ]; then
            echo "pytorch $model ${train_flag:-inference} $($python bench/pytorch_baseline.py --model "$model" \
                --device cuda --batch-size "$batch" $train_flag --iters 5 --json | tail -n 1)" >>"$results"
        fi
    done
done
python3 - "$results" "$batch" <<'PY'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    side, model, mode, result = line.split(" ", 3)
    rows.setdefault((model, mode), {})[side] = json.loads(result)
print(f"| workload (batch {sys.argv[2]}) | t2t img/s | PyTorch CUDA img/s | ratio | t2t device memory | PyTorch peak memory | adapter |")
print("|---|---|---|---|---|---|---|")
for (model, mode), sides in rows.items():
    ours, theirs = sides["t2t"], sides.get("pytorch")
    ratio = f"{ours['img_per_s'] / theirs['img_per_s']:.2f}×" if theirs else "–"
    theirs_speed = f"{theirs['img_per_s']:.1f}" if theirs else "–"
    theirs_memory = f"{theirs['device_memory_mb']:.0f} MB" if theirs else "–"
    print(f"| {model} {mode} | {ours['img_per_s']:.1f} | {theirs_speed} | {ratio} "
          f"| {ours['device_memory_mb']:.0f} MB | {theirs_memory} | {ours['adapter']} |")
PY
