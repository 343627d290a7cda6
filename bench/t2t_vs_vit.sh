#!/usr/bin/env bash
# The paper's central claim at CPU scale: T2T-ViT against a plain ViT of
# about the same size, both trained from scratch on small data with the same
# recipe (the handwritten digits in CIFAR-10 layout, the `cifar` preset, no
# flips):
#   t2t_vit_7_cifar at depth 4:                    2.40M parameters, 216M MACs
#   vit_cifar at width 256, depth 5, 4 heads, MLP 2: 2.67M parameters, 183M MACs
# (`t2t info MODEL --model-kwargs ...`; the ViT cuts 4x4 patches, 64 tokens).
#
#   bash bench/t2t_vs_vit.sh [SEEDS] [EPOCHS]
#
# Prints a table of mean ± sd top-1 and writes both models' evaluation curves
# to docs/pictures/t2t_vs_vit.svg.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-3}
epochs=${2:-15}
source bench/digits_prepare.sh
cargo build --release -q
lscpu | grep 'Model name'

declare -A kwargs=(
    [t2t_vit_7_cifar]="depth=4"
    [vit_cifar]="embed_dim=256 depth=5 num_heads=4 mlp_ratio=2"
)
runs=()
for seed in $(seq "$seeds"); do
    for model in t2t_vit_7_cifar vit_cifar; do
        run=$cache/versus-$model-$seed
        # shellcheck disable=SC2086
        ./target/release/t2t train --model "$model" --model-kwargs ${kwargs[$model]} \
            --dataset cifar10 --data-dir "$data/cifar" --epochs "$epochs" --hflip 0 \
            --seed "$seed" -o "$run" --overwrite --json 2>/dev/null | tail -n 1 >"$run.json"
        runs+=("$model:$run")
        echo "$model seed $seed done" >&2
    done
done

python3 - "${runs[@]}" <<'EOF'
import json, statistics, sys

runs = {}
for item in sys.argv[1:]:
    model, run = item.split(":", 1)
    summary = json.load(open(run + ".json"))
    rows = [line.split(",") for line in open(run + "/summary.csv").read().splitlines()[1:]]
    curve = [max(float(r[3]), float(r[7] or 0)) for r in rows]
    runs.setdefault(model, []).append((summary, curve))

def cell(values):
    if len(values) < 2:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"

print("| model | seeds | final top-1 (raw) | final top-1 (EMA) | best top-1 |")
print("|---|---|---|---|---|")
for model, items in runs.items():
    final = [s["final"]["raw"]["top1"] for s, _ in items]
    ema = [s["final"]["ema"]["top1"] for s, _ in items]
    best = [s["top1"] for s, _ in items]
    print(f"| {model} | {len(items)} | {cell(final)} | {cell(ema)} | {cell(best)} |")

# One SVG: top-1 (the better of raw and EMA) per epoch, a line per run.
width, height, pad = 640, 400, 50
epochs = max(len(c) for items in runs.values() for _, c in items)
x = lambda e: pad + (width - 2 * pad) * e / max(1, epochs - 1)
y = lambda v: height - pad - (height - 2 * pad) * v / 100
colours = {"t2t_vit_7_cifar": "#d62728", "vit_cifar": "#1f77b4"}
parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
         f'<rect width="{width}" height="{height}" fill="white"/>',
         f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">Top-1 on held-out digits per epoch (better of raw and EMA)</text>']
for v in range(0, 101, 20):
    parts.append(f'<line x1="{pad}" x2="{width - pad}" y1="{y(v)}" y2="{y(v)}" stroke="#ddd"/>')
    parts.append(f'<text x="{pad - 6}" y="{y(v) + 4}" text-anchor="end">{v}%</text>')
for e in range(epochs):
    parts.append(f'<text x="{x(e)}" y="{height - pad + 16}" text-anchor="middle">{e + 1}</text>')
parts.append(f'<text x="{width / 2}" y="{height - 12}" text-anchor="middle">epoch</text>')
for i, (model, items) in enumerate(runs.items()):
    for _, curve in items:
        points = " ".join(f"{x(e):.1f},{y(v):.1f}" for e, v in enumerate(curve))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colours.get(model, "black")}" stroke-width="1.5"/>')
    parts.append(f'<text x="{width - pad - 150}" y="{height - pad - 20 - 16 * i}" fill="{colours.get(model, "black")}">{model}</text>')
parts.append("</svg>")
open("docs/pictures/t2t_vs_vit.svg", "w").write("\n".join(parts) + "\n")
print("wrote docs/pictures/t2t_vs_vit.svg")
EOF
