#!/usr/bin/env python3
"""Writes N JPEGs of 500 x 375 px (ImageNet's typical size) cut from the real photographs in
../shared/data (sample-photos and CamVid frames), for the end-to-end `extract` rows of
bench/run.sh. Never inside the repository: give a directory elsewhere.

Usage: python3 bench/make_jpegs.py OUT_DIR [--count 2000] [--data ../shared/data]
"""
import argparse
import os
import random

from PIL import Image


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--data", default="../shared/data")
    a = p.parse_args()
    exts = (".jpg", ".jpeg", ".png")
    sources = sorted(
        os.path.join(d, f)
        for sub in ("sample-photos", "camvid/train")
        for d, _, fs in os.walk(os.path.join(a.data, sub))
        for f in fs
        if f.lower().endswith(exts)
    )
    if not sources:
        raise SystemExit(f"{a.data}: no sample-photos or camvid/train images")
    os.makedirs(a.out, exist_ok=True)
    rng = random.Random(0)
    for i in range(a.count):
        with Image.open(sources[i % len(sources)]) as im:
            im = im.convert("RGB")
            # A random crop of at least half the shorter side, scaled to 500 x 375.
            w, h = im.size
            side = rng.uniform(0.5, 1.0)
            cw, ch = max(1, int(w * side)), max(1, int(h * side))
            x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
            im = im.crop((x, y, x + cw, y + ch)).resize((500, 375), Image.BILINEAR)
            if rng.random() < 0.5:
                im = im.transpose(Image.FLIP_LEFT_RIGHT)
            im.save(os.path.join(a.out, f"{i:05d}.jpg"), quality=90)
    print(f"wrote {a.count} JPEGs of 500 x 375 px to {a.out}")


if __name__ == "__main__":
    main()
