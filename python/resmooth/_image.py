"""Images in and out of the extension: PIL images and uint8 HWC arrays, each returned as it came."""
import random

import numpy as np

try:  # Pillow is optional: arrays work without it
    from PIL import Image as _PILImage
except ImportError:  # pragma: no cover - exercised only without Pillow
    _PILImage = None


def as_array(img):
    """`img` as a C-contiguous uint8 (H, W, 3) array and a function that turns a result back
    into the type `img` came as (PIL image or array)."""
    if _PILImage is not None and isinstance(img, _PILImage.Image):
        if img.mode != "RGB":
            raise ValueError(f"expected an RGB image, got mode {img.mode!r}; convert it with img.convert('RGB')")
        return np.asarray(img), lambda out: _PILImage.fromarray(out, "RGB")
    if isinstance(img, np.ndarray):
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(
                f"expected a uint8 array of shape (H, W, 3), got {img.dtype} of shape {img.shape}; "
                "for a CHW tensor pass tensor.permute(1, 2, 0).numpy()"
            )
        return np.ascontiguousarray(img), lambda out: out
    raise TypeError(f"expected a PIL image or a uint8 (H, W, 3) numpy array, got {type(img).__name__}")


def draw_key(rng):
    """A 64-bit key for one call's generator: from `rng` (a seeded `random.Random`) or, when it is
    None, from Python's global `random`, which PyTorch's DataLoader seeds per worker and epoch."""
    return (rng or random).getrandbits(64)
