"""resmooth.ops.apply against the reference's op functions run by Pillow."""
import numpy as np
import pytest
from make_augment_fixtures import RA, ra_op
from PIL import Image

import resmooth
from resmooth import ops

MAGNITUDES = [0, 1, 9, 14, 15, 22, 28, 30]
EXTRA = {"ShearX": [1.0, -2.0, 0.05], "TranslateY": [1.0, -0.031, 0.5], "Rotate": [45.0, -90.0, 123.4, -0.5],
         "Solarize": [0.0, 1.0, 128.0, 255.5], "Posterize": [1.0, 2.0, 5.9], "Color": [0.0, 2.5, -0.5],
         "Brightness": [0.0, 2.5], "Sharpness": [0.0, 2.5, -0.5], "Contrast": [0.0, 0.1, 0.5, 1.3, 1.9, 2.5]}


def cases():
    """(op, value): each RandAugment op at the reference's magnitudes with both signs, and more."""
    for name, lo, hi, signed in RA + [("Contrast", 0.1, 1.9, False)]:
        values = [m / 30 * (hi - lo) + lo for m in MAGNITUDES]
        values += [-v for v in values if signed and v != 0] + EXTRA.get(name, [])
        for v in values:
            yield name, float(v)


@pytest.mark.parametrize("op,value", list(cases()))
def test_each_op_is_pillows_pixels(image, op, value):
    want = np.asarray(ra_op(op, Image.fromarray(image), value))
    got = ops.apply(image, op, value)
    assert isinstance(got, np.ndarray) and got.dtype == np.uint8 and got.shape == image.shape
    np.testing.assert_array_equal(got, want, err_msg=f"{op} {value}")


def test_pil_images_come_back_as_pil_images(image):
    pil = Image.fromarray(image)
    got = ops.apply(pil, "shearx", -0.28)
    assert isinstance(got, Image.Image) and got.mode == "RGB" and got.size == pil.size
    np.testing.assert_array_equal(np.asarray(got), np.asarray(ra_op("ShearX", pil, -0.28)))


def test_names_and_bad_input_are_clear_errors():
    assert set(ops.NAMES) == {name for name, *_ in RA} | {"Contrast"}
    img = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="unknown op 'Blur'.*Sharpness"):
        ops.apply(img, "Blur", 1.0)
    with pytest.raises(ValueError, match="finite"):
        ops.apply(img, "Rotate", float("nan"))
    with pytest.raises(ValueError, match=r"convert\('RGB'\)"):
        ops.apply(Image.new("L", (4, 4)), "Rotate", 1.0)
    with pytest.raises(ValueError, match="uint8 array of shape"):
        ops.apply(img.astype(np.float32), "Rotate", 1.0)
    with pytest.raises(TypeError, match="PIL image or a uint8"):
        ops.apply([[1, 2, 3]], "Rotate", 1.0)
    # non-contiguous arrays are accepted (copied) and give the same pixels
    wide = np.zeros((4, 8, 3), np.uint8)
    wide[:, ::2] = 200
    np.testing.assert_array_equal(ops.apply(wide[:, ::2], "Invert", 0), 55)
    assert resmooth.ops is ops
