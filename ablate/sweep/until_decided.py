"""Seeds until decided (``search.repeats: {min: N, max: M, until: decided}``): after the confirmation trials have
paired the best config with the baselines over their N seeds, one more paired seed at a time until the sequential
rule (``ablate.results.sequential``: Pocock-type alpha spending, so the looks together keep the error rate) decides
the best config's test-accuracy gain over the supervised-only baseline (else the first baseline), or M seeds are in.

The gain is the summary's: the shown test accuracy (at the validation-selected epoch) of the best config
(``confirmed_config``) against the baseline's trials at its budget, paired by seed. Each added seed S is two Ray
experiments, ``ray_baselines_seedS`` (every baseline at the best config's data condition) and
``ray_confirm_seedS`` (the best config), which ``ablate.results.tables`` reads with the others. The decision is
made from the recorded trials before each look, so ``--resume`` takes up where a study stopped: an added seed's
experiments are restored, and a look already taken is not taken again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from ablate.config.compose import BASELINE
from ablate.config.study import Study
from ablate.errors import ConfigError
from ablate.results.baselines import baseline_at, reference_rung
from ablate.results.layout import baseline_names
from ablate.results.records import COMPLETE
from ablate.results.selection import confirmed_config, shown_numbers
from ablate.results.sequential import Look, decide
from ablate.results.summary import gain_pairs
from ablate.sweep.baselines import SEED, UNLABELED_POOL_KEYS, baseline_points, baseline_seeds


def sequence(study: Study) -> list[int]:
    """Every seed the study may train: the baselines' seeds, then the next ones up to ``seeds_until_decided``."""
    first = baseline_seeds(study)
    total = study.search["seeds_until_decided"]
    if len(first) < 2:
        raise ConfigError(
            f"search.seeds_until_decided: the first look needs at least 2 paired seeds, the study has {len(first)} "
            "(raise search.repeats, or list trainer.seed's values)"
        )
    if total < len(first):
        raise ConfigError(f"search.seeds_until_decided: {total} is fewer than the study's {len(first)} seeds")
    return first + list(range(max(first) + 1, max(first) + 1 + total - len(first)))


@dataclass(frozen=True)
class Paired:
    """The seeds both the best config and the reference baseline finished: the baseline's and the best config's
    shown test accuracies (%) in pairs, their training seeds, and the best config's first trial id (None when
    there is no best config or no baseline yet)."""

    a: list[float]
    b: list[float]
    seeds: set[int]
    best_id: str | None


def paired(trials: pl.DataFrame, record: dict[str, Any]) -> Paired:
    """The best config (``confirmed_config``) paired with the reference baseline's trials at its budget."""
    ids = confirmed_config(trials, record)
    against = reference_rung(baseline_names(trials, record))
    shown = shown_numbers(trials)
    if not ids or against is None or shown.acc not in trials.columns:
        return Paired([], [], set(), None)
    best = trials.filter(pl.col("trial_id").is_in(ids) & (pl.col("status") == COMPLETE))
    base = baseline_at(trials, record, against, ids[0]).filter(pl.col("status") == COMPLETE)
    pairs = gain_pairs(best, base, shown.acc)
    seeds = set(best[SEED].to_list()) & set(base[SEED].to_list()) if SEED in trials.columns else set()
    return Paired(pairs["a"].to_list(), pairs["b"].to_list(), seeds, ids[0])


def current_look(study: Study, pairs: Paired) -> Look:
    """The sequential rule's decision on the seeds paired so far."""
    return decide(pairs.a, pairs.b, len(baseline_seeds(study)), len(sequence(study)), study.report.get("min_effect"))


def next_seed(study: Study, pairs: Paired, tried: set[int]) -> int | None:
    """The first added seed (after the baselines' own) that is not paired yet and this run has not tried; None
    when none is left."""
    done = pairs.seeds | tried
    return next((s for s in sequence(study)[len(baseline_seeds(study)) :] if s not in done), None)


def baseline_points_at(study: Study, trials: pl.DataFrame, best_id: str, seed: int) -> list[dict[str, Any]]:
    """Every baseline at ``seed`` and the best config's data condition (the unlabeled pool's keys aside when a
    baseline reads no unlabeled face and so runs at the base's value alone)."""
    row = trials.filter(pl.col("trial_id") == best_id).row(0, named=True)
    points = baseline_points(study, sequence(study))

    def matches(point: dict[str, Any], loose: bool) -> bool:
        keys = [k for k in point if k.startswith("data.") and k in row]
        return all(row[k] == point[k] or (loose and k in UNLABELED_POOL_KEYS) for k in keys)

    at_seed = [p for p in points if p[SEED] == seed]
    picked = []
    for name in study.baselines:
        mine = [p for p in at_seed if p[BASELINE] == name]
        exact = [p for p in mine if matches(p, loose=False)]
        picked += exact or [p for p in mine if matches(p, loose=True)]
    return picked


def describe(look: Look) -> str:
    """A look in one line: the seeds, the gain's interval at the look's level, its p and the decision."""
    if look.p is None:
        return f"{look.n} paired seed(s): no test yet"
    interval = f"[{look.low:+.1f}, {look.high:+.1f}]" if look.low is not None else "[–]"
    words = {
        "gain": "decided: the interval excludes 0",
        "narrow": "decided: the interval is narrower than report.min_effect",
        "max": "undecided at the most seeds",
        "continue": "undecided: one more seed",
    }[look.decision]
    return f"{look.n} paired seeds: gain interval {interval} at level {look.level:.4f} (p {look.p:.3g}): {words}"
