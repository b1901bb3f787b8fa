"""The Rust extension (private: use the ``protoclust`` package's API)."""

import os
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np

METHODS: list[str]
BUILT_WITH: str

class ProtoclustError(Exception): ...
class ConfigError(ProtoclustError): ...
class DataError(ProtoclustError): ...
class CheckpointError(ProtoclustError): ...

def train(
    *,
    path: Optional[str] = None,
    table: Optional[dict[str, Any]] = None,
    overrides: dict[str, Any],
    resume: Union[bool, str, None] = None,
    callback: Optional[Callable[[Mapping[str, Any]], Optional[bool]]] = None,
    threads: Optional[int] = None,
) -> dict[str, Any]: ...
def knn(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    k: int,
    temperature: float,
) -> tuple[float, float]: ...
def cluster_metrics(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]: ...
def linear_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    *,
    lrs: Sequence[float],
    epochs: int,
    batch_size: int,
    val_fraction: float,
    seed: int,
) -> dict[str, Any]: ...

class Model:
    @staticmethod
    def load(path: Union[str, os.PathLike]) -> Model: ...
    @property
    def path(self) -> str: ...
    @property
    def method(self) -> Optional[str]: ...
    @property
    def feature_dim(self) -> int: ...
    @property
    def iteration(self) -> Optional[int]: ...
    @property
    def config_toml(self) -> Optional[str]: ...
    @property
    def image_size(self) -> Optional[int]: ...
    @property
    def prototypes(self) -> Optional[np.ndarray]: ...
    def embed(
        self,
        images: Any,
        *,
        batch_size: int = 256,
        threads: Optional[int] = None,
        precision: str = "f32",
    ) -> np.ndarray: ...
    def assign(
        self,
        images: Any,
        *,
        k: Optional[int] = None,
        fit_images: int = 20000,
        seed: int = 0,
        labels: Optional[np.ndarray] = None,
        threads: Optional[int] = None,
    ) -> dict[str, Any]: ...
    def export(self, path: Union[str, os.PathLike], format: str = "torchvision") -> str: ...
