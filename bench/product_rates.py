"""PyTorch's side of `examples/product_rates`: the GFLOP/s of torch.mm (MKL)
on the products of a T2T-ViT block at the shapes of a batch of 224 px
images, at 2 threads, the median of 9 runs after one untimed run. Set
MKL_ENABLE_INSTRUCTIONS=AVX2 to hold MKL to AVX2.

    bench/.venv/bin/python bench/product_rates.py [BATCH]
"""
import subprocess
import sys
import time

import torch

RUNS = 9
MAX_BATCH = 256  # as examples/product_rates
TOKENS = 197  # 14x14 tokens after the T2T module and the class token
MODELS = [("t2t_vit_7", 256, 2), ("t2t_vit_14", 384, 3)]  # width, MLP ratio


def rate(rows, inner, cols):
    lhs, rhs = torch.rand(rows, inner), torch.rand(inner, cols)
    out = torch.empty(rows, cols)
    seconds = []
    for _ in range(RUNS + 1):
        started = time.perf_counter()
        torch.mm(lhs, rhs, out=out)
        seconds.append(time.perf_counter() - started)
    return 2 * rows * inner * cols / sorted(seconds[1:])[RUNS // 2] / 1e9


def main():
    batch = sys.argv[1] if len(sys.argv) > 1 else "16"
    if not batch.isdigit() or not 1 <= int(batch) <= MAX_BATCH:
        raise SystemExit(f"error: BATCH must be a whole number from 1 to {MAX_BATCH}, not {batch!r}")
    batch = int(batch)
    torch.set_num_threads(2)
    rows = batch * TOKENS
    model_name = next(
        (line for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
         if line.startswith("Model name")), "Model name: unknown")
    print(" ".join(model_name.split()))
    print(f"torch.mm on block products at batch {batch} ({rows} rows), GFLOP/s\n")
    print("| model | product | shape | GFLOP/s |\n|---|---|---|---|")
    for model, width, mlp_ratio in MODELS:
        hidden = width * mlp_ratio
        for product, inner, cols in [("qkv", width, 3 * width), ("proj", width, width),
                                     ("fc1", width, hidden), ("fc2", hidden, width)]:
            print(f"| {model} | {product} | {rows}×{inner} · {inner}×{cols} | {rate(rows, inner, cols):.0f} |")


if __name__ == "__main__":
    main()
