#!/usr/bin/env bash
# The cost of data parallelism: how much of an optimizer step two processes
# spend averaging their gradients, for T2T-ViT-7 and T2T-ViT-14 at 224,
# over TCP on loopback (`--mca btl tcp,self`, as between machines).
#
#   bash bench/allreduce_share.sh [BATCH_PER_PROCESS] [STEPS]
#
# Each process computes on its share of the machine's cores. `sync` is the
# time of the gradient average (one reduce to process 0 and one broadcast
# of the flattened gradients, plus the loss), `step` the whole optimizer
# step around it; the first step is included in both.
set -euo pipefail
cd "$(dirname "$0")/.."

batch=${1:-8}
steps=${2:-4}
cargo build --release -q --features t2t/mpi
lscpu | grep 'Model name'
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
printf "%-11s %9s %10s %9s %9s %7s\n" model params grad_MB step_s sync_s share
for model in t2t_vit_7 t2t_vit_14; do
    mpirun -np 2 --bind-to none --mca btl tcp,self ./target/release/t2t train \
        --preset builtin --model "$model" --model-ema false \
        --synthetic-train-size $((2 * batch * steps)) --synthetic-val-size 2 \
        --epochs 1 --warmup-epochs 0 -b "$batch" -j 1 --json -o "$out/$model" \
        2>/dev/null >"$out/$model.json"
    params=$(./target/release/t2t info "$model" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["params_trainable"])')
    python3 - "$out/$model.json" "$model" "$params" "$steps" <<'EOF'
import json, sys
run = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
model, params, steps = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
step, sync = run["train_seconds"] / steps, run["sync_seconds"] / steps
print(f"{model:<11} {params/1e6:8.2f}M {params*4/1e6:10.1f} {step:9.3f} {sync:9.4f} {100*sync/step:6.2f}%")
EOF
done
