"""resmooth for PyTorch users: ReSmooth's augmentations (pixel-exact with Pillow), its two-view
batch loader and GMM, in Rust with the GIL released; its losses as torch modules.

- `resmooth.transforms`: RandAugment, AutoAugment, Severe, Rotate, Jigsaw, Blur, Sobel, Cutout,
  RandomCrop, RandomHorizontalFlip, RandomVerticalFlip (torchvision-style callables);
- `resmooth.ops.apply(image, op, value)`: one op with a given value;
- `resmooth.Loader`: the batches of `resmooth train` over an in-memory dataset;
- `resmooth.gmm.fit(losses)`: the method's GMM on log-losses, and p_ID;
- `resmooth.losses`: LabelSmooth, SampleSmooth, Distillation (imports torch).
"""
from . import gmm, ops, transforms
from .loader import Batch, Loader

__all__ = ["Batch", "Loader", "gmm", "losses", "ops", "transforms"]


def __getattr__(name):
    # resmooth.losses needs torch; everything else runs on numpy alone
    if name == "losses":
        from . import losses

        return losses
    raise AttributeError(f"module 'resmooth' has no attribute {name!r}")
