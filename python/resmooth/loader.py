"""`resmooth.Loader`: the batches of `resmooth train`, made in Rust on the loader's own threads.

    loader = resmooth.Loader(images, labels, batch_size=128, aug="ra", n=2, m=28, seed=0)
    for batch in loader:                       # one pass is one epoch; the next pass is the next
        x = torch.from_numpy(batch.images).cuda(non_blocking=True)   # (B', H, W, 3) uint8
        ...

Every view depends only on (seed, epoch, sample index, original or augmented): it is the view
`resmooth train --seed S` makes of that sample in that epoch with the same augmentation flags,
whatever the thread count, batch size or shuffle. Epochs count from 1 as in `resmooth train`;
each pass over the loader advances the epoch by one and `set_epoch(e)` sets the next pass's.
The GIL is released while a batch is awaited, and the batches are made ahead (`prefetch`) on
`threads` threads of the loader's own, so the training loop runs while they are made.
"""
import os
from typing import List, NamedTuple, Tuple

import numpy as np

from . import _resmooth

#: The `aug` names the loader takes: the reference's `--aug`.
AUGS = tuple(_resmooth.aug_names())


class Batch(NamedTuple):
    """One step's batch. `images` holds the original views first, then the augmented ones;
    `original` and `augmented` are views of it (no copy). `labels` and `indices` (dataset
    sample indices) follow `images`. `ops[k]` lists what was applied to augmented view k as
    (name, value); `cutouts[k]` is its cutout box (y0, y1, x0, x1), -1 where none: the
    reference zeroes it after normalisation, which `cutout_` does."""

    images: np.ndarray
    original: np.ndarray
    augmented: np.ndarray
    labels: np.ndarray
    indices: np.ndarray
    ops: List[List[Tuple[str, float]]]
    cutouts: np.ndarray

    def cutout_(self, x):
        """Zeroes the cutout boxes in `x`, the batch normalised as an (N, C, H, W) torch tensor
        (N: all images, or only the augmented ones), in place; returns `x`."""
        import torch

        n_aug = len(self.augmented)
        first = x.shape[0] - n_aug
        if first not in (0, len(self.original)):
            raise ValueError(f"x has {x.shape[0]} images; expected {n_aug} augmented or {len(self.images)} in all")
        boxes = [(k, b) for k, b in enumerate(self.cutouts) if b[0] >= 0]
        if boxes:
            mask = np.ones((x.shape[0], 1, x.shape[-2], x.shape[-1]), np.float32)
            for k, (y0, y1, x0, x1) in boxes:
                mask[first + k, :, y0:y1, x0:x1] = 0.0
            x.mul_(torch.from_numpy(mask).to(x.device, non_blocking=True))
        return x


def _default_threads():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Loader:
    """Batches of original and augmented views over an in-memory dataset.

    `images`: uint8 (N, H, W, 3) array, or the path of an ImageFolder tree `root/train/<class>/*`
    (`root/test/` beside it) read as `resmooth train --dataset imagefolder` reads it (`split`,
    `image_size` as `--image-size`; the class names are in `classes`). `labels`: (N,) integers.
    `aug`, `n`, `m`, `cutout`, `crop_padding`: `resmooth train`'s `--aug`, `--N`, `--M`,
    `--cutout`, `--crop-padding` (`policy`: AutoAugment's, "cifar10" or "svhn").
    `two_views=True`: every sample's original and augmented view (2B images, as the reference's
    loader and the detection pass); False: `floor(B * prob)` original views, then augmented
    views of the other samples (`--prob`, as a training step of `resmooth train`).
    """

    def __init__(self, images, labels=None, batch_size=128, *, aug="ra", n=2, m=28, cutout=0, crop_padding=None,
                 policy="cifar10", two_views=True, prob=0.0, seed=0, epoch=1, shuffle=True, drop_last=True,
                 threads=None, prefetch=3, image_size=None, split="train"):
        self.classes = None
        if isinstance(images, (str, os.PathLike)):
            if labels is not None:
                raise ValueError("labels come from the folder's class names; pass labels=None with a folder path")
            images, labels, self.classes = _resmooth.read_folder(os.fspath(images), image_size, split)
        elif labels is None:
            raise ValueError("labels are required with an array of images")
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4:
            raise ValueError(f"images must be a uint8 array of shape (N, H, W, 3), got {images.dtype} {images.shape}")
        labels = np.ascontiguousarray(np.asarray(labels).reshape(-1), dtype=np.int64)
        if threads is None:
            threads = _default_threads()
        if int(threads) < 1 or int(prefetch) < 1:
            raise ValueError(f"threads={threads} and prefetch={prefetch} must be at least 1")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size={batch_size} must be at least 1")
        if int(seed) < 0 or int(epoch) < 0:
            raise ValueError(f"seed={seed} and epoch={epoch} must be >= 0")
        self.batch_size, self.threads = int(batch_size), int(threads)
        spec = {"aug": str(aug), "n": int(n), "m": int(m), "cutout": int(cutout),
                "crop_padding": None if crop_padding is None else int(crop_padding), "policy": str(policy)}
        self._inner = _resmooth.Loader(
            np.ascontiguousarray(images), labels, self.batch_size, spec, bool(two_views), float(prob), int(seed),
            int(epoch), bool(shuffle), bool(drop_last), self.threads, int(prefetch))

    @property
    def epoch(self):
        """The epoch the next pass makes."""
        return self._inner.epoch

    def set_epoch(self, epoch):
        """Sets the epoch of the next pass: its shuffle and every view depend on it."""
        if int(epoch) < 0:
            raise ValueError(f"epoch={epoch} must be >= 0")
        self._inner.set_epoch(int(epoch))

    def __len__(self):
        return len(self._inner)

    def __iter__(self):
        # the epoch starts here, not at the first next(): its batches are made meanwhile
        epoch = self._inner.epoch
        self._inner.start()
        self._inner.set_epoch(epoch + 1)
        return self._batches()

    def _batches(self):
        while True:
            got = self._inner.next_batch()
            if got is None:
                return
            images, labels, indices, n_ori, ops, cutouts = got
            yield Batch(images, images[:n_ori], images[n_ori:], labels, indices, ops, cutouts)
