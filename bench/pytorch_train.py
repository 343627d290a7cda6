"""PyTorch trainer for the side-by-side accuracy check of `t2t train`.

The same model and recipe as `t2t train --preset cifar --model t2t_vit_7_cifar`
on a CIFAR-10 binary folder: the official T2T-ViT modules (Performer T2T
with dropout 0.1, sinusoid position table, drop path rising linearly over
the blocks, trunc-normal 0.02 init) with t2t's CIFAR soft splits (3/1/1,
3/2/1, 3/2/1: 1024 tokens after the first); zero-pad-4 random crop and an
optional flip; label smoothing as soft targets; AdamW without decay on 1-D
parameters, biases and cls_token; linear warm-up then cosine, per step; an
EMA with timm's warm-up, evaluated beside the raw weights every epoch.

    bench/.venv/bin/python bench/pytorch_train.py --data DIR --depth 4 --epochs 15 --hflip 0 --seed 1 --json
"""
import argparse
import copy
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from pytorch_baseline import Attention, Mlp, T2TModule, TokenPerformer

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)


def read_cifar(folder, train):
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] if train else ["test_batch.bin"]
    raw = np.concatenate([np.fromfile(os.path.join(folder, n), dtype=np.uint8) for n in names])
    records = raw.reshape(-1, 1 + 3 * 32 * 32)
    images = torch.from_numpy(records[:, 1:].reshape(-1, 3, 32, 32).copy())
    return images, torch.from_numpy(records[:, 0].astype(np.int64))


def normalise(images):
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


def augment(images, pad, hflip, generator):
    """Zero-pad, random crop back to 32, flip with probability `hflip`."""
    padded = F.pad(images, (pad, pad, pad, pad))
    out = torch.empty_like(images)
    offsets = torch.randint(0, 2 * pad + 1, (len(images), 2), generator=generator)
    flips = torch.rand(len(images), generator=generator) < hflip
    for i, ((dy, dx), flip) in enumerate(zip(offsets.tolist(), flips.tolist())):
        crop = padded[i, :, dy : dy + 32, dx : dx + 32]
        out[i] = crop.flip(-1) if flip else crop
    return out


def sinusoid_table(n, d):
    position = np.arange(n)[:, None] / np.power(10000, 2 * (np.arange(d)[None, :] // 2) / d)
    position[:, 0::2] = np.sin(position[:, 0::2])
    position[:, 1::2] = np.cos(position[:, 1::2])
    return torch.tensor(position, dtype=torch.float32).unsqueeze(0)


class DropPath(nn.Module):
    def __init__(self, prob):
        super().__init__()
        self.prob = prob

    def forward(self, x):
        if not self.training or self.prob == 0.0:
            return x
        keep = 1 - self.prob
        mask = x.new_empty(x.shape[0], 1, 1).bernoulli_(keep)
        return x * mask / keep


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio, drop_path):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x):
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def orthogonal_performer_weights(module):
    for layer in module.modules():
        if isinstance(layer, TokenPerformer):
            layer.w.data = nn.init.orthogonal_(torch.randn_like(layer.w)) * math.sqrt(layer.m)


class T2TViTCifar(nn.Module):
    """T2T-ViT for 32x32 images: soft splits 3/1/1, 3/2/1, 3/2/1."""

    def __init__(self, embed_dim=256, depth=7, heads=4, mlp_ratio=2.0, token_dim=64, classes=10, drop_path=0.1):
        super().__init__()
        self.splits = [nn.Unfold(3, stride=s, padding=1) for s in (1, 2, 2)]
        self.attention1 = TokenPerformer(3 * 9, token_dim)
        self.attention2 = TokenPerformer(token_dim * 9, token_dim)
        self.project = nn.Linear(token_dim * 9, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(sinusoid_table(8 * 8 + 1, embed_dim), requires_grad=False)
        rates = torch.linspace(0, drop_path, depth).tolist()
        self.blocks = nn.ModuleList(Block(embed_dim, heads, mlp_ratio, r) for r in rates)
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, classes)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.apply(self._init_weights)
        orthogonal_performer_weights(self)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.attention1(self.splits[0](x).transpose(1, 2))
        x = self.attention2(self.splits[1](T2TModule.restructure(x)).transpose(1, 2))
        x = self.project(self.splits[2](T2TModule.restructure(x)).transpose(1, 2))
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)[:, 0])


def official_state_dict(model):
    """The state dict under the official T2T_ViT's key names."""
    t2t_parts = ("attention1.", "attention2.", "project.")
    return {("tokens_to_token." + k if k.startswith(t2t_parts) else k): v for k, v in model.state_dict().items()}


def save_official_style(path, model, ema, args, metric):
    """timm's CheckpointSaver layout, as the official training script writes it:
    the raw weights under a DDP `module.` prefix, the EMA's without."""
    torch.save(
        {
            "epoch": args.epochs - 1,
            "arch": "t2t_vit_7_cifar",
            "state_dict": {"module." + k: v for k, v in official_state_dict(model).items()},
            "version": 2,
            "args": args,
            "state_dict_ema": official_state_dict(ema),
            "metric": metric,
        },
        path,
    )


def lr_at(step, args, steps_per_epoch):
    """t2t's (timm's) schedule per step: linear warm-up, cosine over the whole run."""
    warmup = args.warmup_epochs * steps_per_epoch
    total = args.epochs * steps_per_epoch
    if step < warmup:
        return args.warmup_lr + (args.lr - args.warmup_lr) * step / warmup
    return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * step / total))


def evaluate(model, images, labels):
    model.eval()
    hits, loss = 0, 0.0
    with torch.no_grad():
        for start in range(0, len(images), 256):
            logits = model(normalise(images[start : start + 256]))
            target = labels[start : start + 256]
            hits += (logits.argmax(-1) == target).sum().item()
            loss += F.cross_entropy(logits, target, reduction="sum").item()
    return 100.0 * hits / len(images), loss / len(images)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True, help="CIFAR-10 binary folder")
    parser.add_argument("--depth", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--min-lr", type=float, default=1e-5)
    parser.add_argument("--warmup-lr", type=float, default=1e-6)
    parser.add_argument("--warmup-epochs", type=int, default=3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--smoothing", type=float, default=0.1)
    parser.add_argument("--drop-path", type=float, default=0.1)
    parser.add_argument("--hflip", type=float, default=0.5)
    parser.add_argument("--ema-decay", type=float, default=0.9998)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--save", help="write the final weights here as timm's CheckpointSaver does")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(args.seed)
    train_images, train_labels = read_cifar(args.data, True)
    test_images, test_labels = read_cifar(args.data, False)
    model = T2TViTCifar(depth=args.depth, drop_path=args.drop_path)
    ema = copy.deepcopy(model)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 or name.endswith(".bias") or name == "cls_token" else decay).append(p)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.999),
        eps=1e-8,
    )
    steps_per_epoch = len(train_images) // args.batch_size
    classes = 10
    step, history, epoch_seconds = 0, [], []
    for epoch in range(args.epochs):
        model.train()
        started = time.perf_counter()
        order = torch.randperm(len(train_images), generator=generator)
        losses = []
        for batch in range(steps_per_epoch):
            index = order[batch * args.batch_size : (batch + 1) * args.batch_size]
            images = normalise(augment(train_images[index], 4, args.hflip, generator))
            targets = F.one_hot(train_labels[index], classes).float() * (1 - args.smoothing) + args.smoothing / classes
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, args, steps_per_epoch)
            loss = torch.sum(-targets * F.log_softmax(model(images), dim=-1), dim=-1).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                d = min(args.ema_decay, (1 + step) / (10 + step))
                for e, p in zip(ema.state_dict().values(), model.state_dict().values()):
                    e.copy_(e * d + p * (1 - d)) if e.dtype.is_floating_point else e.copy_(p)
            step += 1
            losses.append(loss.item())
        epoch_seconds.append(time.perf_counter() - started)
        raw, raw_loss = evaluate(model, test_images, test_labels)
        averaged, _ = evaluate(ema, test_images, test_labels)
        history.append({"epoch": epoch, "train_loss": sum(losses) / len(losses), "top1": raw, "ema_top1": averaged})
        if not args.json:
            print(f"epoch {epoch + 1}: train loss {history[-1]['train_loss']:.4f} top-1 {raw:.2f} EMA {averaged:.2f} ({epoch_seconds[-1]:.1f} s)")
    best = max(max(h["top1"], h["ema_top1"]) for h in history)
    if args.save:
        save_official_style(args.save, model, ema, args, best)
    print(
        json.dumps(
            {
                "final": {"raw": history[-1]["top1"], "ema": history[-1]["ema_top1"]},
                "best": best,
                "train_loss": history[-1]["train_loss"],
                # The mean over all epochs, first included, as t2t reports it
                # (its training seconds over the epochs).
                "epoch_seconds": sum(epoch_seconds) / len(epoch_seconds),
                "history": history,
            }
        )
    )


if __name__ == "__main__":
    main()
