#!/usr/bin/env python3
"""Writes the golden fixtures of the augmentation tests: small synthetic RGB images and what
Pillow (RandAugment's ops, as the reference calls them, without the random sign) and torchvision
(AutoAugment's `_apply_op`, `F.rotate`) make of them.

Run by hand from the repository root, with Pillow and torchvision in .venv:
    .venv/bin/python scripts/make_augment_fixtures.py
Output: tests/fixtures/augment/ (inputs, one PNG strip of expected outputs per op and image,
the values in manifest.json). The Rust tests read only these files.
"""
import json
import os

import numpy as np
import PIL
import torchvision
from PIL import Image, ImageEnhance, ImageOps
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F
from torchvision.transforms.autoaugment import AutoAugment, AutoAugmentPolicy, _apply_op

OUT = os.path.join("tests", "fixtures", "augment")


def synthetic_images():
    rng = np.random.default_rng(20261128)
    y, x = np.mgrid[0:32, 0:32]
    grad = np.stack([x * 8, y * 8, (x + y) * 4], -1).astype(np.int64)
    grad[6:14, 18:28] = [250, 240, 30]
    grad[(y - 22) ** 2 + (x - 9) ** 2 < 30] = [20, 40, 200]
    noise = rng.integers(0, 256, (16, 16, 3))
    # non-square, low contrast, a few levels: exercises autocontrast/equalize and the axes
    rect = rng.integers(60, 140, (3, 5, 3)).repeat(4, 0).repeat(4, 1)
    rect[5:7, 2:15] = [135, 70, 100]
    return {
        "grad": grad.clip(0, 255).astype(np.uint8),
        "noise": noise.astype(np.uint8),
        "rect": rect.astype(np.uint8),
    }


def ra_op(name, img, v):
    """The reference's op functions with the sign already chosen."""
    if name == "Identity":
        return img
    if name == "ShearX":
        return img.transform(img.size, Image.AFFINE, (1, v, 0, 0, 1, 0))
    if name == "ShearY":
        return img.transform(img.size, Image.AFFINE, (1, 0, 0, v, 1, 0))
    if name == "TranslateX":
        return img.transform(img.size, Image.AFFINE, (1, 0, v * img.size[0], 0, 1, 0))
    if name == "TranslateY":
        return img.transform(img.size, Image.AFFINE, (1, 0, 0, 0, 1, v * img.size[1]))
    if name == "Rotate":
        return img.rotate(v)
    if name == "AutoContrast":
        return ImageOps.autocontrast(img)
    if name == "Invert":
        return ImageOps.invert(img)
    if name == "Equalize":
        return ImageOps.equalize(img)
    if name == "Solarize":
        return ImageOps.solarize(img, v)
    if name == "Posterize":
        return ImageOps.posterize(img, int(v))
    enhancer = {"Color": ImageEnhance.Color, "Brightness": ImageEnhance.Brightness,
                "Sharpness": ImageEnhance.Sharpness, "Contrast": ImageEnhance.Contrast}[name]
    return enhancer(img).enhance(v)


# (name, min, max, signed) as in the reference's augment_list; Contrast is AutoAugment's
RA = [("Identity", 0.0, 1.0, False), ("ShearX", 0.0, 0.3, True), ("ShearY", 0.0, 0.3, True),
      ("TranslateX", 0.0, 0.45, True), ("TranslateY", 0.0, 0.45, True), ("Rotate", 0, 30, True),
      ("AutoContrast", 0, 1, False), ("Invert", 0, 1, False), ("Equalize", 0, 1, False),
      ("Solarize", 0, 256, False), ("Posterize", 4, 8, False), ("Color", 0.1, 1.9, False),
      ("Brightness", 0.1, 1.9, False), ("Sharpness", 0.1, 1.9, False)]
EXTRA = {
    "ShearX": [1.0, -2.0, 0.05], "ShearY": [1.0, -2.0, 0.05],
    "TranslateX": [1.0, -0.031, 0.5], "TranslateY": [1.0, -0.031, 0.5],
    "Rotate": [45.0, -90.0, 90.0, 180.0, 270.0, 360.0, 123.4, -0.5],
    "Solarize": [0.0, 1.0, 128.0, 255.5],
    "Posterize": [1.0, 2.0, 5.9],
    "Color": [0.0, 0.5, 1.0, 2.5, -0.5], "Brightness": [0.0, 0.5, 2.5, -0.5],
    "Sharpness": [0.0, 0.5, 2.5, -0.5], "Contrast": [0.0, 0.1, 0.5, 1.0, 1.3, 1.9, 2.5, -0.5],
}
MAGNITUDES = [0, 1, 9, 14, 15, 22, 28, 30]
AA_OPS = ["ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast",
          "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize", "Invert"]


def save_strip(images, path):
    Image.fromarray(np.concatenate([np.asarray(i) for i in images], 0)).save(path, optimize=True)


def main():
    os.makedirs(OUT, exist_ok=True)
    manifest = {"pillow": PIL.__version__, "torchvision": torchvision.__version__,
                "images": {}, "ra": [], "aa": [], "tv_rotate": []}
    images = synthetic_images()
    for key, arr in images.items():
        name = f"input_{key}.png"
        Image.fromarray(arr).save(os.path.join(OUT, name))
        manifest["images"][key] = name

    for name, lo, hi, signed in RA + [("Contrast", 0.1, 1.9, False)]:
        values = []
        for m in MAGNITUDES:
            v = (float(m) / 30) * float(hi - lo) + lo
            values.append({"value": repr(v), "m": m})
            if signed and v != 0:
                values.append({"value": repr(-v), "m": m, "negated": True})
        values += [{"value": repr(float(v))} for v in EXTRA.get(name, [])]
        if name in ("Identity", "AutoContrast", "Invert", "Equalize"):
            values = values[:1]
        if name == "Contrast":
            values = [{"value": repr(float(v))} for v in EXTRA["Contrast"]]
        for key, arr in images.items():
            img = Image.fromarray(arr)
            outs = [ra_op(name, img, float(c["value"])) for c in values]
            file = f"ra_{name}_{key}.png"
            save_strip(outs, os.path.join(OUT, file))
            manifest["ra"].append({"op": name, "image": key, "file": file, "cases": values})

    for key in ("grad", "rect"):
        img = Image.fromarray(images[key])
        h, w = images[key].shape[:2]
        for policy in (AutoAugmentPolicy.CIFAR10,):
            space = AutoAugment(policy)._augmentation_space(10, (h, w))
        for name in AA_OPS:
            mags, signed = space[name]
            cases = []
            for b in range(10 if mags.ndim > 0 else 1):
                m = float(mags[b].item()) if mags.ndim > 0 else 0.0
                for sign in ((1.0, -1.0) if signed else (1.0,)):
                    cases.append({"bin": b, "magnitude": repr(m * sign)})
            outs = [_apply_op(img, name, float(c["magnitude"]), InterpolationMode.NEAREST, None) for c in cases]
            file = f"aa_{name}_{key}.png"
            save_strip(outs, os.path.join(OUT, file))
            manifest["aa"].append({"op": name, "image": key, "file": file, "cases": cases})
        outs = [F.rotate(img, a) for a in (90.0, 180.0, 270.0)]
        file = f"tv_rotate_{key}.png"
        save_strip(outs, os.path.join(OUT, file))
        manifest["tv_rotate"].append({"image": key, "file": file, "angles": [90.0, 180.0, 270.0]})

    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total / 1024:.0f} KiB, to {OUT}")


if __name__ == "__main__":
    main()
