#!/usr/bin/env python3
"""torchvision's side of the ImageNet input-pipeline measurement (docs/BENCHMARKS.md): the
reference's training transform up to the tensor, on the same ImageFolder of JPEG files as
`cargo bench --bench data`: ImageFolder (PIL decoding with libjpeg-turbo) ->
RandomResizedCrop(224, scale=(0.08, 1.0), BICUBIC) -> RandomHorizontalFlip -> ColorJitter(0.4,
0.4, 0.4) -> PILToTensor (uint8, as our batches), batches of 64 from a DataLoader with one worker
(one core decoding and transforming). Prints images per second after the first batch, of wall
time and of CPU time (the main process and its workers, from /proc: robust on a shared machine).

    .venv/bin/python scripts/bench_torchvision_data.py DIR [--seconds S] [--workers N]
"""
import argparse
import os
import time

import torch
from PIL import Image
from torchvision import datasets, transforms


def cpu_seconds(pids):
    """User + system CPU seconds of the processes `pids` so far (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / tick


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir", help="an ImageFolder split (<class>/*.jpg)")
    p.add_argument("--seconds", type=float, default=10.0, help="time measured after the first batch")
    p.add_argument("--workers", type=int, default=1, help="DataLoader worker processes")
    args = p.parse_args()
    transform = transforms.Compose([
        transforms.RandomResizedCrop(224, scale=(0.08, 1.0), interpolation=Image.BICUBIC),
        transforms.RandomHorizontalFlip(),
        transforms.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4),
        transforms.PILToTensor(),
    ])
    data = datasets.ImageFolder(args.dir, transform=transform)
    torch.manual_seed(0)
    images, warm, cpu0 = 0, None, None
    loader = torch.utils.data.DataLoader(data, batch_size=64, shuffle=True, num_workers=args.workers,
                                         persistent_workers=True)
    iterator = iter(loader)
    pids = [os.getpid()] + [w.pid for w in iterator._workers]
    while True:
        for x, _ in iterator:
            now = time.perf_counter()
            if warm is None:
                warm, cpu0 = now, cpu_seconds(pids)  # the first batch starts the worker
                continue
            images += x.shape[0]
            if now - warm >= args.seconds:
                cpu = cpu_seconds(pids) - cpu0
                print(f"torchvision DataLoader, {args.workers} worker(s): {images / (now - warm):.1f} img/s, "
                      f"{images / cpu:.1f} img per CPU-second ({images} images, {len(data)} files)")
                return
        iterator = iter(loader)


if __name__ == "__main__":
    main()
