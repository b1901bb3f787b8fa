"""Evaluation on features from any model (NumPy or torch tensors on the CPU): weighted kNN,
clustering agreement and the linear probe, with the protocols of ``protoclust eval``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from . import _native

__all__ = ["ClusterMetrics", "KnnResult", "LinearProbeResult", "cluster_metrics", "knn",
           "linear_probe"]


def _x(a: Any, name: str) -> np.ndarray:
    x = np.ascontiguousarray(np.asarray(a), dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"{name}: shape {x.shape}: expected (N, D) features")
    return x


def _y(a: Any, name: str) -> np.ndarray:
    y = np.asarray(a)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name}: expected a 1-D array of integer labels")
    return np.ascontiguousarray(y, dtype=np.int64)


@dataclass(frozen=True)
class KnnResult:
    """Weighted kNN accuracy, percent."""

    top1: float
    top5: float
    k: int
    temperature: float


@dataclass(frozen=True)
class ClusterMetrics:
    """Agreement of cluster ids with labels: NMI, ARI, Hungarian-matched accuracy (percent)."""

    nmi: float
    ari: float
    accuracy: float


@dataclass(frozen=True)
class LinearProbeResult:
    """The probe's test accuracy at the learning rate its validation split chose."""

    top1: float
    top5: float
    lr: float
    runs: list[dict]
    samples: tuple[int, int, int]


def knn(train_x: Any, train_y: Any, test_x: Any, test_y: Any, k: int = 20,
        temperature: float = 0.07) -> KnnResult:
    """Classifies every test row by an exp(cos/T)-weighted vote of its k nearest train rows
    (cosine similarity on L2-normalised features), as InstDisc/DINO."""
    t1, t5 = _native.knn(_x(train_x, "train_x"), _y(train_y, "train_y"), _x(test_x, "test_x"),
                         _y(test_y, "test_y"), k, temperature)
    return KnnResult(top1=t1, top5=t5, k=k, temperature=temperature)


def cluster_metrics(pred: Any, truth: Any) -> ClusterMetrics:
    """NMI (arithmetic normalisation, as scikit-learn), ARI and Hungarian accuracy."""
    nmi, ari, acc = _native.cluster_metrics(_y(pred, "pred"), _y(truth, "truth"))
    return ClusterMetrics(nmi=nmi, ari=ari, accuracy=acc)


def linear_probe(train_x: Any, train_y: Any, test_x: Any, test_y: Any, *,
                 lrs: Sequence[float] = (0.01, 0.1, 1.0), epochs: int = 100,
                 batch_size: int = 256, val_fraction: float = 0.1,
                 seed: int = 0) -> LinearProbeResult:
    """A linear classifier per learning rate on fixed, standardised features (SGD momentum
    0.9, cosine schedule, no weight decay); a class-balanced ``val_fraction`` of the training
    rows chooses the rate, and its test accuracy is reported."""
    r = _native.linear_probe(_x(train_x, "train_x"), _y(train_y, "train_y"),
                             _x(test_x, "test_x"), _y(test_y, "test_y"), lrs=list(lrs),
                             epochs=epochs, batch_size=batch_size, val_fraction=val_fraction,
                             seed=seed)
    return LinearProbeResult(top1=r["test"]["top1"], top5=r["test"]["top5"], lr=r["lr"],
                             runs=r["runs"], samples=tuple(r["samples"]))
