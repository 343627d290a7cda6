"""Writes the golden key lists: the parameter names and shapes of the
official code's state_dict, as the fixtures hold them, with how to build
the same model here.

    python3 crates/t2t-models/tests/key_trees/extract.py $T2T_FIXTURES

Each list is `NAME.txt`: a `# build:` line (`registered ARCH`, `t2t` or
`vit`, then `key=value` settings), then one `key shape` line per tensor,
the shape as `d0xd1x...` (`scalar` for none), sorted by key.
"""

import json
import pathlib
import struct
import sys

FILES = [
    "t2t/t2t_vit_7.safetensors",
    "t2t/t2t_vit_14.safetensors",
    "t2t/t2t_vit_7_d2_stress.safetensors",
    "t2t/t2t_vit_t_7_d2_stress.safetensors",
    "vit/vit_cifar_p4_32_d192_L2_stress.safetensors",
    "vit/vit_p16_224_d192_L2_stress.safetensors",
]


def header(path):
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(length))


def setting(key, value):
    return f"{key}={json.dumps(value).strip(chr(34))}"


def build_line(config, folder):
    kwargs = config.get("kwargs") or {}
    settings = [setting(k, v) for k, v in kwargs.items()]
    if folder == "vit":
        return "vit " + " ".join(settings)
    settings = [f"img_size={config['img_size']}"] + settings
    if config.get("arch"):
        return f"registered {config['arch']} " + " ".join(settings)
    return "t2t " + " ".join(settings)


def main():
    root = pathlib.Path(sys.argv[1])
    out = pathlib.Path(__file__).parent
    for name in FILES:
        tensors = header(root / name)
        config = json.loads(tensors.pop("__metadata__")["config"])
        lines = [f"# build: {build_line(config, name.split('/')[0])}"]
        for key in sorted(k for k in tensors if not k.startswith("__")):
            shape = tensors[key]["shape"]
            lines.append(f"{key} {'x'.join(map(str, shape)) or 'scalar'}")
        target = out / (pathlib.Path(name).stem + ".txt")
        target.write_text("\n".join(lines) + "\n")
        print(f"{target}: {len(lines) - 1} tensors")


main()
