"""Importing the package leaves the process as it was; the threads argument works per call."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

import protoclust as pc


def test_import_changes_no_malloc_setting():
    # mallopt(M_MMAP_MAX, 0) would keep a 64 MiB allocation out of mmap; glibc's default mmaps
    # it and gives it back, so RSS falls after `del`.
    code = (
        "import protoclust, numpy as np, resource\n"
        "def rss():\n"
        "    return int(open('/proc/self/statm').read().split()[1])\n"
        "a = np.ones(64 << 20, dtype=np.uint8); before = rss(); del a\n"
        "print(before - rss())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    freed_pages = int(out.stdout.strip())
    assert freed_pages > (32 << 20) // 4096, out.stdout


def test_threads_argument_gives_the_same_features(tmp_path):
    run = pc.train({"method": "swav", "data": {"kind": "synthetic", "len": 16, "size": 16},
                    "loader": {"batch_size": 8},
                    "swav": {"prototypes": 16, "freeze_prototypes_iterations": 1,
                             "backbone": {"width": 4},
                             "projector": {"hidden": [16], "out_dim": 8},
                             "views": {"crops": [{"count": 2, "size": 16, "scale": [0.14, 1.0]}]}},
                    "train": {"epochs": 1, "run_dir": str(tmp_path)},
                    "eval_view": {"resize": 16, "size": 16}}, progress=False)
    x = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    a = run.model.embed(x, threads=1)
    b = run.model.embed(x, threads=2)
    c = run.model.embed(x)
    assert a.shape == (5, run.model.feature_dim)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b, c, rtol=1e-5, atol=1e-6)
