#!/usr/bin/env python3
"""The engine's ceiling: a plain PyTorch training-step loop on the same libtorch, written for the
benchmark (not the reference's code), on random CIFAR-sized data already on the device.

usage: torch_ceiling.py [--models resnet18,wresnet28_10] [--batch-size 256] [--steps 100]
                        [--warmup 20] [--json OUT.json] [--quick]

For each model: fp32 (NCHW), bf16 autocast (NCHW) and bf16 autocast + channels_last, each with
torch.optim.SGD(momentum 0.9, nesterov, weight decay 5e-4) in its default (foreach) and fused
forms, zero_grad(set_to_none=True). Prints one line per configuration and writes them as JSON.
The architectures are those of scripts/check_weights.py (the reference's layouts). Needs torch.
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_weights import ResNet18, WideResNet  # noqa: E402  (the model definitions)


def measure(model_name, batch_size, steps, warmup, device, precision, channels_last, fused):
    torch.manual_seed(0)
    model = (ResNet18(10) if model_name == "resnet18" else WideResNet(28, 10, 10)).to(device).train()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4,
                          fused=fused or None)
    x = torch.randn(batch_size, 3, 32, 32, device=device).to(memory_format=memory_format)
    y = torch.randint(0, 10, (batch_size,), device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def step():
        with autocast:
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18,wresnet28_10")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--json")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, resnet18 only, to try it on a CPU")
    a = ap.parse_args()
    if a.quick:
        a.models, a.batch_size, a.steps, a.warmup = "resnet18", 8, 2, 1
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    rows = []
    for model in a.models.split(","):
        # WRN-28-10 is about 6x slower: fewer steps keep the run short
        steps = a.steps if model == "resnet18" else max(1, a.steps // 3)
        for precision, channels_last in [("fp32", False), ("bf16", False), ("bf16", True)]:
            for fused in [False, True]:
                rate = measure(model, a.batch_size, steps, a.warmup, device, precision, channels_last, fused)
                row = {"model": model, "precision": precision,
                       "memory_format": "channels_last" if channels_last else "nchw",
                       "optimizer": "fused" if fused else "foreach", "batch_size": a.batch_size,
                       "steps": steps, "images_per_sec": rate, "device": str(device),
                       "torch": torch.__version__,
                       "gpu": torch.cuda.get_device_name() if device.type == "cuda" else "cpu"}
                rows.append(row)
                print(f"torch ceiling: {model} {precision} {row['memory_format']} {row['optimizer']} SGD, "
                      f"batch {a.batch_size}: {rate:.0f} img/s", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
