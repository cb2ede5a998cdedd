"""How a study lays out its trials: label budgets, the ladder's rungs (baselines first), the seeds that pair
trials, the configs that repeat over seeds, the searched keys and the class names.

Pure functions of ``study.json`` and the trials / epochs tables; no statistics, no selection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from ablate.config.budget import BUDGET_COLUMNS
from ablate.results.records import BASELINE

# The seeds two trials are paired on (at the same budget); ``trainer.seed`` already includes a repeat's index.
SEED_KEYS = ("trainer.seed", "data.split_seed")
# Searched keys that lay out an ablation (its rungs, budgets and seeds) rather than tune a hyper-parameter.
LADDER_AXES = ("variant", *SEED_KEYS, *BUDGET_COLUMNS)
BASELINE_SUFFIX = " (baseline)"


def budget_key(trials: pl.DataFrame, study: dict[str, Any]) -> str | None:
    """The config key that sets the label budget: a searched one first, else the first one with values."""
    params = study.get("params") or {}
    for key in BUDGET_COLUMNS:
        if key in params and key in trials.columns:
            return key
    for key in BUDGET_COLUMNS:
        if key in trials.columns and trials[key].drop_nulls().len():
            return key
    return None


def budget_label(key: str | None) -> str:
    return {
        "data.labels": "Labels",
        "data.labels_per_class": "Labels per class",
        "data.label_fraction": "Label fraction",
    }.get(key or "", "Budget")


def format_budget(value: Any) -> str:
    """100.0 -> "100"; None -> "all" (no budget key: every trial at one budget)."""
    if value is None:
        return "all"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def variant_order(study: dict[str, Any], trials: pl.DataFrame | None = None) -> list[str]:
    """The variants in the study's order: the ``variant`` grid/choice list, else the ``variants`` mapping, then
    any variant found only in the trials (in order of appearance). Never alphabetical."""
    spec = (study.get("params") or {}).get("variant")
    order = [str(v) for v in next(iter(spec.values()))] if spec else [str(v) for v in (study.get("variants") or {})]
    if trials is not None and "variant" in trials.columns:
        order += [v for v in trials["variant"].drop_nulls().unique(maintain_order=True).to_list() if v not in order]
    return order


def baseline_names(trials: pl.DataFrame, study: dict[str, Any] | None = None) -> list[str]:
    """The baselines the study ran, in the order ``study.json`` lists them (then any found only in the trials);
    one declared but without a trial is left out."""
    if "role" not in trials.columns or "baseline" not in trials.columns:
        return []
    ran = trials.filter(pl.col("role") == BASELINE)["baseline"].drop_nulls().unique(maintain_order=True).to_list()
    declared = [str(b) for b in ((study or {}).get("baselines") or [])]
    return [b for b in declared if b in ran] + [b for b in ran if b not in declared]


def baseline_rung(name: str, variants: Sequence[str]) -> str:
    """A baseline's rung name: its own name, or ``NAME (baseline)`` when a variant has that name too."""
    return f"{name}{BASELINE_SUFFIX}" if name in variants else name


def with_rungs(trials: pl.DataFrame, study: dict[str, Any]) -> pl.DataFrame:
    """``trials`` with a ``rung`` column: a baseline trial's baseline rung, a search trial's variant."""
    variants = variant_order(study, trials)
    names = baseline_names(trials, study)
    variant = pl.col("variant") if "variant" in trials.columns else pl.lit(None, dtype=pl.String)
    rung = variant
    if names:
        rung = (
            pl.when(pl.col("role") == BASELINE)
            .then(pl.col("baseline").replace_strict({n: baseline_rung(n, variants) for n in names}, default=None))
            .otherwise(variant)
        )
    return trials.with_columns(rung.cast(pl.String).alias("rung"))


def rung_order(study: dict[str, Any], trials: pl.DataFrame | None = None) -> list[str]:
    """The ladder's rungs: the baselines first (the rung every gain is measured against), then the variants."""
    variants = variant_order(study, trials)
    names = baseline_names(trials, study) if trials is not None else []
    return [baseline_rung(n, variants) for n in names] + variants


def has_rungs(trials: pl.DataFrame) -> bool:
    return "variant" in trials.columns and trials["variant"].drop_nulls().len() > 0


def pair_columns(trials: pl.DataFrame) -> list[str]:
    """The columns that pair two trials at one budget: the seeds, else the repeat index."""
    seeds = [k for k in SEED_KEYS if k in trials.columns]
    return seeds or (["repeat"] if "repeat" in trials.columns else [])


def pair_expr(trials: pl.DataFrame) -> pl.Expr:
    """A string naming each trial's seeds (``"0/0"``), the key of the pairs of a paired test."""
    columns = pair_columns(trials)
    if not columns:
        return pl.lit("").alias("pair")
    return pl.concat_str([pl.col(c).cast(pl.String).fill_null("") for c in columns], separator="/").alias("pair")


def config_columns(trials: pl.DataFrame) -> list[str]:
    """The columns that make a config, less its seeds: two trials that agree on them are repeats of one config
    (the dotted config keys, the variant, the role and the baseline's name)."""
    named = [c for c in ("role", "baseline", "variant") if c in trials.columns]
    return named + [c for c in trials.columns if "." in c and c not in SEED_KEYS]


def config_expr(trials: pl.DataFrame) -> pl.Expr:
    """A string naming each trial's config less its seeds (equal for the repeats of one config)."""
    columns = config_columns(trials)
    if not columns:
        return pl.col("trial_id").alias("config")
    parts = [pl.col(c).cast(pl.String).fill_null("∅") for c in columns]
    return pl.concat_str(parts, separator="\x1f").alias("config")


def searched_keys(study: dict[str, Any]) -> list[str]:
    return list(study.get("params") or {})


def tuned_keys(study: dict[str, Any]) -> list[str]:
    """The searched keys that are hyper-parameters, not the ladder's axes (rung, budget, seed)."""
    return [k for k in searched_keys(study) if k not in LADDER_AXES]


def class_names(epochs: pl.DataFrame, study: dict[str, Any] | None = None) -> list[str]:
    """Class names in the trainer's order: study.json's reference, else the per-class test accuracy (or
    threshold) columns of the epochs."""
    named = ((study or {}).get("reference") or {}).get("class_names")
    if named:
        return [str(n) for n in named]
    for prefix in ("test_acc_", "threshold_", "val_acc_"):
        names = [c.removeprefix(prefix) for c in epochs.columns if c.startswith(prefix) and c != "test_acc_at_best_val"]
        if names:
            return names
    return []


def pretty_class(name: str) -> str:
    return name.replace("_", " ").capitalize()
