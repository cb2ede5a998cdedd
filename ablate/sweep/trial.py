"""One Ray Tune trial: its config (a baseline's, or the base with its variant, plus the sampled values), a
Trainer, and a report after every epoch, with the config the trial really trained with and where it ran.

Each epoch also saves the trial's own checkpoint, ``ablate_checkpoint.pt`` in its folder of the experiment:
the trainer's state and every epoch reported so far, overwritten whole each epoch. Ray's checkpoints are not
used: Ray deletes an old checkpoint before its experiment state on storage names the new one, so a driver
killed in between leaves a state that points at nothing ("Could not recover from checkpoint as it does not
exist on storage anymore"). A resumed trial first reports again every epoch it had reached (Ray's copy of the
results may lag behind a kill, and the scheduler must see a stopped trial's milestone again to stop it again),
then trains on.
"""

from __future__ import annotations

import copy
import io
import json
import socket
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ablate.config.metrics import CORRECT
from ablate.config.study import trial_config
from ablate.data import FaceSet
from ablate.io import load_checkpoint_safely
from ablate.results.records import CHECKPOINT_FILE, CONFIG_KEY, DEVICE_KEY, HOST_KEY, NODE_KEY, TrialDiverged
from ablate.results.storage import Storage
from ablate.training.runtime import configure_threads
from ablate.training.trainer import Diverged, Trainer


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

        def tensor(array):
            return None if array is None else torch.from_numpy(array)

        return FaceSet(
            images=tensor(shared["images"]),
            labels=tensor(shared["labels"]),
            split=tensor(shared["split"]),
            split_names=tuple(shared["split_names"]),
            class_names=tuple(shared["class_names"]),
            soft_labels=tensor(shared["soft_labels"]),
        )


def reportable(metrics: dict[str, Any]) -> dict[str, Any]:
    """What goes to Ray: numbers, the confusion matrices as nested lists, and the validation faces' packed
    right-or-wrong (``val_correct``)."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, list)) or k == CORRECT}


def identity(trainer: Trainer) -> dict[str, Any]:
    """The config the trial trains with (trainer.device: the device it really runs on), its node and host."""
    import ray

    ran = copy.deepcopy(trainer.config)
    ran["trainer"]["device"] = trainer.device.type
    return {
        CONFIG_KEY: json.dumps(ran, sort_keys=True),
        NODE_KEY: ray.get_runtime_context().get_node_id(),
        HOST_KEY: socket.gethostname(),
        DEVICE_KEY: str(trainer.device),
    }


def load_checkpoint(storage: Storage) -> dict[str, Any] | None:
    if not storage.is_file(CHECKPOINT_FILE):
        return None
    return load_checkpoint_safely(storage.read_bytes(CHECKPOINT_FILE), f"{storage}/{CHECKPOINT_FILE}")


def save_checkpoint(storage: Storage, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    storage.write_bytes(CHECKPOINT_FILE, buffer.getvalue())


def train_trial(
    config: dict[str, Any],
    *,
    data: dict[str, Any],
    base: dict[str, Any],
    variants: dict[str, Any],
    baselines: dict[str, Any],
    experiment: str,
    cpu: float,
    gpu: float,
) -> None:
    """The Ray trainable. ``config`` holds the sampled values; ``data`` comes from the object store;
    ``experiment`` is where Ray keeps this experiment (a folder or a URI)."""
    from ray import tune

    run_config = trial_config(base, variants, config, baselines)
    run_config["trainer"]["device"] = "cuda" if gpu > 0 else "cpu"
    configure_threads(cpu)  # threads for its share of cores, pinned to free ones: packed trials do not contend
    if 0 < gpu < 1:
        torch.cuda.set_per_process_memory_fraction(gpu)  # a trial sharing a GPU keeps to its share
    trainer = Trainer(run_config, from_shared(data))
    ran = identity(trainer)
    folder = Storage(experiment).child(Path(tune.get_context().get_trial_dir()).name)
    reported: list[dict[str, Any]] = []
    saved = load_checkpoint(folder)
    if saved is not None:
        trainer.load_state_dict(saved["trainer"])
        reported = saved["reported"]
        for metrics in reported:
            tune.report({**metrics, **ran})

    def on_epoch(metrics: dict[str, Any]) -> None:
        row = reportable(metrics)
        reported.append(row)
        save_checkpoint(folder, {"trainer": trainer.state_dict(), "reported": reported})
        tune.report({**row, **ran})

    try:
        trainer.fit(on_epoch=on_epoch)
    except Diverged as err:
        # Raised, so that Ray records a failed trial and Optuna is told so; the results read the step back.
        raise TrialDiverged(err.step, err.epoch, err.loss, "Lower trainer.lr or a loss weight") from None
