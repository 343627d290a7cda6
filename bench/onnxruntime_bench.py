"""Inference throughput of an exported model in ONNX Runtime on the CPU.

    python onnxruntime_bench.py MODEL.onnx [--batch-size B] [--iters N] [--threads T]

Prints one JSON line like `t2t bench --json`: the median of N timed runs
after two untimed ones, on random normal images.
"""

import argparse
import json
import statistics
import time

import numpy as np
import onnxruntime as ort

parser = argparse.ArgumentParser()
parser.add_argument("model")
parser.add_argument("--batch-size", type=int, default=1)
parser.add_argument("--iters", type=int, default=5)
parser.add_argument("--threads", type=int, default=2)
args = parser.parse_args()

options = ort.SessionOptions()
options.intra_op_num_threads = args.threads
options.inter_op_num_threads = 1
session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
model_input = session.get_inputs()[0]
_, channels, height, width = model_input.shape
images = np.random.default_rng(0).standard_normal((args.batch_size, channels, height, width), dtype=np.float32)
feed = {model_input.name: images}
for _ in range(2):
    session.run(None, feed)
times_ms = []
for _ in range(args.iters):
    start = time.perf_counter()
    session.run(None, feed)
    times_ms.append((time.perf_counter() - start) * 1e3)
median = statistics.median(times_ms)
print(json.dumps({"batch_size": args.batch_size, "ms_per_batch": median, "img_per_s": args.batch_size / (median / 1e3), "times_ms": sorted(times_ms)}))
