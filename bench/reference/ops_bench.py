#!/usr/bin/env python3
"""PyTorch reference for `protoclust bench --ops`: the same per-op rows (conv2d forward, weight
gradient, input gradient, BatchNorm training forward and backward), summed over the layers of
the ResNet-18 small-stem backbone at the same shapes, best of --reps after one warm-up call.

Usage (from the repository root; needs `pip install torch`):
    python3 bench/reference/ops_bench.py --width 8 --images 256 --size 32 --threads 2
"""
import argparse
import time

import torch
import torch.nn.functional as F


def layers(width, images, size, depth=18):
    """(N, C, H, W, O, k, stride, pad) of every convolution, in forward order."""
    out = [(images, 3, size, size, width, 3, 1, 1)]
    s, inplanes = size, width
    for i, n in enumerate([2, 2, 2, 2]):
        planes = width << i
        for j in range(n):
            stride = 2 if (i > 0 and j == 0) else 1
            if j == 0 and (stride != 1 or inplanes != planes):
                out.append((images, inplanes, s, s, planes, 1, stride, 0))
            out.append((images, inplanes, s, s, planes, 3, stride, 1))
            s = (s + 2 - 3) // stride + 1
            out.append((images, planes, s, s, planes, 3, 1, 1))
            inplanes = planes
    return out


def best(reps, f):
    f()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return min(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--passes", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = {k: [0.0, 0.0] for k in ["fwd", "wgrad", "xgrad", "bnf", "bnb"]}
    for (n, c, h, w, o, k, s, p) in layers(args.width, args.images, args.size):
        x = torch.randn(n, c, h, w)
        wt = torch.randn(o, c, k, k)
        y = F.conv2d(x, wt, stride=s, padding=p)
        dy = torch.randn_like(y)
        flops = 2.0 * y.numel() * c * k * k
        bwd = torch.ops.aten.convolution_backward
        with torch.no_grad():
            rows["fwd"][0] += best(args.reps, lambda: F.conv2d(x, wt, stride=s, padding=p))
            rows["wgrad"][0] += best(args.reps, lambda: bwd(dy, x, wt, None, [s, s], [p, p], [1, 1], False, [0, 0], 1, [False, True, False]))
            rows["xgrad"][0] += best(args.reps, lambda: bwd(dy, x, wt, None, [s, s], [p, p], [1, 1], False, [0, 0], 1, [True, False, False]))
            g, b = torch.ones(o), torch.zeros(o)
            rm, rv = torch.zeros(o), torch.ones(o)
            out, mean, invstd = torch.ops.aten.native_batch_norm(y, g, b, rm, rv, True, 0.1, 1e-5)
            rows["bnf"][0] += best(args.reps, lambda: torch.ops.aten.native_batch_norm(y, g, b, rm, rv, True, 0.1, 1e-5))
            rows["bnb"][0] += best(args.reps, lambda: torch.ops.aten.native_batch_norm_backward(dy, y, g, rm, rv, mean, invstd, True, 1e-5, [True, True, True]))
        for key in ["fwd", "wgrad", "xgrad"]:
            rows[key][1] += flops
    p = args.passes
    print(f"PyTorch {torch.__version__}, {args.threads} threads, ResNet-18 width {args.width}, "
          f"{p} passes of {args.images} images of {args.size} px")
    names = {"fwd": "conv2d forward", "wgrad": "conv2d weight gradient", "xgrad": "conv2d input gradient",
             "bnf": "BatchNorm forward (train)", "bnb": "BatchNorm backward"}
    total = 0.0
    for key, (t, fl) in rows.items():
        gf = f"{fl / t / 1e9:.1f}" if fl else "–"
        print(f"| {names[key]} (PyTorch) | {t * p:.4f} | {gf} |")
        total += t * p
    print(f"| **sum** (PyTorch) | {total:.4f} | – |")


if __name__ == "__main__":
    main()
