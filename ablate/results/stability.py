"""Selection stability: how often the validation-selected config stays selected when the validation faces are
resampled, and how large a gap the validation split can resolve at its size.

Every epoch of a trial records which validation faces it got right (``val_correct``, ablate.config.metrics). One
bootstrap resample draws the faces with replacement, the same draw for every trial (they were all scored on the
same faces, so their scores stay paired); it re-scores every epoch, re-reads each trial's search metric on it
(``best_val_acc``: its best epoch so far, ``val_acc``: its last; the validation split is balanced, so its mean
class accuracy is read as its accuracy), averages each config over its seeds and picks the best config again.
The share of resamples that pick the study's own choice is its stability; a share near 1 / (configs) says the
validation split cannot tell the configs apart.

The gap the split resolves: the half-width of the 95 % interval of the difference of two accuracies measured
on n faces each, at the selected config's accuracy (statsmodels' ``confint_proportions_2indep``, Wald). Scores
of two configs on the same faces are positively correlated, so the paired gap they can resolve is smaller: this
is the conservative figure, the one that holds for configs whose errors are unrelated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from ablate.config.metrics import CORRECT, unpack_correct
from ablate.results.selection import ranked_configs, ranking

RESAMPLES = 1000
# search metric -> how a trial's value is read off its epochs
READ = {"best_val_acc": "best", "best_val_mean_class_acc": "best", "val_acc": "last", "val_mean_class_acc": "last"}


@dataclass(frozen=True)
class Stability:
    """``kept``: the share of resamples that select the study's config; ``runner_up``: the config selected most
    often after it, and its share; ``gap``: the observed metric gap (points) between the best two configs;
    ``resolvable``: the gap (points) the split's ``faces`` resolve (see the module docstring); ``note``: why
    there is no resampling (then ``kept`` is None)."""

    configs: int
    faces: int
    resamples: int
    kept: float | None
    runner_up: str | None
    runner_up_share: float | None
    gap: float | None
    resolvable: float | None
    note: str = ""


def resolvable_gap(accuracy: float, faces: int, confidence: float = 0.95) -> float:
    """The half-width (points) of the Wald interval of a difference of two accuracies ``accuracy`` on ``faces``
    faces each."""
    from statsmodels.stats.proportion import confint_proportions_2indep

    count = accuracy * faces
    low, high = confint_proportions_2indep(
        count, faces, count, faces, method="wald", compare="diff", alpha=1 - confidence
    )
    return 100 * (high - low) / 2


def selection_stability(
    trials: pl.DataFrame, epochs: pl.DataFrame, study: dict[str, Any], resamples: int = RESAMPLES, seed: int = 0
) -> Stability:
    """See the module docstring."""
    configs = ranked_configs(trials, study)
    rank = ranking(study, trials)
    empty = Stability(configs.height, 0, 0, None, None, None, None, None)
    if configs.height < 2:
        return _with(empty, "fewer than two configs: nothing to choose between")
    if rank.column not in READ or not rank.descending:
        return _with(empty, f"the search metric {rank.column} is not a validation accuracy to maximise")
    if CORRECT not in epochs.columns:
        return _with(empty, "the trials predate val_correct (which validation faces each epoch got right)")
    ids = [i for group in configs["trial_ids"].to_list() for i in group]
    rows = epochs.filter(pl.col("trial_id").is_in(ids) & pl.col(CORRECT).is_not_null()).sort("trial_id", "epoch")
    correct = {
        tid: np.array([unpack_correct(p) for p in group[CORRECT].to_list()], dtype=np.float64)
        for (tid,), group in rows.group_by("trial_id", maintain_order=True)
    }
    faces = {c.shape[1] for c in correct.values()}
    if len(faces) != 1:
        return _with(empty, "the trials' validation splits differ in size: no common faces to resample")
    n = faces.pop()
    if any(i not in correct for i in ids):
        return _with(empty, "some ranked trials recorded no val_correct")
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n, np.full(n, 1 / n), size=resamples).T / n  # faces x resamples
    how = READ[rank.column]
    scores = np.stack(
        [np.mean([_score(correct[i] @ weights, how) for i in group], axis=0) for group in configs["trial_ids"]]
    )  # configs x resamples
    picked = scores.argmax(axis=0)
    shares = np.bincount(picked, minlength=configs.height) / resamples
    second = int(np.argmax(np.where(np.arange(configs.height) == 0, -1, shares)))
    metric = configs["metric"].to_list()
    return Stability(
        configs=configs.height,
        faces=n,
        resamples=resamples,
        kept=float(shares[0]),
        runner_up=_name(trials, study, configs["trial_ids"][second][0]),
        runner_up_share=float(shares[second]),
        gap=100 * (metric[0] - metric[1]),
        resolvable=resolvable_gap(metric[0], n),
    )


def _name(trials: pl.DataFrame, study: dict[str, Any], trial_id: str) -> str:
    """A config in a few words (its variant, budget and tuned values), from one of its trials."""
    from ablate.results.layout import budget_key
    from ablate.results.summary import describe

    row = trials.filter(pl.col("trial_id") == trial_id).row(0, named=True)
    return describe(row, study, budget_key(trials, study)) or trial_id


def _score(epoch_scores: np.ndarray, how: str) -> np.ndarray:
    """A trial's metric in each resample from its epochs' resampled accuracies (epochs x resamples)."""
    return epoch_scores.max(axis=0) if how == "best" else epoch_scores[-1]


def _with(base: Stability, note: str) -> Stability:
    return Stability(**{**base.__dict__, "note": note})


def stability_text(s: Stability) -> str:
    """The stability in one line, for the report's notes."""
    if s.kept is None:
        return f"selection stability: not measured ({s.note})"
    return (
        f"selection stability: resampling the {s.faces} validation faces ({s.resamples} bootstrap draws), the "
        f"selected config stays selected in {100 * s.kept:.0f} % of draws (of {s.configs} configs; next most "
        f"often: {s.runner_up}, {100 * (s.runner_up_share or 0):.0f} %); its validation lead over the runner-up is "
        f"{s.gap:.1f} points, and {s.faces} faces resolve gaps of about {s.resolvable:.1f} points (95 %, "
        "unpaired)"
    )


def stability_frame(s: Stability) -> pl.DataFrame:
    """The stability as a one-row table."""
    return pl.DataFrame(
        [
            {
                "configs": s.configs,
                "val_faces": s.faces,
                "resamples": s.resamples,
                "kept_share": s.kept,
                "runner_up": s.runner_up,
                "runner_up_share": s.runner_up_share,
                "val_gap_pp": s.gap,
                "resolvable_gap_pp": s.resolvable,
                "note": s.note,
            }
        ],
        schema={
            "configs": pl.Int64,
            "val_faces": pl.Int64,
            "resamples": pl.Int64,
            "kept_share": pl.Float64,
            "runner_up": pl.String,
            "runner_up_share": pl.Float64,
            "val_gap_pp": pl.Float64,
            "resolvable_gap_pp": pl.Float64,
            "note": pl.String,
        },
    )
