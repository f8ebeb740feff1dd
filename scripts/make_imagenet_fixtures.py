#!/usr/bin/env python3
"""Writes the golden fixtures of the ImageNet transforms: synthetic RGB images of several sizes
and what torchvision (on PIL images, Pillow's resampling and ImageEnhance) makes of them with
given parameters: Pillow's BICUBIC resize, `F.resized_crop` (RandomResizedCrop's pixels for a
given box), the ColorJitter enhancements in a given order with given factors, the reference
ImageNet test view `Resize(256, BICUBIC)` + `CenterCrop(224)`, the float tensor of ToTensor →
Lighting (given alphas) → Normalize, the statistics of `RandomResizedCrop.get_params` over many
draws, and Pillow's decoding of JPEG files (libjpeg-turbo).

Small outputs are stored as PNG pixels; 224-px outputs and most jittered images as MD5 digests of their RGB bytes, to keep
the committed bytes modest. Run by hand from the repository root, with Pillow and torchvision in
.venv:
    .venv/bin/python scripts/make_imagenet_fixtures.py
Output: tests/fixtures/imagenet/ (inputs, expected PNGs, manifest.json). The Rust tests
(tests/imagenet_golden.rs) read only these files.
"""
import hashlib
import io
import json
import math
import os

import numpy as np
import PIL
import torch
import torchvision
from PIL import Image, features
from torchvision import transforms
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F

OUT = os.path.join("tests", "fixtures", "imagenet")
BICUBIC = InterpolationMode.BICUBIC
# the reference's ImageNet constants (its data.py)
EIGVAL = [0.2175, 0.0188, 0.0045]
EIGVEC = [[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]]
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def synthetic(h, w, seed):
    """Gradients, a disc, a bright block and noise: edges for the cubic's lobes to ring on."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    arr = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x * 3 + y * 5) % 256], -1)
    arr = arr.astype(np.int64) + rng.integers(-8, 8, (h, w, 3))
    arr[(y - h // 3) ** 2 + (x - w // 2) ** 2 < (min(h, w) // 4) ** 2] = [20, 40, 220]
    arr[h // 2:h // 2 + max(h // 6, 1), w // 8:w // 3] = [250, 245, 10]
    return arr.clip(0, 255).astype(np.uint8)


IMAGES = {"a": (61, 83, 1), "b": (120, 90, 2), "c": (37, 300, 3), "d": (300, 41, 4), "e": (256, 256, 5)}


def md5(img):
    return hashlib.md5(np.asarray(img.convert("RGB")).tobytes()).hexdigest()


def save(img, name):
    img.save(os.path.join(OUT, name), optimize=True)
    return name


def f32(v):
    """A value as torch draws it: rounded to float32, then a Python float."""
    return float(np.float32(v))


def main():
    os.makedirs(OUT, exist_ok=True)
    m = {"pillow": PIL.__version__, "torchvision": torchvision.__version__, "torch": torch.__version__,
         "libjpeg_turbo": features.version("libjpeg_turbo"), "images": {}, "resize": [], "resized_crop": [],
         "jitter": [], "eval": [], "lighting": [], "crop_params": [], "jpeg": []}
    pil = {}
    for key, (h, w, seed) in IMAGES.items():
        arr = synthetic(h, w, seed)
        pil[key] = Image.fromarray(arr)
        m["images"][key] = save(pil[key], f"input_{key}.png")

    # Pillow's BICUBIC resize, up and down, one axis or both: pixels
    for key, sizes in {"a": [(30, 41), (61, 20), (100, 83), (7, 200), (150, 130)], "c": [(12, 100), (80, 64)],
                       "d": [(64, 9), (30, 60)]}.items():
        for oh, ow in sizes:
            out = pil[key].resize((ow, oh), Image.BICUBIC)
            name = save(out, f"resize_{key}_{oh}x{ow}.png")
            m["resize"].append({"image": key, "size": [oh, ow], "file": name})

    # resized_crop with given boxes (top, left, height, width): small outputs as pixels, 224 as digests
    boxes = {"a": [(0, 0, 61, 83), (5, 7, 40, 33), (60, 82, 1, 1), (10, 3, 51, 80), (0, 40, 20, 43)],
             "b": [(13, 2, 100, 88), (40, 40, 7, 9), (0, 0, 120, 90)],
             "c": [(0, 0, 37, 49), (3, 180, 30, 40)], "d": [(100, 0, 55, 41), (0, 5, 300, 36)],
             "e": [(16, 16, 224, 224), (0, 0, 256, 256), (100, 20, 150, 111)]}
    for key, bs in boxes.items():
        for (i, j, h, w) in bs:
            small = F.resized_crop(pil[key], i, j, h, w, [24, 24], BICUBIC)
            large = F.resized_crop(pil[key], i, j, h, w, [224, 224], BICUBIC)
            name = save(small, f"crop_{key}_{i}_{j}_{h}_{w}.png")
            m["resized_crop"].append({"image": key, "box": [i, j, h, w], "file24": name, "md5_224": md5(large)})

    # ColorJitter: the enhancements applied in a given order with float32 factors, as torchvision does
    adjust = [F.adjust_brightness, F.adjust_contrast, F.adjust_saturation]
    rng = np.random.default_rng(9)
    for key in ("a", "b", "c"):
        for order in ([0, 1, 2], [2, 0, 1], [1, 2, 0], [2, 1, 0]):
            for _ in range(3):
                factors = [f32(v) for v in rng.uniform(0.6, 1.4, 3)]
                img = pil[key]
                for k in order:
                    img = adjust[k](img, factors[k])
                case = {"image": key, "order": order, "factors": [repr(v) for v in factors], "md5": md5(img)}
                if key == "a":
                    case["file"] = save(img, f"jitter_{key}_{''.join(map(str, order))}_{len(m['jitter'])}.png")
                m["jitter"].append(case)

    # the reference's test view, and Resize(S) + CenterCrop(C) at small sizes as pixels
    for key in IMAGES:
        view = transforms.Compose([transforms.Resize(256, interpolation=BICUBIC), transforms.CenterCrop(224)])
        small = transforms.Compose([transforms.Resize(20, interpolation=BICUBIC), transforms.CenterCrop(17)])
        name = save(small(pil[key]), f"eval_{key}_20_17.png")
        m["eval"].append({"image": key, "md5_256_224": md5(view(pil[key])), "resize": 20, "crop": 17, "file": name})

    # ToTensor -> Lighting with given alphas (the reference's float32 expression) -> Normalize
    eigval, eigvec = torch.tensor(EIGVAL), torch.tensor(EIGVEC)
    normalize = transforms.Normalize(MEAN, STD)
    for key, alphas in (("a", [0.05, -0.12, 0.3]), ("b", [-0.2, 0.01, -0.07]), ("c", [0.0, 0.0, 0.0])):
        alpha = torch.tensor([f32(a) for a in alphas])
        rgb = eigvec.clone().mul(alpha.view(1, 3).expand(3, 3)).mul(eigval.view(1, 3).expand(3, 3)).sum(1).squeeze()
        x = F.to_tensor(pil[key].crop((0, 0, 6, 5)))
        x = normalize(x.add(rgb.view(3, 1, 1).expand_as(x)))
        m["lighting"].append({"image": key, "crop": [5, 6], "alphas": [repr(f32(a)) for a in alphas],
                              "offset_bits": [int(np.float32(v).view(np.uint32)) for v in rgb.tolist()],
                              "nchw_bits": np.ascontiguousarray(x.numpy()).view(np.uint32).ravel().tolist()})

    # RandomResizedCrop.get_params over many draws: the distribution our sampler must follow
    torch.manual_seed(0)
    rrc = transforms.RandomResizedCrop(224, scale=(0.08, 1.0), interpolation=BICUBIC)
    for h, w in ((350, 400), (500, 333), (40, 400), (16, 16)):
        dummy = Image.new("RGB", (w, h))
        draws = np.array([rrc.get_params(dummy, rrc.scale, rrc.ratio) for _ in range(20000)], dtype=np.float64)
        area = draws[:, 2] * draws[:, 3] / (h * w)
        log_ratio = np.log(draws[:, 3] / draws[:, 2])
        centre = np.mean((draws[:, 0] == (h - draws[:, 2]) // 2) & (draws[:, 1] == (w - draws[:, 3]) // 2))
        m["crop_params"].append({"size": [h, w], "draws": len(draws), "area_mean": area.mean(), "area_std": area.std(),
                                 "log_ratio_mean": log_ratio.mean(), "log_ratio_std": log_ratio.std(),
                                 "top_mean": draws[:, 0].mean(), "left_mean": draws[:, 1].mean(),
                                 "centred": float(centre)})

    # JPEG files as Pillow reads them (ImageFolder's loader: open, convert("RGB")): 4:2:0, 4:4:4,
    # progressive, grey, odd sizes
    for key, opts in (("a", {"quality": 90}), ("b", {"quality": 75, "subsampling": 0}),
                      ("c", {"quality": 90, "progressive": True}), ("d", {"quality": 95, "subsampling": 1}),
                      ("e", {"quality": 85})):
        name = f"jpeg_{key}.jpg"
        pil[key].save(os.path.join(OUT, name), **opts)
        rgb = Image.open(os.path.join(OUT, name)).convert("RGB")
        m["jpeg"].append({"file": name, "options": opts, "md5_rgb": md5(rgb)})
    grey = Image.fromarray(synthetic(45, 70, 6)).convert("L")
    grey.save(os.path.join(OUT, "jpeg_grey.jpg"), quality=90)
    m["jpeg"].append({"file": "jpeg_grey.jpg", "options": {"quality": 90, "mode": "L"},
                      "md5_rgb": md5(Image.open(os.path.join(OUT, "jpeg_grey.jpg")).convert("RGB"))})

    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(m, f, indent=1)
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total / 1024:.0f} KiB, to {OUT}")


if __name__ == "__main__":
    main()
