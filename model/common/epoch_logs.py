"""The per-epoch logs both trainers write into a run folder: log.csv always, and TensorBoard's
tb/ when the `tensorboard` package (the `train` extra) is installed."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import keras


def tensorboard_available() -> bool:
    """keras.callbacks.TensorBoard needs the `tensorboard` package on the TF backend."""
    return importlib.util.find_spec("tensorboard") is not None


def epoch_loggers(run_dir: Path, append: bool, tensorboard: bool = True,
                  say: Callable[[str], object] | None = print) -> list[keras.callbacks.Callback]:
    """CSVLogger (+ TensorBoard) callbacks into `run_dir`; `say` tells when TensorBoard is missing."""
    callbacks = [keras.callbacks.CSVLogger(str(Path(run_dir) / "log.csv"), append=append)]
    if tensorboard and tensorboard_available():
        callbacks.append(keras.callbacks.TensorBoard(str(Path(run_dir) / "tb"), update_freq="epoch"))
    elif tensorboard and say is not None:
        say("TensorBoard logs skipped: the `tensorboard` package is not installed "
            "(pip install -e '.[train]'); epoch logs go to log.csv")
    return callbacks
