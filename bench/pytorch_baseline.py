"""PyTorch baseline for `t2t bench`: the official T2T-ViT computation, op for op.

nn.Unfold soft splits, the einsum Performer with its `.float()` casts, explicit
softmax attention, exact GELU, LayerNorm eps 1e-5, 2 threads. Before timing it
loads a golden fixture made with the official code and must reproduce its
logits to 1e-5, so the baseline cannot be a weaker model than the official one.

`--impl compile` runs the same module through torch.compile (inductor);
`--impl onnxruntime` exports it with torch.onnx.export and runs the file in
ONNX Runtime (every graph optimisation, 2 intra-op threads), after checking
that ONNX Runtime reproduces PyTorch's logits. `t2t_vit_7_cifar` is the
32x32 model of `pytorch_train.py` at depth 4.

    bench/.venv/bin/python bench/pytorch_baseline.py --model t2t_vit_7 --batch-size 16 [--train] [--impl eager|compile|onnxruntime] --json
"""
import argparse
import json
import math
import os
import resource
import statistics
import time
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

# Largest |logits difference| from the reference that a baseline may show.
PARITY = 1e-5

CONFIGS = {  # embed_dim, depth, heads, mlp_ratio, fixture
    "t2t_vit_7": (256, 7, 4, 2.0, "t2t_vit_7.safetensors"),
    "t2t_vit_14": (384, 14, 6, 3.0, "t2t_vit_14.safetensors"),
}


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class TokenPerformer(nn.Module):
    def __init__(self, dim, emb=64, kernel_ratio=0.5):
        super().__init__()
        self.emb = emb
        self.kqv = nn.Linear(dim, 3 * emb)
        self.dp = nn.Dropout(0.1)
        self.proj = nn.Linear(emb, emb)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(emb)
        self.mlp = nn.Sequential(nn.Linear(emb, emb), nn.GELU(), nn.Linear(emb, emb), nn.Dropout(0.1))
        self.m = int(emb * kernel_ratio)
        self.w = nn.Parameter(torch.randn(self.m, emb), requires_grad=False)

    def prm_exp(self, x):
        xd = (x * x).sum(dim=-1, keepdim=True).repeat(1, 1, self.m) / 2
        wtx = torch.einsum("bti,mi->btm", x.float(), self.w)
        return torch.exp(wtx - xd) / math.sqrt(self.m)

    def forward(self, x):
        k, q, v = torch.split(self.kqv(self.norm1(x)), self.emb, dim=-1)
        kp, qp = self.prm_exp(k), self.prm_exp(q)
        d = torch.einsum("bti,bi->bt", qp, kp.sum(dim=1)).unsqueeze(dim=2)
        kptv = torch.einsum("bin,bim->bnm", v.float(), kp)
        y = torch.einsum("bti,bni->btn", qp, kptv) / (d.repeat(1, 1, self.emb) + 1e-8)
        y = v + self.dp(self.proj(y))
        return y + self.mlp(self.norm2(y))


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class T2TModule(nn.Module):
    def __init__(self, embed_dim, token_dim=64):
        super().__init__()
        self.soft_split0 = nn.Unfold(kernel_size=(7, 7), stride=(4, 4), padding=(2, 2))
        self.soft_split1 = nn.Unfold(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))
        self.soft_split2 = nn.Unfold(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))
        self.attention1 = TokenPerformer(3 * 7 * 7, token_dim)
        self.attention2 = TokenPerformer(token_dim * 3 * 3, token_dim)
        self.project = nn.Linear(token_dim * 3 * 3, embed_dim)

    @staticmethod
    def restructure(x):
        b, hw, c = x.shape
        side = int(math.sqrt(hw))
        return x.transpose(1, 2).reshape(b, c, side, side)

    def forward(self, x):
        x = self.attention1(self.soft_split0(x).transpose(1, 2))
        x = self.attention2(self.soft_split1(self.restructure(x)).transpose(1, 2))
        return self.project(self.soft_split2(self.restructure(x)).transpose(1, 2))


class T2TViT(nn.Module):
    def __init__(self, embed_dim, depth, heads, mlp_ratio, num_classes=1000, img_size=224):
        super().__init__()
        n = (img_size // 16) ** 2
        self.tokens_to_token = T2TModule(embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n + 1, embed_dim), requires_grad=False)
        self.blocks = nn.ModuleList([Block(embed_dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes)

    def forward(self, x):
        x = self.tokens_to_token(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)[:, 0])


def build(name, fixtures):
    """The model, loaded from its fixture, and how far its logits are from the fixture's."""
    if name == "t2t_vit_7_cifar":
        return build_cifar(fixtures)
    embed_dim, depth, heads, mlp_ratio, fixture = CONFIGS[name]
    model = T2TViT(embed_dim, depth, heads, mlp_ratio)
    tensors = load_file(os.path.join(fixtures, "t2t", fixture))
    weights = {k: v for k, v in tensors.items() if not k.startswith("__")}
    model.load_state_dict(weights, strict=True)
    model.eval()
    with torch.no_grad():
        diff = (model(tensors["__input"]) - tensors["__logits"]).abs().max().item()
    if diff > PARITY:
        raise SystemExit(f"baseline does not reproduce {fixture}: max |logits diff| {diff:.3e} > {PARITY}")
    return model, diff, tensors["__input"]


def build_cifar(fixtures):
    """T2T-ViT-7 at 32x32 and depth 4, as `bench/pytorch_train.py` trains it.
    No fixture holds this shape: its modules are the ones that reproduce the
    t2t_vit_7 fixture, checked first."""
    from pytorch_train import T2TViTCifar

    _, diff, _ = build("t2t_vit_7", fixtures)
    return T2TViTCifar(depth=4), diff, None


def onnx_session(name, model, images, reference_input, threads):
    """ONNX Runtime on the model exported by `torch.onnx.export`, with every
    graph optimisation; it must reproduce PyTorch's logits before it is timed."""
    import onnxruntime as ort

    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".cache", "onnx")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{name}.onnx")
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    torch.onnx.export(model, (images,), path, input_names=["images"], output_names=["logits"],
                      dynamic_axes={"images": {0: "batch"}}, dynamo=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    check = reference_input if reference_input is not None else images
    with torch.no_grad():
        expected = model(check)
    diff = abs(session.run(None, {"images": check.numpy()})[0] - expected.numpy()).max()
    if diff > PARITY:
        raise SystemExit(f"ONNX Runtime does not reproduce PyTorch's {name}: max |logits diff| {diff:.3e} > {PARITY}")
    return session, float(diff)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="t2t_vit_7", choices=sorted(CONFIGS) + ["t2t_vit_7_cifar"])
    parser.add_argument("--impl", default="eager", choices=["eager", "compile", "onnxruntime"],
                        help="PyTorch eager, torch.compile (inductor) or ONNX Runtime on torch.onnx.export's file")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--train", action="store_true")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                        help="cuda: the model and batch on the first GPU (eager or compile)")
    parser.add_argument("--fixtures", default=os.environ.get("T2T_FIXTURES", "../shared/fixtures"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.train and args.impl == "onnxruntime":
        raise SystemExit("--impl onnxruntime times inference only")
    if args.device == "cuda" and args.impl == "onnxruntime":
        raise SystemExit("--impl onnxruntime runs on the CPU only")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model, parity, reference_input = build(args.model, args.fixtures)
    side, classes = (32, 10) if args.model == "t2t_vit_7_cifar" else (224, 1000)
    device = torch.device(args.device)
    model = model.to(device)
    images = torch.randn(args.batch_size, 3, side, side).to(device)
    labels = (torch.arange(args.batch_size) % classes).to(device)
    forward = torch.compile(model) if args.impl == "compile" else model
    result_extra = {}
    if args.train:
        model.train()
        decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim > 1 and n != "cls_token"]
        no_decay = [p for n, p in model.named_parameters() if p.requires_grad and (p.ndim <= 1 or n == "cls_token")]
        optimizer = torch.optim.AdamW([{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": 0.05}], lr=1e-3)

        def step():
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(forward(images), labels, label_smoothing=0.1).backward()
            optimizer.step()
    elif args.impl == "onnxruntime":
        model.eval()
        session, onnx_parity = onnx_session(args.model, model, images, reference_input, args.threads)
        result_extra["onnxruntime_max_abs_diff"] = onnx_parity
        feed = {"images": images.numpy()}

        def step():
            session.run(None, feed)
    else:
        model.eval()

        def step():
            with torch.no_grad():
                forward(images)

    if args.device == "cuda":
        # A GPU runs asynchronously: every timed step waits for its own work.
        run_step = step

        def step():
            run_step()
            torch.cuda.synchronize()

    started = time.perf_counter()
    for _ in range(args.warmup):
        step()
    warmup_s = time.perf_counter() - started
    times = []
    for _ in range(args.iters):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1e3)
    median = statistics.median(times)
    result = {
        "model": args.model, "impl": args.impl, "batch_size": args.batch_size,
        "mode": "train" if args.train else "inference",
        "img_per_s": args.batch_size / (median / 1e3), "ms_per_batch": median, "times_ms": sorted(times),
        "warmup_s": warmup_s, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "parity_max_abs_diff": parity, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "device_memory_mb": torch.cuda.max_memory_allocated() / 2**20 if args.device == "cuda" else None,
        **result_extra,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.impl} {args.model} {result['mode']} batch {args.batch_size}: {median:.1f} ms/batch, "
              f"{result['img_per_s']:.2f} img/s, peak RSS {result['peak_rss_mb']:.0f} MB (parity {parity:.1e})")


if __name__ == "__main__":
    main()
