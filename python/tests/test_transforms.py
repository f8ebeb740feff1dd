"""resmooth.transforms against Pillow, torchvision and scikit-image on images the tests make: each
transform reports what it drew, and the reference's functions given those draws give the same
pixels."""
import pickle
import random

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from make_augment_fixtures import RA, SEVERE, ra_op
from PIL import Image, ImageFilter
from skimage import filters
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F
from torchvision.transforms.autoaugment import AutoAugment as TvAutoAugment
from torchvision.transforms.autoaugment import AutoAugmentPolicy, _apply_op

from conftest import make_image
from resmooth import transforms as RT

RANGES = {name: (lo, hi) for name, lo, hi, _ in RA}


def exact(value, candidates):
    """The candidate the reported (float32) value stands for."""
    best = min(candidates, key=lambda c: abs(c - value))
    assert abs(best - value) < 1e-5, f"{value} is none of {candidates}"
    return best


@pytest.mark.parametrize("m", [0, 9, 28, 30])
def test_randaugment_is_the_reference_ops_on_pillow(image, m):
    t = RT.RandAugment(3, m, seed=m)
    for _ in range(12):
        out, applied = t.apply(image)
        assert len(applied) == 3
        want = Image.fromarray(image)
        for name, value in applied:
            lo, hi = RANGES[name]
            v = m / 30 * (hi - lo) + lo
            want = ra_op(name, want, exact(value, [v, -v]))
        np.testing.assert_array_equal(out, np.asarray(want), err_msg=str(applied))


def test_autoaugment_is_torchvisions_ops(image):
    h, w = image.shape[:2]
    for policy in ("cifar10", AutoAugmentPolicy.SVHN):
        space = TvAutoAugment(AutoAugmentPolicy(getattr(policy, "value", policy)))._augmentation_space(10, (h, w))
        t = RT.AutoAugment(policy, seed=1)
        for _ in range(40):
            out, applied = t.apply(image)
            want = Image.fromarray(image)
            for name, value in applied:
                mags, signed = space[name]
                bins = [float(b) for b in mags.reshape(-1)] or [0.0]
                cands = bins + ([-b for b in bins] if signed else [])
                want = _apply_op(want, name, exact(value, cands), InterpolationMode.NEAREST, None)
            np.testing.assert_array_equal(out, np.asarray(want), err_msg=str(applied))
    with pytest.raises(ValueError, match="'imagenet' is not known"):
        RT.AutoAugment("imagenet")


def test_severe_is_the_reference_ops_with_its_grey_square(image):
    ranges = {name: hi for name, _, hi in SEVERE}
    checked = 0
    for seed in range(60):
        out, applied = RT.Severe(2, 7, seed=seed).apply(image)
        if any(name == "Cutout" for name, _ in applied):
            continue  # its two uniform draws are not reported; tests/augment_golden.rs covers it
        want = Image.fromarray(image)
        for name, value in applied:
            v = 7 / 10 * ranges[name]
            want = ra_op(name, want, exact(value, [v, -v]))
        np.testing.assert_array_equal(out, np.asarray(want), err_msg=str(applied))
        checked += 1
    assert checked >= 20
    with pytest.raises(ValueError, match="m=11 is outside 0..=10"):
        RT.Severe(2, 11)


def test_blur_sobel_rotate_and_vertical_flip(image):
    pil = Image.fromarray(image)
    for seed in range(5):
        out, [(name, sigma)] = RT.Blur(seed=seed).apply(image)
        assert name == "GaussianBlur" and 0.6 <= sigma < 2.0
        np.testing.assert_array_equal(out, np.asarray(pil.filter(ImageFilter.GaussianBlur(radius=sigma))))
    np.testing.assert_array_equal(RT.Sobel()(image), np.uint8(filters.sobel(image) * 255))
    angles = set()
    for seed in range(30):
        out, [(name, angle)] = RT.Rotate(seed=seed).apply(image)
        angles.add(angle)
        np.testing.assert_array_equal(out, np.asarray(F.rotate(pil, angle)))
    assert angles == {90.0, 180.0, 270.0}
    np.testing.assert_array_equal(RT.RandomVerticalFlip()(image), image[::-1])


def test_jigsaw_puts_the_quarters_in_the_drawn_order(image):
    h, w = image.shape[:2]
    ph, pw = h // 2, w // 2
    quarters = [image[y * ph:(y + 1) * ph, x * pw:(x + 1) * pw] for y in (0, 1) for x in (0, 1)]
    seen = set()
    for seed in range(80):
        out, [(name, code)] = RT.Jigsaw(seed=seed).apply(image)
        perm = [int(d) for d in f"{int(code):04d}"]
        assert sorted(perm) == [0, 1, 2, 3] and perm != [0, 1, 2, 3]
        seen.add(tuple(perm))
        for p, s in enumerate(perm):
            y, x = p // 2, p % 2
            np.testing.assert_array_equal(out[y * ph:(y + 1) * ph, x * pw:(x + 1) * pw], quarters[s])
        # with odd sides the last row and column stay
        np.testing.assert_array_equal(out[2 * ph:], image[2 * ph:])
        np.testing.assert_array_equal(out[:, 2 * pw:], image[:, 2 * pw:])
    assert len(seen) >= 18, "the 23 non-identity orders are drawn"


def test_cutout_on_images_and_on_normalised_tensors(image):
    h, w = image.shape[:2]
    for seed in range(20):
        out, [(_, (y0, y1, x0, x1))] = RT.Cutout(8, fill=(1, 2, 3), seed=seed).apply(image)
        assert 0 <= y0 <= y1 <= h and 0 <= x0 <= x1 <= w and y1 - y0 <= 8 and x1 - x0 <= 8
        want = image.copy()
        want[y0:y1, x0:x1] = (1, 2, 3)
        np.testing.assert_array_equal(out, want)
    x = torch.randn(3, h, w)
    out, [(_, (y0, y1, x0, x1))] = RT.Cutout(6, seed=3).apply(x)
    assert torch.all(out[:, y0:y1, x0:x1] == 0)
    mask = torch.ones(h, w, dtype=torch.bool)
    mask[y0:y1, x0:x1] = False
    assert torch.equal(out[:, mask], x[:, mask]), "only the box changes, and the input is left alone"


def test_random_crop_and_horizontal_flip_are_torchvisions(image):
    h, w = image.shape[:2]
    padded = np.pad(image, ((3, 3), (3, 3), (0, 0)))
    offsets = set()
    for seed in range(200):
        out, [(name, (top, left))] = RT.RandomCrop((h, w), padding=3, seed=seed).apply(image)
        offsets.add((top, left))
        np.testing.assert_array_equal(out, padded[top:top + h, left:left + w])
        # torchvision's RandomCrop with the same offset
        want = F.crop(F.pad(Image.fromarray(image), 3, fill=0), top, left, h, w)
        np.testing.assert_array_equal(out, np.asarray(want))
    assert {t for t, _ in offsets} == set(range(7)) and {l for _, l in offsets} == set(range(7))
    flips = [RT.RandomHorizontalFlip(seed=s).apply(image) for s in range(40)]
    for out, applied in flips:
        np.testing.assert_array_equal(out, image[:, ::-1] if applied else image)
    assert 5 < sum(bool(a) for _, a in flips) < 35
    np.testing.assert_array_equal(RT.RandomHorizontalFlip(p=1.0)(image), image[:, ::-1])
    np.testing.assert_array_equal(RT.RandomHorizontalFlip(p=0.0)(image), image)
    with pytest.raises(ValueError, match="crops to the image's own size"):
        RT.RandomCrop(h + 1, 4)(image)


def test_same_type_out_and_usable_in_compose():
    pil = Image.fromarray(make_image(7))
    for t in [RT.RandAugment(2, 28), RT.AutoAugment(), RT.Rotate(), RT.Jigsaw(), RT.Cutout(16), RT.Severe(2, 10),
              RT.Blur(), RT.Sobel(), RT.RandomCrop(32, 4), RT.RandomHorizontalFlip(), RT.RandomVerticalFlip()]:
        out = t(pil)
        assert isinstance(out, Image.Image) and out.size == pil.size, repr(t)
        assert isinstance(t(np.asarray(pil)), np.ndarray), repr(t)
    compose = T.Compose([RT.RandAugment(2, 28), RT.RandomCrop(32, padding=4), RT.RandomHorizontalFlip(),
                         T.ToTensor(), T.Normalize((0.49, 0.48, 0.45), (0.2, 0.2, 0.2)), RT.Cutout(16)])
    x = compose(pil)
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert "RandAugment(n=2, m=28)" in repr(compose)


def test_randomness_follows_pythons_random_or_the_seed():
    img = make_image(8)
    t = RT.RandAugment(2, 28)
    random.seed(11)
    first = [t.apply(img)[1] for _ in range(5)]
    random.seed(11)
    assert [t.apply(img)[1] for _ in range(5)] == first, "random.seed makes calls repeatable"
    assert len({str(a) for a in first}) > 1, "successive calls draw differently"
    a, b = RT.RandAugment(2, 28, seed=4), RT.RandAugment(2, 28, seed=4)
    assert [a.apply(img)[1] for _ in range(4)] == [b.apply(img)[1] for _ in range(4)]
    c = pickle.loads(pickle.dumps(a))
    assert c.apply(img)[1] == a.apply(img)[1], "a pickled copy (a DataLoader worker's) carries the stream"


class _Same(torch.utils.data.Dataset):
    """The same image at every index, transformed: only the draws tell the samples apart."""

    def __init__(self, transform):
        self.img, self.transform = Image.fromarray(make_image(9)), transform

    def __len__(self):
        return 16

    def __getitem__(self, i):
        return torch.from_numpy(np.asarray(self.transform(self.img)).copy())


def test_dataloader_workers_draw_differently_and_repeat_under_manual_seed():
    def run():
        torch.manual_seed(5)
        loader = torch.utils.data.DataLoader(_Same(RT.RandAugment(2, 28)), batch_size=4, num_workers=2)
        return torch.cat(list(loader))

    views = run()
    distinct = {bytes(v.numpy()) for v in views}
    assert len(distinct) >= 12, "each worker (and each sample) draws its own ops"
    assert torch.equal(run(), views), "torch.manual_seed in the main process repeats the run"
