"""Embedding throughput: `protoclust extract` (the CLI, whole process) against
`protoclust.Model.load(...).embed(...)` from Python on the same checkpoint and images,
alternating rounds in one run. Prints a Markdown table (medians) and checks the features agree.

Usage (repository root, after `cargo build --release` and installing the wheel):
    python bench/python_embed.py CHECKPOINT --data cifar10:../shared/data/cifar10/data_batch_2.bin
"""

from __future__ import annotations

import argparse
import json
import statistics
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

import protoclust as pc


def read_features(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    h = json.loads(raw[8:8 + n])["features"]
    a, b = h["data_offsets"]
    return np.frombuffer(raw[8 + n + a:8 + n + b], dtype=np.float32).reshape(h["shape"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--data", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bin", default="target/release/protoclust")
    args = ap.parse_args()
    cli_s, py_s, embed_s = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "f.safetensors"
        for _ in range(args.rounds):
            t = time.perf_counter()
            subprocess.run([args.bin, "extract", str(args.checkpoint), "--data", args.data,
                            "--out", str(out)], check=True, capture_output=True)
            cli_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            m = pc.Model.load(args.checkpoint)
            t2 = time.perf_counter()
            x = m.embed(args.data)
            end = time.perf_counter()
            py_s.append(end - t)
            embed_s.append(end - t2)
        same = np.array_equal(read_features(out), x)
    n = x.shape[0]
    cli, py, emb = (statistics.median(v) for v in (cli_s, py_s, embed_s))
    print(f"{n} images, {x.shape[1]}-d features, {args.rounds} alternating rounds (medians); "
          f"features bit-identical: {same}")
    print()
    print("| path | seconds | img/s | vs CLI |")
    print("|---|---|---|---|")
    print(f"| `protoclust extract` (CLI process: load, embed, write) | {cli:.2f} | {n / cli:.0f} | 1.00x |")
    print(f"| Python `Model.load` + `embed` | {py:.2f} | {n / py:.0f} | {cli / py:.2f}x |")
    print(f"| Python `embed` alone | {emb:.2f} | {n / emb:.0f} | {cli / emb:.2f}x |")


if __name__ == "__main__":
    main()
