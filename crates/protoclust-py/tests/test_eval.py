"""protoclust.eval on features from anywhere."""

from __future__ import annotations

import numpy as np
import pytest

import protoclust as pc


def blobs(n: int, seed: int, shuffled: bool = False):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 4
    x = rng.normal(size=(n, 8)).astype(np.float32)
    x[np.arange(n), y] += 4.0
    if shuffled:
        y = rng.integers(0, 4, size=n)
    return x, y


def test_knn_separates_blobs_and_not_noise():
    r = pc.eval.knn(*blobs(200, 0), *blobs(80, 1), k=10, temperature=0.07)
    assert r.top1 > 95 and r.top5 == 100 and r.k == 10
    noise = pc.eval.knn(*blobs(200, 0, True), *blobs(80, 1, True), k=10)
    assert noise.top1 < 50


def test_cluster_metrics_are_invariant_to_renaming():
    m = pc.eval.cluster_metrics([2, 2, 0, 0, 1, 1], [0, 0, 1, 1, 2, 2])
    assert (m.nmi, m.ari, m.accuracy) == pytest.approx((1.0, 1.0, 100.0))
    half = pc.eval.cluster_metrics([0, 0, 0, 0], [0, 0, 1, 1])
    assert half.accuracy == pytest.approx(50.0) and half.nmi == pytest.approx(0.0)


def test_linear_probe_on_features():
    r = pc.eval.linear_probe(*blobs(400, 0), *blobs(100, 1), epochs=20, batch_size=64)
    assert r.top1 > 90 and r.lr in (0.01, 0.1, 1.0) and len(r.runs) == 3
    assert r.samples == (360, 40, 100)


def test_eval_refuses_mismatched_inputs():
    x, y = blobs(10, 0)
    with pytest.raises(ValueError, match="10 feature rows but 9 labels"):
        pc.eval.knn(x, y[:9], x, y, k=3)
    with pytest.raises(ValueError, match="integer labels"):
        pc.eval.knn(x, y.astype(np.float32), x, y, k=3)
    with pytest.raises(ValueError, match="k = 11"):
        pc.eval.knn(x, y, x, y, k=11)
