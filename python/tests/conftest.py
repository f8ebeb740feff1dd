"""Shared pieces of the Python package's tests: images made here, the Pillow rendering of the
reference's ops (scripts/make_augment_fixtures.py, the one owner of it) and the resmooth binary."""
import os
import shutil
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "scripts"))


def make_image(seed, h=32, w=32):
    """A synthetic RGB image with gradients, blocks of flat colour and noise: content every op
    changes (edges for the filters, several levels for equalize and autocontrast)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x * 7 + y * 3) % 256], -1).astype(np.int64)
    for _ in range(3):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        img[y0:y0 + rng.integers(2, h // 2 + 3), x0:x0 + rng.integers(2, w // 2 + 3)] = rng.integers(0, 256, 3)
    img += rng.integers(-12, 13, img.shape)
    return np.ascontiguousarray(img.clip(0, 255).astype(np.uint8))


#: (seed, height, width) of the test images: square, wide, tall and odd sides
IMAGES = [(1, 32, 32), (2, 17, 23), (3, 40, 28), (4, 9, 9), (5, 64, 64)]


@pytest.fixture(params=IMAGES, ids=[f"{h}x{w}" for _, h, w in IMAGES])
def image(request):
    seed, h, w = request.param
    return make_image(seed, h, w)


@pytest.fixture(scope="session")
def resmooth_bin():
    """The resmooth binary: $RESMOOTH_BIN, else target/release or target/debug. Where CI sets
    RESMOOTH_REQUIRE_BIN=1 a missing binary fails the test instead of skipping it."""
    candidates = [os.environ.get("RESMOOTH_BIN"), os.path.join(REPO, "target", "release", "resmooth"),
                  os.path.join(REPO, "target", "debug", "resmooth"), shutil.which("resmooth")]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    if os.environ.get("RESMOOTH_REQUIRE_BIN") == "1":
        pytest.fail("the resmooth binary is missing: build it with cargo build --release")
    pytest.skip("the resmooth binary is not built (cargo build --release)")
