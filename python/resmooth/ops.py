"""One op with a given value, pixel-identical to the reference's Pillow functions (its
`augmentations.py` ops with the random sign already chosen): what `resmooth augment apply` does.

    resmooth.ops.apply(image, "ShearX", -0.28)
"""
from . import _resmooth
from ._image import as_array

#: The op names `apply` takes (case-insensitive), the reference's spelling.
NAMES = tuple(_resmooth.op_names())


def apply(image, op, value):
    """`op` applied to `image` (PIL RGB image or uint8 HWC array, returned as the same type) with
    `value` as the reference passes it to Pillow: a shear factor, a fraction of the side for
    translations, degrees, a threshold, bits, or an enhancement factor."""
    arr, back = as_array(image)
    return back(_resmooth.apply_op(arr, op, float(value)))
