"""A study's Ray experiments -> ``trials.parquet`` and ``epochs.parquet``, from what the trials recorded.

Ray's own API (``ray.tune.ExperimentAnalysis``) says which trials an experiment has, their ids, statuses and
errors; each trial's ``result.json`` holds its epochs as it reported them, each with the config the trial
trained with and where it ran. Nothing is re-derived through the training code, so reading results imports
neither torch nor the trainer. A trial that failed before its first report has no recorded config: its row
gets the config composed from ``study.json`` and the values Ray sampled for it (``ablate.config.compose``).

A trial resumed from its checkpoint reports its earlier epochs again: the last report of an epoch wins, so each
epoch appears once.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from typing import Any

import polars as pl

from ablate.config.compose import BASELINE as BASELINE_KEY
from ablate.config.compose import CONFIRMS, REPEAT, TRIAL_INDEX, VARIANT, compose_config
from ablate.config.metrics import AT_BEST_VAL, ORACLE, TEST_METRICS, VAL_METRICS
from ablate.config.params import flatten
from ablate.results.records import (
    BASELINE,
    COMPLETE,
    CONFIG_KEY,
    CONFIRM,
    DEVICE_KEY,
    DIVERGED,
    EPOCHS_FILE,
    ERROR,
    EXPERIMENTS,
    HOST_KEY,
    IDENTITY_KEYS,
    NODE_KEY,
    SEARCH,
    STOPPED,
    TRIALS_FILE,
    added_seed,
    diverged_at,
)
from ablate.results.storage import Storage

# Ray's bookkeeping fields that the epochs table leaves out.
RAY_FIELDS = {
    "config",
    "date",
    "hostname",
    "node_ip",
    "pid",
    "done",
    "checkpoint_dir_name",
    "should_checkpoint",
    "experiment_tag",
    "timestamp",
    "trial_id",
}
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# The columns tables show. A best-so-far or at-best-validation value is carried by every epoch, so the trial's
# is its last epoch's; last_* are the last epoch's own metrics.
LAST = (*VAL_METRICS, *TEST_METRICS)
CARRIED = (*(f"best_{m}" for m in VAL_METRICS), "best_val_epoch", *AT_BEST_VAL, *ORACLE)


@dataclass
class TrialRecord:
    """One trial as Ray knows it and as it reported itself."""

    trial_id: str
    ray_status: str  # Ray's: TERMINATED, ERROR, or RUNNING / PENDING / PAUSED when the run was interrupted
    role: str
    sampled: dict[str, Any]
    epochs: list[dict[str, Any]]
    error: str | None
    folder: str


def read_epochs(storage: Storage, trial_path: str) -> list[dict[str, Any]]:
    """A trial's result.json, one row per epoch (the last report of an epoch wins), in epoch order."""
    path = f"{trial_path}/result.json"
    try:
        with storage.fs.open_input_stream(path) as f:
            text = f.readall().decode()
    except FileNotFoundError:
        return []
    rows: dict[int, dict[str, Any]] = {}
    for line in text.splitlines():
        if line.strip():
            row = json.loads(line)
            if "epoch" in row:
                rows[int(row["epoch"])] = row
    return [rows[e] for e in sorted(rows)]


def experiment_names(storage: Storage, role: str) -> list[str]:
    """The experiment folders of ``role``: its own, then those of the seeds added until decided, by seed."""
    added = {}
    for info in storage.fs.get_file_info(_selector(storage.path())):
        seed = added_seed(info.base_name, role)
        if seed is not None and info.type.name == "Directory":
            added[seed] = info.base_name
    return [EXPERIMENTS[role], *(added[s] for s in sorted(added))]


def read_role(storage: Storage, role: str) -> list[TrialRecord]:
    """Every trial of ``role``: its experiment's, then each added seed's."""
    return [t for name in experiment_names(storage, role) for t in read_experiment(storage, role, name)]


def read_experiment(storage: Storage, role: str, name: str | None = None) -> list[TrialRecord]:
    """The trials of one of the study's experiments (``role``'s own, or the folder ``name`` holding trials of
    that role), in the order Ray created them; [] if it never started."""
    experiment = storage.child(name or EXPERIMENTS[role])
    if not experiment.is_dir() or not any(
        info.base_name.startswith("experiment_state")
        for info in experiment.fs.get_file_info(_selector(experiment.path()))
    ):
        return []
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(experiment.location)
    records = []
    for trial in sorted(analysis.trials, key=_creation_index):
        error = trial.get_error() if trial.status == "ERROR" else None
        path = trial.path
        assert path is not None, trial  # a trial that Tune restored from its experiment always has its folder
        records.append(
            TrialRecord(
                trial_id=trial.trial_id,
                ray_status=trial.status,
                role=role,
                sampled=dict(trial.config),
                epochs=read_epochs(experiment, path),
                error=plain(error),
                folder=path.rstrip("/").rsplit("/", 1)[-1],
            )
        )
    return records


def plain(error: Any) -> str | None:
    """Ray's error text without its terminal colours."""
    return ANSI.sub("", str(error)).strip() if error else None


def _creation_index(trial) -> int:
    """Ray numbers its trials as it creates them; the experiment tag starts with that number."""
    head = str(trial.experiment_tag).split("_", 1)[0]
    return int(head) if head.isdigit() else 0


def _selector(path: str):
    import pyarrow.fs as pafs

    return pafs.FileSelector(path, allow_not_found=True)


def composed_config(trial: TrialRecord, study: dict[str, Any]) -> dict[str, Any]:
    """The config of a trial that never reported one, from the study record and its sampled values."""
    try:
        return compose_config(study["base"], study.get("variants") or {}, trial.sampled, study.get("baseline_configs"))
    except (KeyError, TypeError):
        return {}


def status_of(trial: TrialRecord, planned: int | None) -> str:
    if trial.ray_status == "ERROR":
        return DIVERGED if diverged_at(trial.error) else ERROR
    done = len(trial.epochs)
    # TERMINATED short of the planned epochs: stopped by the scheduler; RUNNING / PENDING: interrupted.
    return COMPLETE if planned is not None and done >= planned else STOPPED


def trial_row(trial: TrialRecord, study: dict[str, Any]) -> dict[str, Any]:
    last = trial.epochs[-1] if trial.epochs else {}
    config = json.loads(last[CONFIG_KEY]) if last.get(CONFIG_KEY) else composed_config(trial, study)
    status = status_of(trial, config.get("trainer", {}).get("epochs"))
    diverged = diverged_at(trial.error) if status == DIVERGED else None
    row: dict[str, Any] = {
        "trial_id": trial.trial_id,
        "status": status,
        "error": trial.error.splitlines()[-1][:2000] if trial.error else None,
        "error_full": trial.error,
        "role": trial.role,
        "baseline": trial.sampled.get(BASELINE_KEY) if trial.role == BASELINE else None,
        "variant": trial.sampled.get(VARIANT),
        "confirms": trial.sampled.get(CONFIRMS) if trial.role == CONFIRM else None,
        "repeat": int(trial.sampled.get(TRIAL_INDEX if trial.role == SEARCH else REPEAT, 0)),
        "epochs_done": len(trial.epochs),
        "node_id": last.get(NODE_KEY),
        "hostname": last.get(HOST_KEY),
        "device": last.get(DEVICE_KEY),
        "diverged_step": diverged[0] if diverged else None,
        "diverged_epoch": diverged[1] if diverged else None,
    }
    for name in CARRIED:
        row[name] = last.get(name)
        if row[name] is None and name.startswith("best_") and name != "best_val_epoch":
            # results written before the trainer reported best-so-far values
            values = [e[name[5:]] for e in trial.epochs if e.get(name[5:]) is not None]
            row[name] = max(values) if values else None
    for name in LAST:
        row[f"last_{name}"] = last.get(name)
    row["folder"] = trial.folder
    row.update(
        {key: json.dumps(value) if isinstance(value, (list, dict)) else value for key, value in flatten(config).items()}
    )
    row["config_json"] = json.dumps(config, sort_keys=True)
    return row


def epoch_rows(trial: TrialRecord) -> list[dict[str, Any]]:
    skip = RAY_FIELDS | set(IDENTITY_KEYS)
    return [{"trial_id": trial.trial_id, **{k: v for k, v in row.items() if k not in skip}} for row in trial.epochs]


def build_tables(trials: list[TrialRecord], study: dict[str, Any]) -> tuple[pl.DataFrame, pl.DataFrame]:
    if trials:
        trial_frame = pl.DataFrame([trial_row(t, study) for t in trials], infer_schema_length=None)
    else:
        trial_frame = pl.DataFrame(schema={"trial_id": pl.String, "status": pl.String, "role": pl.String})
    rows = [r for t in trials for r in epoch_rows(t)]
    epoch_frame = (
        pl.DataFrame(rows, infer_schema_length=None)
        if rows
        else pl.DataFrame(schema={"trial_id": pl.String, "epoch": pl.Int64})
    )
    return trial_frame, epoch_frame


def write_parquet(frame: pl.DataFrame, storage: Storage, name: str) -> None:
    """Whole or nothing: a local file is written to a temporary name and renamed; an upload is atomic."""
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    storage.write_bytes(name, buffer.getvalue())


def read_tables(storage: Storage, study: dict[str, Any]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The trials and epochs tables of every experiment of the study, written nowhere."""
    return build_tables([t for role in (SEARCH, BASELINE, CONFIRM) for t in read_role(storage, role)], study)


def collect(storage: Storage | str, study: dict[str, Any]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Read the study's experiments (the search, its baselines, its confirmation trials); write ``trials.parquet``
    and ``epochs.parquet`` in the study folder ``storage``."""
    storage = storage if isinstance(storage, Storage) else Storage(storage)
    trial_frame, epoch_frame = read_tables(storage, study)
    write_parquet(trial_frame, storage, TRIALS_FILE)
    write_parquet(epoch_frame, storage, EPOCHS_FILE)
    return trial_frame, epoch_frame
