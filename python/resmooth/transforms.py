"""The reference's augmentations as torchvision-style transforms, in Rust, pixel-exact with Pillow.

Each is a callable on a PIL RGB image or a uint8 (H, W, 3) numpy array that returns the same
type, so it drops into `torchvision.transforms.Compose`:

    T.Compose([resmooth.transforms.RandAugment(2, 28), resmooth.transforms.RandomCrop(32, 4),
               resmooth.transforms.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std),
               resmooth.transforms.Cutout(16)])

`t.apply(img)` returns the image and what was applied, `[(name, value), ...]`.

Randomness. Without `seed`, every call draws a 64-bit key from Python's global `random` and
seeds the call's generator with it. PyTorch's DataLoader seeds `random` in each worker with
`base_seed + worker_id`, `base_seed` drawn anew each epoch from the main process's torch
generator: so workers draw differently from each other and from epoch to epoch, and
`torch.manual_seed(s)` (or `random.seed(s)` without workers) makes a run repeatable, as with
torchvision's own transforms. With `seed=s` the transform draws its keys from its own
`random.Random(s)`: one reproducible stream, which DataLoader copies into every worker, so every
worker would repeat the same draws: call `t.reseed(s + worker_id)` in `worker_init_fn`, or leave
`seed` out. (`resmooth.Loader` makes the views of `resmooth train` instead: every view depends on
seed, epoch and sample only, whatever the threads.)
"""
import random

import numpy as np

from . import _resmooth
from ._image import as_array, draw_key

# a 1x1 image the constructors hand to the extension once, so bad parameters fail there
_PROBE = np.zeros((1, 1, 3), np.uint8)


def _applied(ops):
    """The extension's (name, [values]) as (name, value) or (name, (values...))."""
    return [(name, v[0] if len(v) == 1 else tuple(int(x) for x in v)) for name, v in ops]


class _Random:
    """A random transform run by the extension's `augment` with the parameters of `_params`."""

    kind = None

    def __init__(self, seed=None):
        self.reseed(seed)

    def reseed(self, seed):
        """Draws from `random.Random(seed)` from now on (None: from Python's global `random`)."""
        self.seed = seed
        self._rng = None if seed is None else random.Random(seed)

    def _params(self):
        return {}

    def apply(self, img):
        """The transformed image (same type as `img`) and the ops applied, [(name, value), ...]."""
        arr, back = as_array(img)
        out, ops = _resmooth.augment(arr, draw_key(self._rng), self.kind, **self._params())
        return back(out), _applied(ops)

    def __call__(self, img):
        return self.apply(img)[0]

    def __repr__(self):
        args = [f"{k}={v!r}" for k, v in self._params().items()]
        if self.seed is not None:
            args.append(f"seed={self.seed!r}")
        return f"{type(self).__name__}({', '.join(args)})"


class RandAugment(_Random):
    """The reference's RandAugment(N, M): `n` ops drawn with replacement from its 14, each at
    `m / 30 * (max - min) + min`, the geometric ones with a random sign (m in 0..=30)."""

    kind = "randaugment"

    def __init__(self, n=2, m=28, seed=None):
        super().__init__(seed)
        self.n, self.m = int(n), int(m)
        _resmooth.augment(_PROBE, 0, self.kind, **self._params())  # checks m's range

    def _params(self):
        return {"n": self.n, "m": self.m}


class Severe(_Random):
    """The reference's SevereAugment(N, M): `n` of large shears, translations and a grey cutout
    square (m in 0..=10)."""

    kind = "severe"

    def __init__(self, n=2, m=10, seed=None):
        super().__init__(seed)
        self.n, self.m = int(n), int(m)
        _resmooth.augment(_PROBE, 0, self.kind, **self._params())

    def _params(self):
        return {"n": self.n, "m": self.m}


class AutoAugment(_Random):
    """torchvision's AutoAugment with the CIFAR-10 or SVHN policy (`policy`: "cifar10", "svhn" or
    torchvision's `AutoAugmentPolicy`), as the reference uses it."""

    kind = "autoaugment"

    def __init__(self, policy="cifar10", seed=None):
        super().__init__(seed)
        self.policy = str(getattr(policy, "value", policy)).lower()
        _resmooth.augment(_PROBE, 0, self.kind, **self._params())

    def _params(self):
        return {"policy": self.policy}


class Rotate(_Random):
    """A rotation by 90, 180 or 270 degrees, drawn uniformly (the reference's `--aug rotate`)."""

    kind = "rotate"


class Jigsaw(_Random):
    """The 2x2 patches put back in a uniformly drawn non-identity order (`--aug jigsaw`); the
    value recorded is the permutation's digits."""

    kind = "jigsaw"


class Blur(_Random):
    """Pillow's GaussianBlur with sigma drawn from U(0.6, 2.0) (`--aug blur`)."""

    kind = "blur"


class Sobel(_Random):
    """scikit-image's Sobel edge magnitude, `uint8(sobel(img) * 255)` (`--aug sobel`)."""

    kind = "sobel"


class RandomVerticalFlip(_Random):
    """A vertical flip, always (the reference's `--aug vertical` inserts RandomVerticalFlip(p=1))."""

    kind = "vertical"


class Cutout(_Random):
    """The reference's cutout: a box of side `size` around a centre drawn uniformly over the
    pixels, clipped at the borders. The reference zeroes it on the normalised tensor: given a
    tensor (C, H, W), the box is set to `fill` (default 0), so put Cutout after Normalize as the
    reference does; on a PIL image or uint8 array it is painted in `fill` (a grey level or an
    RGB triple)."""

    kind = "cutout"

    def __init__(self, size=16, fill=0, seed=None):
        super().__init__(seed)
        if int(size) < 0:
            raise ValueError(f"Cutout size={size} must be >= 0")
        self.size, self.fill = int(size), fill

    def _params(self):
        fill = self.fill
        rgb = (fill,) * 3 if isinstance(fill, (int, float)) else tuple(fill)
        if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
            raise ValueError(f"Cutout fill={fill!r} must be a grey level or an RGB triple in 0..=255 for images")
        return {"size": self.size, "fill": tuple(int(v) for v in rgb)}

    def apply(self, img):
        if hasattr(img, "clone") and hasattr(img, "shape") and len(img.shape) >= 2:  # a torch tensor
            h, w = int(img.shape[-2]), int(img.shape[-1])
            y0, y1, x0, x1 = _resmooth.cutout_box(h, w, self.size, draw_key(self._rng))
            out = img.clone()
            out[..., y0:y1, x0:x1] = self.fill
            return out, [("Cutout", (y0, y1, x0, x1))]
        return super().apply(img)

    def __repr__(self):
        return f"Cutout(size={self.size}, fill={self.fill!r})"


class RandomCrop(_Random):
    """torchvision's RandomCrop(size, padding) with zero fill, as the reference uses it: the
    crop is the image's own size (`size` must match it), its offset drawn in [0, 2 * padding]."""

    kind = "crop"

    def __init__(self, size, padding=4, seed=None):
        super().__init__(seed)
        self.size = (int(size), int(size)) if isinstance(size, (int, float)) else tuple(int(s) for s in size)
        if int(padding) < 0:
            raise ValueError(f"RandomCrop padding={padding} must be >= 0")
        self.padding = int(padding)

    def _params(self):
        return {"padding": self.padding}

    def apply(self, img):
        arr, _ = as_array(img)
        if tuple(arr.shape[:2]) != self.size:
            raise ValueError(
                f"RandomCrop(size={self.size}) crops to the image's own size as the reference does, "
                f"but the image is {arr.shape[0]}x{arr.shape[1]}; resize it first (e.g. T.Resize + T.CenterCrop)"
            )
        return super().apply(img)

    def __repr__(self):
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip(_Random):
    """A horizontal flip with probability `p` (torchvision's RandomHorizontalFlip)."""

    kind = "hflip"

    def __init__(self, p=0.5, seed=None):
        super().__init__(seed)
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"RandomHorizontalFlip p={p} must be within [0, 1]")
        self.p = float(p)

    def _params(self):
        return {"p": self.p}
