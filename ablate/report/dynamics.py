"""The tables of what happened during training: per-epoch curves averaged per rung (or per trial in a search),
one trial's per-class thresholds, and a trial's per-class test accuracy and confusion matrix at one epoch.

Diverged and error trials are left out of the curves (their numbers are no results; ``selection.did_not_finish``
lists them). Accuracies are in %, thresholds confidences in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from ablate.results.layout import budget_key, budget_label, class_names, has_rungs, rung_order, with_rungs
from ablate.results.selection import Shown, finished, ranked_trial_ids, ranking, selected_epoch

CURVE_SCHEMA = {"group": pl.String, "epoch": pl.Int64, "n": pl.UInt32}


def _present(frame: pl.DataFrame, columns: Sequence[str]) -> list[str]:
    """The columns of ``columns`` that exist and hold at least one value."""
    return [c for c in columns if c in frame.columns and frame[c].null_count() < frame.height]


def trial_label(trials: pl.DataFrame, study: dict[str, Any]) -> pl.DataFrame:
    """A short label per finished trial for the curves. Columns: trial_id, group.

    In a ladder: the rung (baselines by their name), with the budget when the study has several. In a search:
    "trial id · ranking metric %", and each baseline as one group ("NAME (baseline)", its seeds averaged)."""
    done = with_rungs(finished(trials), study)
    key = budget_key(trials, study)
    several = key is not None and done[key].n_unique() > 1
    at = (
        [pl.lit(" · "), pl.col(key).cast(pl.String), pl.lit(f" {budget_label(key).lower()}")] if several and key else []
    )
    if has_rungs(trials):
        return done.select("trial_id", pl.concat_str([pl.col("rung").fill_null("?"), *at]).alias("group"))
    rank = ranking(study, trials)
    if rank.column in done.columns:
        metric = pl.format("{}%", (pl.col(rank.column) * 100).round(1)).fill_null("no metric")
        search = pl.concat_str([pl.col("trial_id"), pl.lit(" · "), metric])
    else:
        search = pl.col("trial_id")
    baseline = pl.concat_str([pl.col("baseline").fill_null("?"), pl.lit(" (baseline)"), *at])
    return done.select(
        "trial_id", pl.when(pl.col("role") == "baseline").then(baseline).otherwise(search).alias("group")
    )


def _group_order(trials: pl.DataFrame, study: dict[str, Any], labels: pl.DataFrame, max_groups: int) -> list[str]:
    """Ladder: by budget, then rung (all of them). Search: the baselines, then the ``max_groups`` best trials."""
    if has_rungs(trials):
        rung = {r: i for i, r in enumerate(rung_order(study, trials))}
        key = budget_key(trials, study)
        frame = labels.join(
            with_rungs(trials, study).select("trial_id", "rung", *([key] if key else [])), on="trial_id"
        ).with_columns(pl.col("rung").replace_strict(rung, default=len(rung), return_dtype=pl.Int64).alias("_r"))
        return frame.sort(*([key] if key else []), "_r")["group"].unique(maintain_order=True).to_list()
    baselines = labels.join(trials.filter(pl.col("role") == "baseline").select("trial_id"), on="trial_id")
    ranked = pl.DataFrame({"trial_id": ranked_trial_ids(trials, study)}, schema={"trial_id": pl.String})
    best = ranked.join(labels, on="trial_id", how="left", maintain_order="left")["group"].to_list()[:max_groups]
    return baselines["group"].unique(maintain_order=True).to_list() + best


def curves(
    epochs: pl.DataFrame, trials: pl.DataFrame, study: dict[str, Any], columns: Sequence[str], max_groups: int = 8
) -> pl.DataFrame:
    """Per-epoch curves of ``columns`` (fractions), averaged over the trials of each group (``trial_label``):
    one row per group and epoch, columns group, epoch, n (trials) and ``<column>_pct`` for each column, in %.
    Groups in ``_group_order``. Rows where none of the columns was recorded (a component that is off) are left
    out."""
    cols = _present(epochs, columns)
    if not cols or not epochs.height:
        return pl.DataFrame(schema=CURVE_SCHEMA)
    labels = trial_label(trials, study)
    joined = epochs.select("trial_id", "epoch", *cols).join(labels, on="trial_id", how="inner")
    out = joined.group_by("group", "epoch").agg(
        pl.len().alias("n"), *[(pl.col(c).mean() * 100).alias(f"{c}_pct") for c in cols]
    )
    rank = {g: i for i, g in enumerate(_group_order(trials, study, labels, max_groups))}
    out = out.filter(
        pl.col("group").is_in(list(rank)) & pl.any_horizontal([pl.col(f"{c}_pct").is_not_null() for c in cols])
    )
    return (
        out.with_columns(pl.col("group").replace_strict(rank, return_dtype=pl.Int64).alias("_o"))
        .sort("_o", "epoch")
        .drop("_o")
    )


def thresholds(epochs: pl.DataFrame, trial_id: str) -> pl.DataFrame:
    """One trial's per-class thresholds over epochs, long: epoch, class, threshold (a confidence in [0, 1])."""
    names = class_names(epochs)
    cols = _present(epochs.filter(pl.col("trial_id") == trial_id), [f"threshold_{c}" for c in names])
    if not cols:
        return pl.DataFrame(schema={"epoch": pl.Int64, "class": pl.String, "threshold": pl.Float64})
    return (
        epochs.filter(pl.col("trial_id") == trial_id)
        .select("epoch", *cols)
        .unpivot(index="epoch", on=cols, variable_name="class", value_name="threshold")
        .with_columns(pl.col("class").str.strip_prefix("threshold_"))
        .sort("epoch")
    )


def threshold_trial(trials: pl.DataFrame, epochs: pl.DataFrame, study: dict[str, Any]) -> tuple[str | None, bool]:
    """The trial whose thresholds to show: the best-ranked search trial whose thresholds move (differ between
    classes or epochs: an adaptive threshold), else the best one with thresholds at all. Returns (id, moving)."""
    cols = [f"threshold_{c}" for c in class_names(epochs) if f"threshold_{c}" in epochs.columns]
    if not cols:
        return None, False
    spread = (
        epochs.filter(pl.any_horizontal([pl.col(c).is_not_null() for c in cols]))
        .group_by("trial_id")
        .agg(pl.concat_list(cols).explode().n_unique().alias("distinct"))
    )
    moving = set(spread.filter(pl.col("distinct") > 1)["trial_id"].to_list())
    ranked = ranked_trial_ids(trials, study)
    for trial in ranked:
        if trial in moving:
            return trial, True
    having = set(spread["trial_id"].to_list())
    return next((t for t in ranked if t in having), None), False


PER_CLASS_SCHEMA = {"class": pl.String, "accuracy_pct": pl.Float64, "support": pl.Int64}


def per_class_accuracy(epochs: pl.DataFrame, trial_id: str, epoch: int) -> pl.DataFrame:
    """One trial's per-class test accuracy (in %) at ``epoch``, with each class's test support (from the
    confusion matrix). Columns: class, accuracy_pct, support."""
    names = class_names(epochs)
    row = epochs.filter((pl.col("trial_id") == trial_id) & (pl.col("epoch") == epoch))
    if not row.height or not names:
        return pl.DataFrame(schema=PER_CLASS_SCHEMA)
    r = row.row(0, named=True)
    matrix = r.get("test_confusion")
    support = [int(sum(line)) for line in matrix] if matrix else [None] * len(names)
    return pl.DataFrame(
        {
            "class": names,
            "accuracy_pct": [None if r.get(f"test_acc_{c}") is None else r[f"test_acc_{c}"] * 100 for c in names],
            "support": support,
        },
        schema=PER_CLASS_SCHEMA,
    )


def mean_per_class_accuracy(
    epochs: pl.DataFrame, trials: pl.DataFrame, trial_ids: Sequence[str], shown: Shown
) -> pl.DataFrame:
    """The per-class test accuracy (in %) averaged over ``trial_ids``, each at the epoch ``shown`` selects
    (e.g. a baseline's seeds). Columns: class, accuracy_pct, n (trials)."""
    parts = []
    for trial in trial_ids:
        epoch = selected_epoch(trials, epochs, trial, shown)
        if epoch is not None:
            parts.append(per_class_accuracy(epochs, trial, epoch).drop("support"))
    if not parts:
        return pl.DataFrame(schema={"class": pl.String, "accuracy_pct": pl.Float64, "n": pl.UInt32})
    return (
        pl.concat(parts)
        .group_by("class", maintain_order=True)
        .agg(pl.col("accuracy_pct").mean(), pl.col("accuracy_pct").count().alias("n"))
    )


def confusion(epochs: pl.DataFrame, trial_id: str, epoch: int, normalize: bool = False) -> pl.DataFrame:
    """One trial's test confusion matrix at ``epoch``: a column ``true`` (the true class; rows) and one column
    per predicted class. Counts, or with ``normalize`` each row in % of its true class."""
    names = class_names(epochs)
    row = epochs.filter((pl.col("trial_id") == trial_id) & (pl.col("epoch") == epoch))
    if not row.height or "test_confusion" not in epochs.columns or row["test_confusion"][0] is None:
        return pl.DataFrame(schema={"true": pl.String})
    matrix = [list(line) for line in row["test_confusion"][0]]
    if len(names) != len(matrix):
        names = [str(i) for i in range(len(matrix))]
    if normalize:
        matrix = [[100.0 * v / sum(line) if sum(line) else 0.0 for v in line] for line in matrix]
    data = {"true": names} | {name: [line[j] for line in matrix] for j, name in enumerate(names)}
    return pl.DataFrame(data)
