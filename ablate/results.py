"""Ray's per-trial result files -> ``trials.parquet`` and ``epochs.parquet``, written atomically.

Built from the files (not from a callback's memory), so a study restored with ``--resume`` gets every trial,
and every trial's epochs exactly once (a trial resumed from a checkpoint may have re-reported an epoch: the
last report of an epoch wins).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import polars as pl

from ablate.io import atomic_path
from ablate.params import flatten
from ablate.study import trial_config

# Ray's bookkeeping fields that the tables leave out.
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
}
SUMMARY_METRICS = ("test_acc", "test_mean_class_acc", "val_acc", "val_mean_class_acc")
TRIAL_ID = re.compile(r"_([0-9a-f]{5}_\d{5})")


def read_trial(folder: Path) -> dict[str, Any]:
    """One trial folder: its sampled values, its epochs (deduplicated) and its error, if any."""
    params = json.loads((folder / "params.json").read_text()) if (folder / "params.json").is_file() else {}
    rows: dict[int, dict[str, Any]] = {}
    result = folder / "result.json"
    if result.is_file():
        for line in result.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                rows[int(row["epoch"])] = row
    error_file = folder / "error.txt"
    match = TRIAL_ID.search(folder.name)
    trial_id = next(iter(rows.values()))["trial_id"] if rows else (match.group(1) if match else folder.name)
    return {
        "trial_id": trial_id,
        "folder": folder.name,
        "params": params,
        "epochs": [rows[e] for e in sorted(rows)],
        "error": error_file.read_text().strip() if error_file.is_file() else None,
    }


def trial_row(trial: dict[str, Any], study: dict[str, Any]) -> dict[str, Any]:
    try:
        config = trial_config(study["base"], study["variants"], trial["params"])
    except Exception as err:
        config = {}
        trial["error"] = trial["error"] or f"config: {err}"
    epochs = trial["epochs"]
    planned = config.get("trainer", {}).get("epochs")
    status = "error" if trial["error"] else "complete" if epochs and epochs[-1]["epoch"] == planned else "stopped"
    row: dict[str, Any] = {
        "trial_id": trial["trial_id"],
        "status": status,
        "error": trial["error"].splitlines()[-1][:2000] if trial["error"] else None,
        "error_full": trial["error"],
        "variant": trial["params"].get("variant"),
        "repeat": int(trial["params"].get("__trial_index__", 0)),
        "epochs_done": len(epochs),
        "folder": trial["folder"],
    }
    for name in SUMMARY_METRICS:
        values = [e[name] for e in epochs if e.get(name) is not None]
        row[f"best_{name}"] = max(values) if values else None
        row[f"last_{name}"] = values[-1] if values else None
    row.update(
        {key: json.dumps(value) if isinstance(value, (list, dict)) else value for key, value in flatten(config).items()}
    )
    row["config_json"] = json.dumps(config, sort_keys=True)
    return row


def epoch_rows(trial: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"trial_id": trial["trial_id"], **{k: v for k, v in row.items() if k not in RAY_FIELDS and k != "trial_id"}}
        for row in trial["epochs"]
    ]


def write_parquet(frame: pl.DataFrame, path: Path) -> None:
    """Write to a temporary name in the same folder, then rename: readers never see half a file."""
    with atomic_path(path) as tmp:
        frame.write_parquet(tmp)


def collect(experiment: Path, out: Path, study: dict[str, Any]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Read every trial folder under ``experiment``; write ``out/trials.parquet`` and ``out/epochs.parquet``."""
    trials = [read_trial(f) for f in sorted(experiment.iterdir()) if f.is_dir() and (f / "params.json").is_file()]
    trial_frame = pl.DataFrame([trial_row(t, study) for t in trials], infer_schema_length=None)
    rows = [r for t in trials for r in epoch_rows(t)]
    epoch_frame = (
        pl.DataFrame(rows, infer_schema_length=None)
        if rows
        else pl.DataFrame({"trial_id": [], "epoch": []}, schema={"trial_id": pl.String, "epoch": pl.Int64})
    )
    out.mkdir(parents=True, exist_ok=True)
    write_parquet(trial_frame, out / "trials.parquet")
    write_parquet(epoch_frame, out / "epochs.parquet")
    return trial_frame, epoch_frame
