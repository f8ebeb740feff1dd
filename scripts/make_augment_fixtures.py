#!/usr/bin/env python3
"""Writes the golden fixtures of the augmentation tests: small synthetic RGB images and what
Pillow (RandAugment's ops, as the reference calls them, without the random sign; SevereAugment's
ops with their random draws given; GaussianBlur), scikit-image (sobel) and torchvision
(AutoAugment's `_apply_op`, `F.rotate`, `F.vflip`, `Resize` + `CenterCrop`) make of them, and
how Pillow's `convert("RGB")` reads grey, alpha and palette files.

Run by hand from the repository root, with Pillow, torchvision and scikit-image in .venv
(scikit-image only for this script: `.venv/bin/python -m pip install scikit-image==0.26.0`):
    .venv/bin/python scripts/make_augment_fixtures.py
Output: tests/fixtures/augment/ (inputs, one PNG strip of expected outputs per op and image,
the values in manifest.json). The Rust tests read only these files.
"""
import json
import math
import os

import numpy as np
import PIL
import skimage
import torchvision
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps
from skimage import filters
from torchvision import transforms
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


# SevereAugment's list (name, min, max): its M runs over 0..=10
SEVERE = [("ShearX", 0.0, 2.0), ("ShearY", 0.0, 2.0), ("TranslateX", 0.0, 1.0), ("TranslateY", 0.0, 1.0)]


def severe_cutout(img, v, x_draw, y_draw):
    """The reference's Cutout(img, v) -> CutoutAbs with its two np.random.uniform draws given."""
    if v <= 0.0:
        return img
    side = math.sqrt(v) * img.size[0]
    w, h = img.size
    x0 = int(max(0, x_draw - side / 2.0))
    y0 = int(max(0, y_draw - side / 2.0))
    x1 = min(w, x0 + side)
    y1 = min(h, y0 + side)
    img = img.copy()
    ImageDraw.Draw(img).rectangle((x0, y0, x1, y1), (125, 123, 114))
    return img


def sized_images():
    """Inputs of the resize fixtures: several sizes, up- and down-scaled, odd crops."""
    rng = np.random.default_rng(7)
    out = {}
    for h, w in [(37, 23), (48, 64), (20, 31), (8, 8), (50, 50), (13, 90)]:
        y, x = np.mgrid[0:h, 0:w]
        arr = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x * y) % 256], -1)
        arr = (arr + rng.integers(0, 40, (h, w, 3))).clip(0, 255).astype(np.uint8)
        out[f"{h}x{w}"] = arr
    return out


def conversion_inputs():
    """Files in the modes torchvision's loader converts with convert("RGB")."""
    rng = np.random.default_rng(11)
    rgb = rng.integers(0, 256, (6, 7, 3)).astype(np.uint8)
    grey = rng.integers(0, 256, (6, 7)).astype(np.uint8)
    alpha = rng.integers(0, 256, (6, 7)).astype(np.uint8)
    images = {
        "L.png": Image.fromarray(grey),
        "LA.png": Image.fromarray(np.stack([grey, alpha], -1), "LA"),
        "RGBA.png": Image.fromarray(np.concatenate([rgb, alpha[..., None]], -1), "RGBA"),
        "P.png": Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16),
        "1.png": Image.fromarray(grey > 128),
        "grey.jpg": Image.fromarray(grey),
        "rgb.jpg": Image.fromarray(rgb),
    }
    ptrans = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    ptrans.info["transparency"] = 3
    images["Ptrans.png"] = ptrans
    return images


def main():
    os.makedirs(OUT, exist_ok=True)
    manifest = {"pillow": PIL.__version__, "torchvision": torchvision.__version__,
                "scikit-image": skimage.__version__, "images": {}, "ra": [], "aa": [], "tv_rotate": [],
                "severe": [], "severe_cutout": [], "blur": [], "sobel": [], "vflip": [], "resize": [],
                "convert": []}
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

    for key, arr in images.items():
        img = Image.fromarray(arr)
        h, w = arr.shape[:2]
        for name, lo, hi in SEVERE:
            cases = []
            for m in range(11):
                v = (float(m) / 10) * float(hi - lo) + lo
                cases.append({"value": repr(v), "m": m})
                if v != 0:
                    cases.append({"value": repr(-v), "m": m, "negated": True})
            outs = [ra_op(name, img, float(c["value"])) for c in cases]
            file = f"severe_{name}_{key}.png"
            save_strip(outs, os.path.join(OUT, file))
            manifest["severe"].append({"op": name, "image": key, "file": file, "cases": cases})
        draws = [(1.0000001, 1.0000001), (w / 2.0, h / 3.0), (float(w), float(h)), (3.7, h - 0.2),
                 (w - 2.5, 2.25)]
        cases = []
        for m in range(11):
            v = (float(m) / 10) * 1.0 + 0.0
            for x, y in draws:
                cases.append({"value": repr(v), "m": m, "x": repr(x), "y": repr(y)})
        cases += [{"value": repr(v), "x": repr(x), "y": repr(y)} for v, x, y in
                  [(0.0625, 5.0, 2.5), (0.001, float(w), float(h)), (0.37, 9.49, 4.51)]]
        outs = [severe_cutout(img, float(c["value"]), float(c["x"]), float(c["y"])) for c in cases]
        file = f"severe_Cutout_{key}.png"
        save_strip(outs, os.path.join(OUT, file))
        manifest["severe_cutout"].append({"image": key, "file": file, "cases": cases})

        rng = np.random.default_rng(3)
        sigmas = [0.6, 0.75, 1.0, 1.2345, 1.5, 1.9, 2.0] + [float(v) for v in rng.uniform(0.6, 2.0, 5)]
        outs = [img.filter(ImageFilter.GaussianBlur(radius=s)) for s in sigmas]
        file = f"blur_{key}.png"
        save_strip(outs, os.path.join(OUT, file))
        manifest["blur"].append({"image": key, "file": file, "sigmas": [repr(s) for s in sigmas]})

        edges = Image.fromarray(np.uint8(filters.sobel(np.array(img)) * 255))
        file = f"sobel_{key}.png"
        edges.save(os.path.join(OUT, file))
        manifest["sobel"].append({"image": key, "file": file})

        file = f"vflip_{key}.png"
        transforms.RandomVerticalFlip(p=1.0)(img).save(os.path.join(OUT, file))
        manifest["vflip"].append({"image": key, "file": file})

    for key, arr in sized_images().items():
        name = f"sized_{key}.png"
        Image.fromarray(arr).save(os.path.join(OUT, name))
        sizes = [16, 24, 32]
        outs = [transforms.Compose([transforms.Resize(s), transforms.CenterCrop(s)])(Image.fromarray(arr))
                for s in sizes]
        for s, out in zip(sizes, outs):
            file = f"resize_{key}_{s}.png"
            out.save(os.path.join(OUT, file))
            manifest["resize"].append({"input": name, "size": s, "file": file})

    for name, img in conversion_inputs().items():
        path = os.path.join(OUT, f"convert_{name}")
        img.save(path, quality=90) if name.endswith(".jpg") else img.save(path)
        expected = f"convert_{name}.rgb.png"
        Image.open(path).convert("RGB").save(os.path.join(OUT, expected))
        manifest["convert"].append({"input": f"convert_{name}", "mode": Image.open(path).mode,
                                    "expected": expected})

    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total / 1024:.0f} KiB, to {OUT}")


if __name__ == "__main__":
    main()
