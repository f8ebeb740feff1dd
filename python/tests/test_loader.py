"""resmooth.Loader: the views `resmooth train` makes (checked against `resmooth augment views`),
independent of threads and batch size, epochs, shuffling, drop_last and the arrays' layout."""
import json
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

import resmooth
from conftest import make_image


def folder(tmp_path, classes=3, per_class=4, h=32, w=32):
    """An ImageFolder tree root/{train,test}/<class>/*.png of images made here, and the training
    images and labels in the order it is read (classes, then files, sorted by name)."""
    images, labels = [], []
    for c in range(classes):
        for split, count in [("train", per_class), ("test", 1)]:
            d = tmp_path / "tree" / split / f"class{c}"
            d.mkdir(parents=True)
            for i in range(count):
                img = make_image(100 * c + 10 * i + (split == "test"), h, w)
                Image.fromarray(img).save(d / f"img{i:02d}.png")
                if split == "train":
                    images.append(img)
                    labels.append(c)
    return tmp_path / "tree", np.stack(images), np.array(labels)


def views_by_index(loader):
    """{sample: (original, augmented, ops, cutout)} over one pass of a two-view loader."""
    out = {}
    for b in loader:
        n = len(b.original)
        assert len(b.augmented) == n and np.array_equal(b.indices[:n], b.indices[n:])
        for k in range(n):
            out[int(b.indices[k])] = (b.original[k], b.augmented[k], b.ops[k], tuple(b.cutouts[k]))
    return out


@pytest.mark.parametrize("aug,flags", [
    ("ra", {"n": 2, "m": 28, "cutout": 8}),
    ("aa", {"cutout": 0, "crop_padding": 2}),
    ("jigsaw", {"cutout": 16}),
    ("severe", {"n": 2, "m": 10}),
])
def test_views_are_resmooth_trains(tmp_path, resmooth_bin, aug, flags):
    root, images, labels = folder(tmp_path)
    seed, epoch, indices = 5, 3, [0, 3, 7, 11]
    out = tmp_path / "views"
    cli = {"n": "--N", "m": "--M", "cutout": "--cutout", "crop_padding": "--crop-padding"}
    args = [resmooth_bin, "augment", "views", "--dataset", "imagefolder", "--dataroot", str(root), "--aug", aug,
            "--seed", str(seed), "--epoch", str(epoch), "--index", ",".join(map(str, indices)), "--out", str(out)]
    for k, v in flags.items():
        args += [cli[k], str(v)]
    run = subprocess.run(args, capture_output=True, text=True, check=True)
    lines = {j["index"]: j for j in map(json.loads, run.stdout.splitlines())}

    common = dict(batch_size=5, aug=aug, seed=seed, epoch=epoch, drop_last=False, threads=2, **flags)
    for loader in [resmooth.Loader(str(root), **common), resmooth.Loader(images, labels, **common)]:
        views = views_by_index(loader)
        assert sorted(views) == list(range(len(images)))
        for i in indices:
            ori, augd, ops, cutout = views[i]
            np.testing.assert_array_equal(ori, np.asarray(Image.open(out / f"{i}_original.png")))
            np.testing.assert_array_equal(augd, np.asarray(Image.open(out / f"{i}_augmented.png")))
            assert [name for name, _ in ops] == [name for name, _ in lines[i]["ops"]]
            np.testing.assert_allclose([v for _, v in ops], [v for _, v in lines[i]["ops"]], rtol=1e-6)
            assert cutout == (tuple(lines[i]["cutout"]) if lines[i]["cutout"] else (-1, -1, -1, -1))
            assert lines[i]["label"] == labels[i]
    assert resmooth.Loader(str(root), **common).classes == ["class0", "class1", "class2"]


def test_views_depend_on_seed_epoch_and_sample_only():
    images = np.stack([make_image(s, 16, 16) for s in range(21)])
    labels = np.arange(21) % 4
    base = views_by_index(resmooth.Loader(images, labels, 4, seed=1, epoch=2, threads=1, drop_last=False))
    other = views_by_index(resmooth.Loader(images, labels, 7, seed=1, epoch=2, threads=3, shuffle=False,
                                           drop_last=False, prefetch=1))
    for i in range(21):
        for a, b in zip(base[i][:2], other[i][:2]):
            np.testing.assert_array_equal(a, b)
        assert base[i][2] == other[i][2]
    epoch3 = views_by_index(resmooth.Loader(images, labels, 4, seed=1, epoch=3, drop_last=False))
    assert sum(np.array_equal(base[i][1], epoch3[i][1]) for i in range(21)) < 3
    seed2 = views_by_index(resmooth.Loader(images, labels, 4, seed=2, epoch=2, drop_last=False))
    assert sum(np.array_equal(base[i][1], seed2[i][1]) for i in range(21)) < 3


def test_epochs_shuffle_drop_last_and_mixed_batches():
    images = np.stack([make_image(s, 8, 8) for s in range(10)])
    loader = resmooth.Loader(images, np.arange(10), 4, seed=0)
    assert len(loader) == 2 and loader.epoch == 1
    first = [b.indices[:4].tolist() for b in loader]
    assert loader.epoch == 2, "a pass advances the epoch"
    second = [b.indices[:4].tolist() for b in loader]
    assert first != second and len(first) == 2 and all(len(o) == 4 for o in first)
    loader.set_epoch(1)
    assert [b.indices[:4].tolist() for b in loader] == first, "set_epoch replays an epoch"
    keep = resmooth.Loader(images, np.arange(10), 4, shuffle=False, drop_last=False)
    assert len(keep) == 3 and [b.indices[:len(b.original)].tolist() for b in keep][-1] == [8, 9]
    mixed = resmooth.Loader(images, np.arange(10), 4, two_views=False, prob=0.5, aug="rotate")
    for b in mixed:
        assert len(b.original) == 2 and len(b.augmented) == 2 and len(b.labels) == 4
        assert len(set(b.indices.tolist())) == 4, "mixed batches view each sample once"
        assert all(ops[0][0] == "Rotate" for ops in b.ops)


def test_batches_go_to_torch_as_they_are_and_cutout_zeroes_after_normalising():
    images = np.stack([make_image(s) for s in range(8)])
    b = next(iter(resmooth.Loader(images, np.arange(8), 4, cutout=16, seed=3)))
    x = torch.from_numpy(b.images)
    assert x.dtype == torch.uint8 and x.shape == (8, 32, 32, 3) and x.is_contiguous()
    assert torch.from_numpy(b.augmented).is_contiguous() and torch.from_numpy(b.labels).dtype == torch.int64
    norm = x.permute(0, 3, 1, 2).float().div(255).sub(0.5).div(0.25) + 0.0001
    b.cutout_(norm)
    for k, (y0, y1, x0, x1) in enumerate(b.cutouts):
        box = norm[4 + k, :, y0:y1, x0:x1]
        assert box.numel() > 0 and torch.all(box == 0)
    assert torch.all(norm[:4] != 0), "original views have no cutout"
    aug_only = x[4:].permute(0, 3, 1, 2).float() + 1
    b.cutout_(aug_only)
    assert (aug_only == 0).sum() == (norm[4:] == 0).sum()


def test_bad_input_is_a_clear_error(tmp_path):
    images = np.zeros((4, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="aug='rand' is not known; expected one of ra, aa"):
        resmooth.Loader(images, np.arange(4), 2, aug="rand")
    with pytest.raises(ValueError, match="m=31 is outside 0..=30"):
        resmooth.Loader(images, np.arange(4), 2, m=31)
    with pytest.raises(ValueError, match="3 labels for 4 images"):
        resmooth.Loader(images, np.arange(3), 2)
    with pytest.raises(ValueError, match=r"uint8 array of shape \(N, H, W, 3\)"):
        resmooth.Loader(images.astype(np.float32), np.arange(4), 2)
    with pytest.raises(ValueError, match="labels are required"):
        resmooth.Loader(images, None, 2)
    with pytest.raises(ValueError, match="batch_size=0"):
        resmooth.Loader(images, np.arange(4), 0)
    with pytest.raises(ValueError, match="train"):
        resmooth.Loader(str(tmp_path / "missing"))
    # a strided view of a larger array is copied into place, not refused
    big = np.zeros((4, 8, 16, 3), np.uint8)
    assert len(resmooth.Loader(big[:, :, ::2], np.arange(4), 2)) == 2
