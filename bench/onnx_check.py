"""Checks an exported model with ONNX's full checker and runs it in ONNX Runtime.

    python onnx_check.py MODEL.onnx CASE.safetensors

CASE.safetensors holds `input` [B, 3, H, W] and t2t's `logits` for it. Prints
one JSON line: the input and output names, the metadata keys, and the largest
absolute difference from t2t's logits at batch 1 (the first image) and at
batch B. Exits non-zero when the checker rejects the model.
Needs: pip install onnx onnxruntime numpy
"""

import json
import struct
import sys

import numpy as np
import onnx
import onnxruntime as ort


def read_safetensors(path):
    """The float32 tensors of a safetensors file, without the safetensors package."""
    with open(path, "rb") as f:
        (header_size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_size))
        data = f.read()
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise ValueError(f"{path}: {name} is {info['dtype']}, not F32")
        start, end = info["data_offsets"]
        tensors[name] = np.frombuffer(data[start:end], dtype="<f4").reshape(info["shape"])
    return tensors


def main(model_path, case_path):
    model = onnx.load(model_path)
    onnx.checker.check_model(model, full_check=True)
    case = read_safetensors(case_path)
    images, expected = case["input"], case["logits"]

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    (model_input,), (model_output,) = session.get_inputs(), session.get_outputs()
    run = lambda batch: session.run(None, {model_input.name: batch})[0]
    print(
        json.dumps(
            {
                "input": model_input.name,
                "output": model_output.name,
                "input_shape": model_input.shape,
                "metadata": sorted(p.key for p in model.metadata_props),
                "batch": len(images),
                "max_abs_diff_batch1": float(np.abs(run(images[:1]) - expected[:1]).max()),
                "max_abs_diff_batch": float(np.abs(run(images) - expected).max()),
            }
        )
    )


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
