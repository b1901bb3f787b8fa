"""``train``: one training run from a config file or dict, as ``protoclust train`` does."""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Union

from . import _native
from ._model import Model

#: What a step callback receives: iteration, total, epoch, loss, lr, img_per_s and the
#: method's own metrics of the step.
StepInfo = Mapping[str, Any]


@dataclass(frozen=True)
class Run:
    """A finished (or stopped) run: its directory, last checkpoint and logged metrics."""

    dir: Path
    checkpoint: Path
    iterations: int
    epochs: int
    wall_seconds: float
    stopped: bool
    last_epoch_loss: Optional[float] = None
    skipped_images: int = 0
    _model: list = field(default_factory=list, repr=False, compare=False)

    @property
    def metrics(self) -> list[dict]:
        """The records of ``metrics.jsonl`` (steps, epochs, kNN, clustering), in order."""
        path = self.dir / "metrics.jsonl"
        if not path.exists():
            return []
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    @property
    def model(self) -> Model:
        """The trained model (its last checkpoint), opened once."""
        if not self._model:
            self._model.append(Model.load(self.checkpoint))
        return self._model[0]


def _progress_callback(
    callback: Optional[Callable[[StepInfo], Optional[bool]]], progress: bool
) -> tuple[Optional[Callable[[StepInfo], Optional[bool]]], Any]:
    """Wraps the user's callback with a tqdm bar when asked for and tqdm is installed."""
    if not progress:
        return callback, None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        warnings.warn("progress=True needs tqdm (pip install tqdm); training without a bar")
        return callback, None
    bar: list = []

    def step(info: StepInfo) -> Optional[bool]:
        if not bar:
            bar.append(tqdm(total=int(info["total"]), initial=int(info["iteration"]) - 1,
                            unit="it", desc="protoclust"))
        b = bar[0]
        b.update(1)
        b.set_postfix(epoch=info["epoch"], loss=f"{info['loss']:.4f}", refresh=False)
        return callback(info) if callback is not None else None

    return step, bar


def train(
    config: Union[str, os.PathLike, Mapping[str, Any]],
    overrides: Optional[Mapping[str, Any]] = None,
    *,
    run_dir: Union[str, os.PathLike, None] = None,
    resume: Union[bool, str, os.PathLike, None] = None,
    progress: bool = True,
    callback: Optional[Callable[[StepInfo], Optional[bool]]] = None,
    threads: Optional[int] = None,
) -> Run:
    """Trains the method a config names and returns the run.

    ``config`` is a TOML file (paths inside it are relative to the working directory, as on the
    command line) or a dict of the same schema. ``overrides`` maps dotted keys to values, as
    ``--set``: ``{"train.epochs": 10, "swav.prototypes": 300}``. ``run_dir`` replaces
    ``train.run_dir``. ``resume=True`` continues from the run directory's ``last`` checkpoint
    (or give a checkpoint path). ``callback(info)`` runs after every step; returning ``False``
    stops the run after ``last`` is written, and ``resume=True`` then continues it exactly.
    Ctrl-C does the same and raises ``KeyboardInterrupt``. ``threads``: worker threads (None:
    every core, or the config's ``train.threads``).
    """
    overrides = dict(overrides or {})
    if run_dir is not None:
        overrides["train.run_dir"] = os.fspath(run_dir)
    if isinstance(resume, os.PathLike):
        resume = os.fspath(resume)
    if isinstance(config, Mapping):
        kwargs: dict[str, Any] = {"table": dict(config)}
    else:
        kwargs = {"path": os.fspath(config)}
    cb, bar = _progress_callback(callback, progress)
    try:
        s = _native.train(overrides=overrides, resume=resume, callback=cb, threads=threads,
                          **kwargs)
    finally:
        if bar:
            bar[0].close()
    for w in s["warnings"]:
        warnings.warn(w)
    return Run(
        dir=Path(s["run_dir"]),
        checkpoint=Path(s["checkpoint"]),
        iterations=s["iterations"],
        epochs=s["epochs"],
        wall_seconds=s["wall_seconds"],
        stopped=s["stopped"],
        last_epoch_loss=s["last_epoch_loss"],
        skipped_images=s["skipped_images"],
    )
