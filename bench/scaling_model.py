"""Expected scaling of data-parallel training over N machines.

    python3 bench/scaling_model.py SECONDS_PER_IMAGE GRADIENT_MB [IMAGES_PER_MACHINE]

Compute per optimizer step is the measured time of one image times the
images each machine takes (64 in the paper's T2T-ViT-14 recipe: batch 512
as 64 x 8). Communication is a ring all-reduce of the gradients,
2 (N - 1) / N x bytes / bandwidth; t2t's reduce-then-broadcast moves the same
bytes over the busiest link (about 2 x bytes / bandwidth for large N), and
the latency terms (microseconds per hop) are left out. Nothing overlaps the
backward pass, so efficiency = compute / (compute + communication).
"""

import sys

seconds_per_image = float(sys.argv[1])
gradient_bytes = float(sys.argv[2]) * 1e6
images = int(sys.argv[3]) if len(sys.argv) > 3 else 64

compute = seconds_per_image * images
links = {"25 Gb/s": 25e9 / 8, "100 Gb/s": 100e9 / 8}
print(f"compute per step: {compute:.3f} s ({images} images x {seconds_per_image:.4f} s)")
print(f"{'machines':>8} " + " ".join(f"{name + ' comm':>15} {'efficiency':>10}" for name in links))
for machines in (2, 4, 8, 16, 32, 64):
    cells = []
    for bandwidth in links.values():
        comm = 2 * (machines - 1) / machines * gradient_bytes / bandwidth
        cells.append(f"{comm * 1e3:>12.1f} ms {100 * compute / (compute + comm):>9.2f}%")
    print(f"{machines:>8} " + " ".join(cells))
