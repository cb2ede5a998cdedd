"""What every number is compared with: chance, the majority class of the test split, and the study's baseline
trials (role "baseline", e.g. supervised-only) as mean ± std and 95 % interval over their seeds.

The floors come from ``study.json``'s ``reference`` (fractions, as every accuracy is stored); results written
before it existed fall back to a recorded test confusion matrix, whose row sums are the test split's class
counts. A number below the majority-class rate is no result: ``below_majority`` flags it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from ablate.results.layout import baseline_names, budget_key, class_names
from ablate.results.records import BASELINE
from ablate.results.selection import Shown, finished
from ablate.results.stats import mean_interval

SUPERVISED = "supervised"  # the baseline every gain is measured against, when the study ran it
BELOW_MAJORITY = "below the majority-class rate: not a result"


@dataclass(frozen=True)
class Reference:
    """The floors of the test split, in %: chance (1/K), and always answering the majority class."""

    classes: int
    chance_pct: float  # 100 / K: a uniform guess, and the mean class accuracy of any constant answer
    majority_class: str
    majority_acc_pct: float  # the majority class's share of the test split
    majority_mca_pct: float  # its mean class accuracy: 100 / K
    test_images: int | None
    source: str  # where the numbers were read


def reference_levels(study: dict[str, Any], epochs: pl.DataFrame) -> Reference | None:
    """The floors from study.json's ``reference``, else from the first recorded test confusion matrix; None
    when neither exists."""
    ref = study.get("reference") or {}
    names = [str(n) for n in ref.get("class_names") or []] or class_names(epochs)
    counts = [int(c) for c in ref.get("test_class_counts") or []]
    if ref and (counts or ref.get("majority_test_acc") is not None):
        k = len(counts) or len(names)
        if k:
            top = max(range(len(counts)), key=counts.__getitem__) if counts else None
            chance = ref.get("chance", 1.0 / k)
            majority = ref.get("majority_class") or (names[top] if top is not None and top < len(names) else str(top))
            acc = ref.get("majority_test_acc")
            if acc is None:
                acc = counts[top] / sum(counts) if top is not None else chance
            mca = ref.get("majority_test_mean_class_acc", 1.0 / k)
            return Reference(
                k, 100 * chance, str(majority), 100 * acc, 100 * mca, sum(counts) or None, "study.json reference"
            )
    support = _confusion_support(epochs)
    if not support:
        return None
    k, top = len(support), max(range(len(support)), key=support.__getitem__)
    return Reference(
        k,
        100.0 / k,
        names[top] if len(names) == k else str(top),
        100.0 * support[top] / max(1, sum(support)),
        100.0 / k,
        sum(support),
        "the row sums of a recorded test confusion matrix (this study predates study.json's reference)",
    )


def _confusion_support(epochs: pl.DataFrame) -> list[int]:
    if "test_confusion" not in epochs.columns:
        return []
    matrices = epochs["test_confusion"].drop_nulls()
    return [int(sum(row)) for row in matrices[0]] if matrices.len() else []


def below_majority(acc_pct: float | None, mca_pct: float | None, ref: Reference | None) -> bool:
    """Whether an accuracy or a mean class accuracy is below what always answering the majority class scores."""
    if ref is None:
        return False
    return (acc_pct is not None and acc_pct < ref.majority_acc_pct) or (
        mca_pct is not None and mca_pct < ref.majority_mca_pct
    )


def reference_rung(names: list[str]) -> str | None:
    """The baseline gains are measured against: supervised-only when the study ran it, else the first one."""
    if not names:
        return None
    return SUPERVISED if SUPERVISED in names else names[0]


def baseline_trials(trials: pl.DataFrame, name: str | None = None) -> pl.DataFrame:
    """The finished baseline trials (of one baseline when ``name`` is given)."""
    if "role" not in trials.columns:
        return trials.clear()
    out = finished(trials).filter(pl.col("role") == BASELINE)
    return out.filter(pl.col("baseline") == name) if name is not None else out


def baseline_at(trials: pl.DataFrame, study: dict[str, Any], name: str, trial_id: str | None) -> pl.DataFrame:
    """The finished trials of baseline ``name`` at the label budget of ``trial_id`` (all of them when the study
    has no budget key or no such trial): the seeds a trial is compared with."""
    base = baseline_trials(trials, name)
    key = budget_key(trials, study)
    if key and trial_id is not None:
        at = trials.filter(pl.col("trial_id") == trial_id)[key]
        if at.len() and at[0] is not None:
            base = base.filter(pl.col(key) == at[0])
    return base


BASELINE_COLUMNS = {
    "baseline": pl.String,
    "budget": pl.Float64,
    "n": pl.Int64,
    **{f"{m}_{s}": pl.Float64 for m in ("acc", "mca") for s in ("mean", "std", "low", "high")},
    "trial_ids": pl.String,
}


def baseline_table(trials: pl.DataFrame, study: dict[str, Any], shown: Shown, budget: str | None) -> pl.DataFrame:
    """Each baseline at each label budget: seeds (n), the shown accuracy and mean class accuracy as mean, std and
    95 % t-interval (low, high) over its seeds (in %), and its trial ids."""
    rows = []
    for name in baseline_names(trials, study):
        runs = (
            baseline_trials(trials, name).filter(pl.col(shown.acc).is_not_null())
            if shown.acc in trials.columns
            else None
        )
        if runs is None or not runs.height:
            continue
        groups = runs.partition_by(budget, maintain_order=True, as_dict=True) if budget else {(None,): runs}
        for (value,), group in groups.items():
            acc = mean_interval([100 * v for v in group[shown.acc].to_list()])
            mca = mean_interval(
                [100 * v for v in group[shown.mca].drop_nulls().to_list()] if shown.mca in group.columns else []
            )
            row: dict[str, Any] = {
                "baseline": name,
                "budget": None if value is None else float(value),
                "n": group.height,
            }
            for key, m in (("acc", acc), ("mca", mca)):
                row |= {f"{key}_mean": m.mean, f"{key}_std": m.std, f"{key}_low": m.low, f"{key}_high": m.high}
            rows.append(row | {"trial_ids": ", ".join(group["trial_id"].to_list())})
    return pl.DataFrame(rows, schema=BASELINE_COLUMNS)
