"""Read a study's results folder: ``trials.parquet``, ``epochs.parquet`` and ``study.json``.

``python -m ablate.run`` writes the folder (the results contract: one row per trial, one row per trial and epoch,
the validated study). Results written before a column existed still load: a trials table without ``role`` gets
``role = "search"`` (no baselines) so that every analysis can ask for it; the selection columns that may be
missing are handled by ``ablate.results.selection``, which says so in the report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from ablate.errors import AblateError
from ablate.results.records import SEARCH

TRIALS_FILE, EPOCHS_FILE, STUDY_FILE = "trials.parquet", "epochs.parquet", "study.json"


class ResultsError(AblateError):
    """A results folder is missing, incomplete, or does not hold what an analysis needs."""


@dataclass(frozen=True)
class Results:
    """One study's results: its trials, its epochs and its study record (``study.json``)."""

    path: Path
    trials: pl.DataFrame
    epochs: pl.DataFrame
    study: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.study.get("name") or self.path.name)


def load_results(folder: str | Path) -> Results:
    """Read ``folder``'s trials.parquet, epochs.parquet and study.json; a clear ``ResultsError`` otherwise."""
    path = Path(folder)
    if not path.is_dir():
        raise ResultsError(
            f"{path}: no such results folder; expected the folder `python -m ablate.run` wrote, "
            f"holding {TRIALS_FILE}, {EPOCHS_FILE} and {STUDY_FILE} (e.g. results/<study name>)"
        )
    missing = [name for name in (TRIALS_FILE, EPOCHS_FILE, STUDY_FILE) if not (path / name).is_file()]
    if missing:
        raise ResultsError(
            f"{path}: missing {', '.join(missing)}; a results folder holds {TRIALS_FILE}, {EPOCHS_FILE} and "
            f"{STUDY_FILE}. If the study was interrupted, `python -m ablate.run --space FILE --resume` rewrites them"
        )
    try:
        trials = pl.read_parquet(path / TRIALS_FILE)
        epochs = pl.read_parquet(path / EPOCHS_FILE)
    except Exception as err:
        raise ResultsError(f"{path}: cannot read the Parquet files ({err})") from None
    try:
        study = json.loads((path / STUDY_FILE).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ResultsError(f"{path / STUDY_FILE}: not a readable study record ({err})") from None
    if not isinstance(study, dict):
        raise ResultsError(
            f"{path / STUDY_FILE}: expected a JSON object (the study record), got {type(study).__name__}"
        )
    for column in ("trial_id", "status"):
        if column not in trials.columns:
            raise ResultsError(f"{path / TRIALS_FILE}: no {column!r} column; is this a trials table written by ablate?")
    return Results(path, with_roles(trials), epochs, study)


def with_roles(trials: pl.DataFrame) -> pl.DataFrame:
    """``trials`` with the ``role`` ("search" or "baseline") and ``baseline`` (its name) columns; results written
    before baselines existed hold only search trials."""
    if "role" not in trials.columns:
        trials = trials.with_columns(pl.lit(SEARCH).alias("role"))
    if "baseline" not in trials.columns:
        trials = trials.with_columns(pl.lit(None, dtype=pl.String).alias("baseline"))
    return trials.with_columns(pl.col("role").fill_null(SEARCH))
