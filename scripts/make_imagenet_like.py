#!/usr/bin/env python3
"""ImageNet-like JPEG files for measurement only (never commit them): the images of an ImageFolder
split (e.g. CIFAR-10's JPEGs from cifar10-jpeg.tar.gz) upscaled with Pillow's bicubic filter to
sizes around ImageNet's (cycling through SIZES) and saved at JPEG quality 90, in the same
ImageFolder layout. Used by docs/BENCHMARKS.md's input-pipeline figures.

    .venv/bin/python scripts/make_imagenet_like.py SRC DST PER_CLASS [--sizes 400x350,350x400,...]
"""
import argparse
import os

from PIL import Image

DEFAULT_SIZES = "400x350,350x400,500x375,375x500,400x300,333x500"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", help="an ImageFolder split: SRC/<class>/*")
    p.add_argument("dst", help="where to write DST/<class>/*.jpg")
    p.add_argument("per_class", type=int, help="files per class (the first ones by name)")
    p.add_argument("--sizes", default=DEFAULT_SIZES, help="WxH sizes, used in turn (default %(default)s)")
    args = p.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    k = 0
    for cls in sorted(os.listdir(args.src)):
        os.makedirs(os.path.join(args.dst, cls), exist_ok=True)
        for name in sorted(os.listdir(os.path.join(args.src, cls)))[:args.per_class]:
            img = Image.open(os.path.join(args.src, cls, name)).convert("RGB")
            out = os.path.join(args.dst, cls, os.path.splitext(name)[0] + ".jpg")
            img.resize(sizes[k % len(sizes)], Image.BICUBIC).save(out, quality=90)
            k += 1
    print(f"wrote {k} files to {args.dst}")


if __name__ == "__main__":
    main()
