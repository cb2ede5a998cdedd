"""Which numbers a report shows and which trials count: the honest-numbers rules, in one place.

- **Shown numbers** (``--which``): ``val`` (default) shows each trial's test metrics at its best-validation epoch,
  ``last`` its last-epoch test metrics, ``oracle`` its best test metrics (selected on test: labelled
  ``ORACLE_LABEL`` wherever they appear). Results written before validation selection have no at-best-val
  columns: ``val`` falls back to the best test metrics, labelled oracle, and says that the study predates
  validation selection.
- **Ranking** (the best trial, the best trials, the curves' top trials): the study's ``search.metric``, a
  validation metric by default. A test metric ranks only when ``study.json`` says ``search.select_on_test: true``,
  and then everything built from the ranking is labelled oracle. An older study that searched on test without
  saying so is ranked on validation when its trials have it, else on test, labelled oracle.
- **Trials that count**: diverged and error trials are never ranked nor averaged (``finished``); they are
  listed by ``did_not_finish``. Baseline trials are references, not candidates: the ranking holds search trials.
- **The best config**: search trials identical but for their seeds are one config; the best config has the
  best mean ranking metric over its seeds, and the best trial is its best seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from ablate.config.metrics import AT_BEST_VAL, ORACLE, TEST_METRICS, TEST_SELECTED_METRICS, VAL_METRICS
from ablate.results.layout import config_expr, pair_expr
from ablate.results.records import CONFIRM, FAILED, SEARCH

WHICH = ("val", "last", "oracle")
ORACLE_LABEL = "oracle (selected on test)"
PREDATES = "this study predates validation selection"
LAST = tuple(f"last_{m}" for m in TEST_METRICS)


@dataclass(frozen=True)
class Shown:
    """The two test numbers a table or figure shows per trial (trials columns, fractions) and what they are."""

    which: str
    acc: str
    mca: str
    oracle: bool  # selected on test: every table or figure of them carries ORACLE_LABEL
    what: str  # e.g. "test accuracy at the best-validation epoch"
    note: str = ""  # why the columns differ from what was asked, when they do

    @property
    def epoch_words(self) -> str:
        return {"val": "best-validation epoch", "last": "last epoch", "oracle": "best test epoch"}[self.epoch_kind]

    @property
    def epoch_kind(self) -> str:
        return "oracle" if self.oracle else self.which


def shown_numbers(trials: pl.DataFrame, which: str = "val") -> Shown:
    """The columns behind ``which`` (see the module docstring), with the fallback of older results."""
    if which not in WHICH:
        raise ValueError(f"which: expected one of {', '.join(WHICH)}, got {which!r}")
    if which == "last":
        return Shown("last", LAST[0], LAST[1], oracle=False, what="test at the last epoch")
    oracle = Shown("oracle", ORACLE[0], ORACLE[1], oracle=True, what=f"test at the best test epoch, an {ORACLE_LABEL}")
    if which == "oracle":
        return oracle
    if not all(c in trials.columns for c in AT_BEST_VAL):
        note = f"{PREDATES}: its trials have no {AT_BEST_VAL[0]}; showing the best test numbers, {ORACLE_LABEL}"
        return Shown("val", ORACLE[0], ORACLE[1], oracle=True, what=oracle.what, note=note)
    if trials.height and trials[AT_BEST_VAL[0]].null_count() == trials.height:
        note = (
            f"no trial has a validation-selected test number (no validation split: data.val_per_class 0); "
            f"showing the best test numbers, {ORACLE_LABEL}"
        )
        return Shown("val", ORACLE[0], ORACLE[1], oracle=True, what=oracle.what, note=note)
    return Shown("val", AT_BEST_VAL[0], AT_BEST_VAL[1], oracle=False, what="test at the best-validation epoch")


def metric_column(metric: str) -> str:
    """A search metric as a trials column: an epoch metric (``val_acc``) is read at the last epoch
    (``last_val_acc``); a bookkeeping one (``best_val_acc``, ``test_acc_at_best_val``) is a column already."""
    if metric.startswith(("best_", "last_")) or metric.endswith("_at_best_val"):
        return metric
    return f"last_{metric}"


@dataclass(frozen=True)
class Ranking:
    """How trials are ranked: a trials column, its mode, whether it is selected on test, and why."""

    column: str
    mode: str
    oracle: bool
    note: str = ""

    @property
    def descending(self) -> bool:
        return self.mode == "max"


def _has_values(trials: pl.DataFrame, column: str) -> bool:
    return column in trials.columns and trials[column].null_count() < trials.height


def ranking(study: dict[str, Any], trials: pl.DataFrame) -> Ranking:
    """The ranking of the study's search metric (see the module docstring)."""
    search = study.get("search") or {}
    metric = str(search.get("metric") or "best_val_acc")
    mode = str(search.get("mode") or "max")
    column = metric_column(metric)
    if metric not in TEST_SELECTED_METRICS or search.get("select_on_test") is True:
        return Ranking(column, mode, oracle=metric in TEST_SELECTED_METRICS)
    # the validation twin of the test metric (the validation split is balanced: its two metrics agree)
    fallback = f"best_{VAL_METRICS[1] if 'mean_class' in metric else VAL_METRICS[0]}"
    if _has_values(trials, fallback):
        note = (
            f"the study's search metric {metric} is a test metric without search.select_on_test; "
            f"ranked on {fallback} instead"
        )
        return Ranking(fallback, "max", oracle=False, note=note)
    note = f"{PREDATES}: it searched on {metric}, a test metric, and its trials have no validation metric"
    return Ranking(column, mode, oracle=True, note=note)


def labelled(title: str, oracle: bool) -> str:
    """``title``, with the oracle label when what it shows was selected on test."""
    return f"{title}: {ORACLE_LABEL}" if oracle else title


# ---- which trials count ---------------------------------------------------------------------------------


def finished(trials: pl.DataFrame) -> pl.DataFrame:
    """The trials whose numbers are results: every status but diverged and error."""
    return trials.filter(~pl.col("status").is_in(list(FAILED)))


def search_trials(trials: pl.DataFrame) -> pl.DataFrame:
    """The finished search trials: the candidates of every ranking (never a baseline or a confirmation trial)."""
    return finished(trials).filter(pl.col("role") == SEARCH) if "role" in trials.columns else finished(trials)


def did_not_finish(trials: pl.DataFrame) -> pl.DataFrame:
    """The diverged and error trials: trial_id, status, what it was (role, variant or baseline), epochs done,
    the step and epoch of its divergence, its error line. Never ranked nor averaged."""
    columns = {
        "trial_id": pl.String,
        "status": pl.String,
        "role": pl.String,
        "variant": pl.String,
        "baseline": pl.String,
        "epochs_done": pl.Int64,
        "diverged_step": pl.Int64,
        "diverged_epoch": pl.Int64,
        "error": pl.String,
    }
    failed = trials.filter(pl.col("status").is_in(list(FAILED)))
    return failed.select(
        [
            (pl.col(c) if c in trials.columns else pl.lit(None)).cast(dtype, strict=False).alias(c)
            for c, dtype in columns.items()
        ]
    ).sort("status", "trial_id")


# ---- the best config and the best trial ----------------------------------------------------------------


def ranked_configs(trials: pl.DataFrame, study: dict[str, Any]) -> pl.DataFrame:
    """The finished search trials grouped into configs (identical but for their seeds), best first by the mean
    ranking metric over seeds. Columns: config, metric (the mean), n, trial_ids (best seed first)."""
    rank = ranking(study, trials)
    candidates = search_trials(trials)
    empty = pl.DataFrame(
        schema={"config": pl.String, "metric": pl.Float64, "n": pl.UInt32, "trial_ids": pl.List(pl.String)}
    )
    if rank.column not in candidates.columns:
        return empty
    scored = candidates.filter(pl.col(rank.column).is_not_null())
    if not scored.height:
        return empty
    return (
        scored.with_columns(config_expr(scored))
        .sort(rank.column, descending=rank.descending)
        .group_by("config", maintain_order=True)
        .agg(pl.col(rank.column).mean().alias("metric"), pl.len().alias("n"), pl.col("trial_id").alias("trial_ids"))
        .sort("metric", descending=rank.descending, maintain_order=True)
    )


def best_config(trials: pl.DataFrame, study: dict[str, Any]) -> list[str]:
    """The trial ids of the best config (its seeds), its best seed first; empty when no trial is ranked."""
    configs = ranked_configs(trials, study)
    return configs["trial_ids"][0].to_list() if configs.height else []


def confirmed_config(trials: pl.DataFrame, study: dict[str, Any]) -> list[str]:
    """The trial ids behind the best config's numbers: its search trials and its finished confirmation trials
    (role confirm, the same config re-run on the baselines' seeds; ``confirms`` names the search trial they
    re-run), one trial per seed (a confirmation trial replaces a search trial of its seeds), the best seed
    first."""
    ids = best_config(trials, study)
    if not ids or "role" not in trials.columns or "confirms" not in trials.columns:
        return ids
    confirm = finished(trials).filter((pl.col("role") == CONFIRM) & pl.col("confirms").is_in(ids))
    if not confirm.height:
        return ids
    covered = set(confirm.select(pair_expr(confirm))["pair"].to_list())
    search = trials.filter(pl.col("trial_id").is_in(ids))
    kept = search.with_columns(pair_expr(search)).filter(~pl.col("pair").is_in(list(covered)))["trial_id"].to_list()
    return [i for i in ids if i in kept] + confirm["trial_id"].to_list()


def best_trial_id(trials: pl.DataFrame, study: dict[str, Any]) -> str | None:
    """The best seed of the best config."""
    ids = best_config(trials, study)
    return ids[0] if ids else None


def ranked_trial_ids(trials: pl.DataFrame, study: dict[str, Any]) -> list[str]:
    """The finished search trials, best first by the ranking metric (trials without it left out)."""
    rank = ranking(study, trials)
    candidates = search_trials(trials)
    if rank.column not in candidates.columns:
        return []
    return (
        candidates.filter(pl.col(rank.column).is_not_null())
        .sort(rank.column, descending=rank.descending)["trial_id"]
        .to_list()
    )


# ---- the epoch a trial's numbers come from ------------------------------------------------------------


def selected_epoch(trials: pl.DataFrame, epochs: pl.DataFrame, trial_id: str, shown: Shown) -> int | None:
    """The epoch whose test numbers ``shown`` reports for a trial: its best-validation epoch (the latest among
    ties, as ablate.config.metrics keeps it), its last epoch, or (oracle) its best test epoch (the first among ties)."""
    rows = epochs.filter(pl.col("trial_id") == trial_id) if "trial_id" in epochs.columns else epochs.clear()
    if not rows.height:
        return None
    if shown.epoch_kind == "last":
        return int(max(rows["epoch"].to_list()))
    if shown.epoch_kind == "val":
        row = trials.filter(pl.col("trial_id") == trial_id)
        if "best_val_epoch" in row.columns and row.height and row["best_val_epoch"][0] is not None:
            return int(row["best_val_epoch"][0])
        if "val_acc" in rows.columns and rows["val_acc"].drop_nulls().len():
            scored = rows.filter(pl.col("val_acc").is_not_null())
            return int(scored.sort("val_acc", "epoch", descending=[True, True])["epoch"][0])
        return None
    if "test_acc" not in rows.columns or not rows["test_acc"].drop_nulls().len():
        return None
    scored = rows.filter(pl.col("test_acc").is_not_null())
    return int(scored.sort("test_acc", "epoch", descending=[True, False])["epoch"][0])
