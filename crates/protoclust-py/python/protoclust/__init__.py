"""protoclust: learn visual representations from unlabelled images by clustering.

SwAV, ODC, DeepCluster, DeepCluster-v2, Jigsaw Clustering and SlotCon on one Rust engine,
faithful to the official implementations' numerics::

    import protoclust as pc
    run = pc.train("configs/swav_cifar10.toml", overrides={"train.epochs": 10})
    X = run.model.embed("cifar10:../shared/data/cifar10/test_batch.bin")   # (N, D) float32
    clusters = run.model.assign(images_uint8_nhwc).cluster

Long calls release the GIL and run on Rust threads (``threads=None``: every core). Importing
the package changes nothing process-wide (no allocator or thread settings).
"""

from __future__ import annotations

from . import eval
from ._errors import CheckpointError, ConfigError, DataError, ProtoclustError
from ._model import Assignments, Model
from ._train import Run, train
from ._native import BUILT_WITH as _BUILT_WITH
from ._native import METHODS as _METHODS

__all__ = [
    "Assignments",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "Model",
    "ProtoclustError",
    "Run",
    "eval",
    "list_methods",
    "train",
]

try:
    from importlib.metadata import version as _version

    __version__ = _version("protoclust")
except Exception:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"


def list_methods() -> list[str]:
    """The method names a config's ``method`` can take."""
    return list(_METHODS)


def built_with() -> str:
    """The compute backends this build of the extension has (e.g. ``"flex"``)."""
    return str(_BUILT_WITH)
