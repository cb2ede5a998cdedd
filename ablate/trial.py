"""One Ray Tune trial: the sampled values on top of the study's base config, a Trainer, and a report with a
checkpoint after every epoch (so an interrupted study resumes its unfinished trials where they stopped)."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ablate.data import FaceSet
from ablate.study import trial_config
from ablate.trainer import Trainer

CHECKPOINT_FILE = "trainer.pt"


def to_shared(faces: FaceSet) -> dict[str, Any]:
    """The data set as numpy arrays, which Ray's object store hands to every trial on a node without a copy."""
    return {
        "images": np.ascontiguousarray(faces.images.numpy()),
        "labels": faces.labels.numpy(),
        "split": faces.split.numpy(),
        "split_names": faces.split_names,
        "class_names": faces.class_names,
        "soft_labels": None if faces.soft_labels is None else faces.soft_labels.numpy(),
    }


def from_shared(shared: dict[str, Any]) -> FaceSet:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the store's arrays are read-only; nothing writes to them
        tensor = lambda a: None if a is None else torch.from_numpy(a)  # noqa: E731
        return FaceSet(
            images=tensor(shared["images"]),
            labels=tensor(shared["labels"]),
            split=tensor(shared["split"]),
            split_names=tuple(shared["split_names"]),
            class_names=tuple(shared["class_names"]),
            soft_labels=tensor(shared["soft_labels"]),
        )


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """What goes to Ray: numbers, plus the confusion matrices as nested lists."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, list))}


def train_trial(
    config: dict[str, Any],
    *,
    data: dict[str, Any],
    base: dict[str, Any],
    variants: dict[str, Any],
    cpu: float,
    gpu: float,
) -> None:
    """The Ray trainable. ``config`` holds the sampled values; ``data`` comes from the object store."""
    from ray import tune

    run_config = trial_config(base, variants, config)
    run_config["trainer"]["device"] = "cuda" if gpu > 0 else "cpu"
    torch.set_num_threads(max(1, int(cpu)))
    if gpu > 0 and gpu < 1:
        torch.cuda.set_per_process_memory_fraction(gpu)  # a trial sharing a GPU keeps to its share
    trainer = Trainer(run_config, from_shared(data))
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            trainer.load_state_dict(
                torch.load(Path(folder) / CHECKPOINT_FILE, map_location=trainer.device, weights_only=False)
            )

    def report(metrics: dict[str, Any]) -> None:
        with tempfile.TemporaryDirectory() as folder:
            torch.save(trainer.state_dict(), Path(folder) / CHECKPOINT_FILE)
            tune.report(scalar_metrics(metrics), checkpoint=tune.Checkpoint.from_directory(folder))

    trainer.fit(on_epoch=report)
