"""Shared pieces of the Python package's tests: the repository's paths, the CLI binary, a tiny
SwAV config and a safetensors reader (no extra dependency)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
CIFAR = ROOT.parent / "shared" / "data" / "cifar10" / "data_batch_1.bin"
RECORD = 3073


def cli() -> Path:
    """The `protoclust` binary the tests compare with (PROTOCLUST_BIN, else the release build)."""
    p = Path(os.environ.get("PROTOCLUST_BIN", ROOT / "target" / "release" / "protoclust"))
    if not p.exists():
        pytest.skip(f"{p} not built: run `cargo build --release` first")
    return p


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(cli()), *args], cwd=cwd, capture_output=True, text=True)


@pytest.fixture(scope="session")
def cifar_256(tmp_path_factory) -> Path:
    """The first 256 CIFAR-10 records of the shared data as a binary batch of their own."""
    if not CIFAR.exists():
        pytest.skip(f"{CIFAR} missing: the real-data tests need ../shared/data (see its README)")
    out = tmp_path_factory.mktemp("cifar") / "first256.bin"
    with open(CIFAR, "rb") as f:
        out.write_bytes(f.read(256 * RECORD))
    return out


def cifar_arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 N×32×32×3 images, int64 labels) of a CIFAR-10 binary batch."""
    raw = np.frombuffer(path.read_bytes(), dtype=np.uint8).reshape(-1, RECORD)
    labels = raw[:, 0].astype(np.int64)
    images = raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def tiny_swav(data: Path | None, run_dir: Path, **extra) -> dict:
    """A SwAV config small enough for a few seconds a step on 2 cores."""
    cfg = {
        "method": "swav",
        "seed": 0,
        "data": ({"kind": "cifar10", "paths": [str(data)]} if data is not None
                 else {"kind": "synthetic", "len": 64, "size": 32}),
        "loader": {"batch_size": 32, "drop_last": True},
        "swav": {
            "prototypes": 24,
            "freeze_prototypes_iterations": 1,
            "backbone": {"depth": 18, "width": 4, "small_stem": True},
            "projector": {"hidden": [32], "out_dim": 16},
            "views": {"crops": [{"count": 2, "size": 32, "scale": [0.14, 1.0]}]},
        },
        "optim": {"lr": 0.1},
        "train": {"epochs": 1, "run_dir": str(run_dir), "log_every": 1, "threads": 0},
        "eval_view": {"resize": 32, "size": 32},
    }
    for k, v in extra.items():
        cfg[k] = {**cfg.get(k, {}), **v} if isinstance(v, dict) else v
    return cfg


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file, as NumPy arrays (F32, I64 and U8 only)."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    kinds = {"F32": np.float32, "I64": np.int64, "U8": np.uint8}
    out = {}
    for name, h in header.items():
        a, b = h["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=kinds[h["dtype"]]).reshape(
            h["shape"])
    return out
