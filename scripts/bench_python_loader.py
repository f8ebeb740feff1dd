#!/usr/bin/env python3
"""The input side of training for PyTorch users: resmooth.Loader with T threads against a PyTorch
DataLoader with T workers running the reference's transforms on Pillow, RandAugment(2, 28) with
two views (the reference's TwoCropsTransform: an original view RandomCrop(32, 4) + flip, an
augmented view RandAugment + crop + flip, both ToTensor + Normalize), batch 128, in one run.

usage: bench_python_loader.py [--threads 1,2] [--images N] [--seconds S] [--folder DIR] [--json FILE]

Prints, for each T, training samples per second (each an original and an augmented view) of
both and their ratio; the Python overhead of one `next()` on resmooth.Loader when the batch is
already made (µs); and whether the GIL is held while the loader works: how fast a Python thread
counts while the main thread waits for batches, against while it sleeps.

Run with the package installed (scripts/python-tests.sh leaves it in target/py-venv), e.g.
    target/py-venv/bin/python scripts/bench_python_loader.py
Images: `--images` synthetic 32x32 images made here (default), or `--folder DIR`, an ImageFolder
tree DIR/train/<class>/* read as resmooth train reads it.
"""
import argparse
import json
import os
import random
import sys
import threading
import time

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image

import resmooth

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_augment_fixtures import RA, ra_op  # noqa: E402  the Pillow rendering of the reference's ops

BATCH = 128
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)


class ReferenceRandAugment:
    """The reference's RandAugment(N, M) on Pillow: N ops drawn with `random.choices`, each at
    `M / 30 * (max - min) + min`, the signed ones negated when `random.random() > 0.5`."""

    def __init__(self, n, m):
        self.n, self.m = n, m

    def __call__(self, img):
        for name, lo, hi, signed in random.choices(RA, k=self.n):
            v = self.m / 30 * (hi - lo) + lo
            if signed and random.random() > 0.5:
                v = -v
            img = ra_op(name, img, v)
        return img


class TwoViews(torch.utils.data.Dataset):
    """The reference's CIFAR training set: ([original view, augmented view], label)."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels
        tail = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(CIFAR_MEAN, CIFAR_STD)]
        self.ori = T.Compose(tail)
        self.aug = T.Compose([ReferenceRandAugment(2, 28)] + tail)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        img = Image.fromarray(self.images[i])
        return [self.ori(img), self.aug(img)], int(self.labels[i])


def synthetic(n, seed=0):
    """`n` 32x32 images with gradients, flat blocks and noise (the ops' cost depends little on
    content), labels `i % 10`."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:32, 0:32]
    out = np.empty((n, 32, 32, 3), np.uint8)
    for i in range(n):
        img = np.stack([x * rng.integers(1, 8), y * rng.integers(1, 8), (x + y) * rng.integers(1, 4)], -1)
        y0, x0 = rng.integers(0, 24, 2)
        img[y0:y0 + 9, x0:x0 + 9] = rng.integers(0, 256, 3)
        out[i] = (img + rng.integers(0, 16, img.shape)).clip(0, 255)
    return out, np.arange(n) % 10


def rate(batches, seconds, warmup):
    """Samples per second over the batches after the first `warmup` (worker start-up left out),
    for at least `seconds`."""
    it = iter(batches)
    for _ in range(warmup):
        next(it)
    count, start = 0, time.perf_counter()
    while True:
        try:
            b = next(it)
        except StopIteration:
            break
        count += len(b[1]) if isinstance(b, list) else len(b.original)
        if time.perf_counter() - start >= seconds:
            break
    return count / (time.perf_counter() - start)


def forever(make):
    """Endless batches: one epoch after another."""
    while True:
        yield from make()


def throughput(images, labels, threads, seconds):
    data = TwoViews(images, labels)
    loader = torch.utils.data.DataLoader(data, batch_size=BATCH, shuffle=True, drop_last=True, num_workers=threads,
                                         persistent_workers=True, prefetch_factor=4)
    reference = rate(forever(lambda: iter(loader)), seconds, warmup=2 * threads)
    ours = resmooth.Loader(images, labels, BATCH, aug="ra", n=2, m=28, two_views=True, seed=0, threads=threads)
    fast = rate(forever(lambda: iter(ours)), seconds, warmup=2)
    return reference, fast


def call_overhead(images, labels):
    """µs per next() when the batch is already waiting: the Python side of one batch."""
    n = min(len(images), 40 * BATCH)
    loader = resmooth.Loader(images[:n], labels[:n], BATCH, aug="ra", n=2, m=28, threads=1, prefetch=n // BATCH)
    times = []
    for _ in range(3):
        it = iter(loader)
        time.sleep(0.5 + n / 20000)  # every batch of the pass is made meanwhile
        for _ in range(len(loader) - 1):  # the producer has made them all but perhaps the last
            t = time.perf_counter()
            next(it)
            times.append(time.perf_counter() - t)
        list(it)
    return 1e6 * float(np.median(times)), 1e6 * float(np.percentile(times, 90))


def gil_check(images, labels, seconds):
    """Counts of a Python thread per second: while the main thread sleeps, while it waits for
    resmooth.Loader's batches (one loader thread), and while it runs a Python loop (GIL held)."""
    state = {"count": 0, "run": True}

    def count():
        while state["run"]:
            state["count"] += 1

    def counted(work):
        before, t = state["count"], time.perf_counter()
        work()
        return (state["count"] - before) / (time.perf_counter() - t)

    counter = threading.Thread(target=count, daemon=True)
    counter.start()
    loader = resmooth.Loader(images, labels, BATCH, aug="ra", n=2, m=28, threads=1, prefetch=1)

    def consume():
        end = time.perf_counter() + seconds
        for _ in forever(lambda: iter(loader)):
            if time.perf_counter() > end:
                break

    def python_loop():
        end, x = time.perf_counter() + seconds, 0
        while time.perf_counter() < end:
            x += 1

    idle = counted(lambda: time.sleep(seconds))
    waiting = counted(consume)
    busy = counted(python_loop)
    state["run"] = False
    return idle, waiting, busy


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--images", type=int, default=8192)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--folder")
    ap.add_argument("--json")
    a = ap.parse_args()
    if a.folder:
        images, labels, _ = resmooth.loader._resmooth.read_folder(a.folder, None, "train")
    else:
        images, labels = synthetic(a.images)
    torch.set_num_threads(1)
    print(f"{len(images)} images {images.shape[1]}x{images.shape[2]}, batch {BATCH}, RandAugment(2, 28), two views; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    results = {"images": int(len(images)), "batch": BATCH, "cpus": os.cpu_count(), "throughput": []}
    for t in [int(x) for x in a.threads.split(",")]:
        ref, ours = throughput(images, labels, t, a.seconds)
        results["throughput"].append({"threads": t, "dataloader": ref, "resmooth": ours, "ratio": ours / ref})
        print(f"T={t}: DataLoader + Pillow {ref:10.0f} samples/s   resmooth.Loader {ours:10.0f} samples/s   "
              f"ratio {ours / ref:6.1f}x")
    median, p90 = call_overhead(images, labels)
    results["next_us"] = {"median": median, "p90": p90}
    print(f"Python overhead of one next() with the batch made: median {median:.0f} µs, 90th percentile {p90:.0f} µs")
    idle, waiting, busy = gil_check(images, labels, min(a.seconds, 3.0))
    results["gil"] = {"idle": idle, "waiting_for_loader": waiting, "python_loop": busy}
    print(f"a Python thread counts {idle / 1e6:.2f}M/s while the main thread sleeps, {waiting / 1e6:.2f}M/s while it "
          f"waits for resmooth.Loader, {busy / 1e6:.2f}M/s while it runs Python (GIL shared)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
