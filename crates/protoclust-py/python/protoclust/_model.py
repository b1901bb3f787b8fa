"""``Model``: a checkpoint of any method, or an exported backbone, for inference."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional, Sequence, Union

import numpy as np

from . import _native

#: Images: a uint8 array (N, H, W, 3), a list of image paths, or a data spec string such as
#: ``"cifar10:FILE"``, ``"folder:DIR"``, ``"list:FILE"``.
Images = Union[np.ndarray, Sequence[Union[str, os.PathLike]], str]


def _images(images: Images):
    if isinstance(images, str):
        return images
    if isinstance(images, np.ndarray) or hasattr(images, "__array__"):
        a = np.asarray(images)
        if a.dtype != np.uint8:
            raise TypeError(f"images: dtype {a.dtype}: expected uint8 RGB (N, H, W, 3)")
        return np.ascontiguousarray(a)
    return [os.fspath(p) for p in images]


@dataclass(frozen=True)
class Assignments:
    """One row per image: its cluster, raw score, soft top-5 and margin (best minus second)."""

    index: np.ndarray
    cluster: np.ndarray
    score: np.ndarray
    probability: np.ndarray
    confidence: np.ndarray
    top5: np.ndarray
    top5_probabilities: np.ndarray
    label: np.ndarray
    path: list[Optional[str]]

    def __len__(self) -> int:
        return len(self.index)

    def to_dict(self) -> dict[str, list]:
        """Plain columns (lists), e.g. for ``pandas.DataFrame(a.to_dict())``."""
        return {
            "index": self.index.tolist(),
            "path": list(self.path),
            "cluster": self.cluster.tolist(),
            "score": self.score.tolist(),
            "probability": self.probability.tolist(),
            "confidence": self.confidence.tolist(),
            "top5": self.top5.tolist(),
            "top5_probabilities": self.top5_probabilities.tolist(),
            "label": self.label.tolist(),
        }


class Model:
    """A trained model: embeddings, cluster assignments, prototypes and exports."""

    def __init__(self, native: _native.Model):
        self._m = native

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "Model":
        """Opens a training checkpoint of any method (with its head), an exported backbone, or a
        released checkpoint of the official code (SwAV, DeepCluster-v2, JigClu, SlotCon,
        mmselfsup ODC/SwAV, any ResNet trunk), as ``protoclust import`` reads it."""
        return cls(_native.Model.load(os.fspath(path)))

    @property
    def path(self) -> Path:
        """The file it was read from."""
        return Path(self._m.path)

    @property
    def method(self) -> Optional[str]:
        """The method that trained it, or None for an exported backbone."""
        return self._m.method

    @property
    def feature_dim(self) -> int:
        """Dimension of ``embed``'s rows."""
        return self._m.feature_dim

    @property
    def image_size(self) -> Optional[int]:
        """Side of the run's evaluation crop (None for an exported backbone)."""
        return self._m.image_size

    @property
    def iteration(self) -> Optional[int]:
        """Training iterations behind it (None for an exported backbone)."""
        return self._m.iteration

    @property
    def config_toml(self) -> Optional[str]:
        """The resolved run config, as TOML (None for an exported backbone)."""
        return self._m.config_toml

    @property
    def prototypes(self) -> Optional[np.ndarray]:
        """The method's prototypes, float32 (K, D) (SwAV, SlotCon), else None."""
        return self._m.prototypes

    def embed(self, images: Images, *, batch_size: int = 256,
              threads: Optional[int] = None,
              precision: Literal["f32", "bf16"] = "f32") -> np.ndarray:
        """Pooled backbone features, float32 (N, D), one row per image in order.

        ``precision="bf16"`` runs the convolutions as PyTorch's bf16 autocast does (bf16
        products, f32 sums), on a CPU with AVX512-BF16; elsewhere it raises ConfigError.
        The array owns the Rust buffer (no copy); ``torch.from_numpy`` shares it.
        """
        return self._m.embed(_images(images), batch_size=batch_size, threads=threads,
                             precision=precision)

    def assign(self, images: Images, k: Optional[int] = None, *, fit_images: int = 20000,
               seed: int = 0, labels: Optional[np.ndarray] = None,
               threads: Optional[int] = None) -> Assignments:
        """Every image's cluster: the method's own (prototype or classifier argmax), or with
        ``k`` (needed for JigClu and exported backbones) spherical k-means on the features,
        fitted on up to ``fit_images`` images spread over the data. ``labels`` (with an array
        of images) fills the label column."""
        lab = None if labels is None else np.ascontiguousarray(labels, dtype=np.int64)
        cols = self._m.assign(_images(images), k=k, fit_images=fit_images, seed=seed,
                              labels=lab, threads=threads)
        cols["path"] = [None if p is None else str(p) for p in cols["path"]]
        return Assignments(**cols)

    def export(self, path: Union[str, os.PathLike],
               format: Literal["torchvision", "onnx"] = "torchvision") -> Path:
        """Writes the backbone: torchvision-named safetensors (load into
        ``torchvision.models.resnet18()`` with ``strict=False``) or ONNX. Returns the path."""
        self._m.export(os.fspath(path), format)
        return Path(path)

    def __repr__(self) -> str:
        return repr(self._m)
