"""The report's first table, and the summary the driver prints (``ablate.results.printed`` renders this table):
the best config beside chance, the majority class, each baseline, and the best config's gain over the
supervised-only baseline with a paired t-test across seeds.

The best config is chosen by the study's ranking (``ablate.results.selection``: validation by default); its numbers
are the shown ones (``--which``) over its seeds, search and confirmation trials (``confirmed_config``), as mean,
std and 95 % t-interval (``ablate.results.stats``). Its gain pairs each of its seeds with the baseline trial of the
same seeds at the same label budget: the mean difference, its t-interval and its p, Holm-adjusted over the table's
family (the accuracy and the mean class accuracy gain: m = 2); and the seeds a paired test would need for 80 %
power, from the spread of the paired differences.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from ablate.results.baselines import (
    BELOW_MAJORITY,
    Reference,
    baseline_at,
    baseline_table,
    below_majority,
    reference_levels,
    reference_rung,
)
from ablate.results.formatting import mean_ci, p_value
from ablate.results.layout import (
    baseline_names,
    budget_key,
    budget_label,
    format_budget,
    pair_columns,
    pair_expr,
    tuned_keys,
)
from ablate.results.selection import Ranking, Shown, confirmed_config, ranking, shown_numbers
from ablate.results.stats import (
    CONFIDENCE,
    POWER,
    family_size,
    holm,
    mean_interval,
    paired_t_test,
    seeds_needed,
    verdict,
)

SUMMARY_COLUMNS = {
    "row": pl.String,  # best / chance / majority / baseline / gain
    "name": pl.String,
    "n": pl.Int64,  # seeds (trials) behind the numbers; for a gain, the pairs
    # mean, sample std and 95 % t-interval over seeds; for a gain, the mean paired difference and its interval
    **{f"{m}_{s}": pl.Float64 for m in ("acc", "mca") for s in ("mean", "std", "low", "high")},
    # a gain's paired t-test: t, p, the Holm-adjusted p over the table's family of m tests, the differences' std
    **{f"{m}_{s}": pl.Float64 for m in ("acc", "mca") for s in ("t", "p", "p_holm", "sd_diff")},
    "m": pl.Int64,
    "note": pl.String,
    "trial_ids": pl.String,
}
ONE_SEED = "one seed: no paired test"
ACC_HEADER, MCA_HEADER = "Test accuracy (%, mean [95 % CI])", "Test mean class acc. (%, mean [95 % CI])"


@dataclass
class Summary:
    data: pl.DataFrame  # SUMMARY_COLUMNS, in %
    shown: Shown
    ranking: Ranking
    reference: Reference | None
    notes: list[str] = field(default_factory=list)

    @property
    def oracle(self) -> bool:
        return self.shown.oracle or self.ranking.oracle


def _row(row: str, name: str, **values: Any) -> dict[str, Any]:
    return {c: None for c in SUMMARY_COLUMNS} | {"row": row, "name": name} | values


def describe(trial: dict[str, Any], study: dict[str, Any], budget: str | None) -> str:
    """A config in a few words: its variant, its budget and its tuned values."""
    parts = [str(trial["variant"])] if trial.get("variant") else []
    if budget and trial.get(budget) is not None:
        parts.append(f"{format_budget(trial[budget])} {budget_label(budget).lower()}")
    for key in tuned_keys(study):
        value = trial.get(key)
        if value is not None:
            parts.append(f"{key.rsplit('.', 1)[-1]} {value:.4g}" if isinstance(value, float) else f"{key} {value}")
    return ", ".join(parts)


def _flag(acc: float | None, mca: float | None, ref: Reference | None, note: str = "") -> str:
    flag = BELOW_MAJORITY if below_majority(acc, mca, ref) else ""
    return "; ".join(p for p in (note, flag) if p)


def summary(trials: pl.DataFrame, epochs: pl.DataFrame, study: dict[str, Any], which: str = "val") -> Summary:
    """The summary table (see the module docstring) and the notes that say how to read it."""
    shown, rank = shown_numbers(trials, which), ranking(study, trials)
    out = Summary(pl.DataFrame(schema=SUMMARY_COLUMNS), shown, rank, reference_levels(study, epochs))
    budget = budget_key(trials, study)
    ids = confirmed_config(trials, study)
    best = trials.filter(pl.col("trial_id").is_in(ids)) if ids and shown.acc in trials.columns else trials.clear()
    rows = [best_row(best, ids, study, budget, shown, out.reference)] if best.height else []
    if not best.height:
        out.notes.append("no finished search trial has the ranking metric: no best config")
    if out.reference is not None:
        rows += reference_rows(out.reference)
    else:
        out.notes.append("no reference in study.json and no test confusion matrix recorded: no chance or majority rate")
    rows += baseline_rows(trials, study, shown, budget, out.reference)
    against = reference_rung(baseline_names(trials, study))
    if against is None:
        out.notes.append(
            "no baseline trials (role baseline): no gain to report; `baselines: [supervised]` in the study file "
            "runs supervised-only beside the search"
        )
    elif best.height:
        at = best[budget][0] if budget and best[budget].n_unique() == 1 else None
        where = f" at {format_budget(at)} {budget_label(budget).lower()}" if at is not None else ""
        rows.append(gain_row(best, baseline_at(trials, study, against, ids[0]), f"{against}{where}", shown))
    adjust_family(rows)
    out.data = pl.DataFrame(rows, schema=SUMMARY_COLUMNS)
    out.notes[:0] = summary_notes(out)
    return out


def _pct_stats(frame: pl.DataFrame, column: str) -> dict[str, float | None]:
    """Mean, sample std and 95 % t-interval (in %) of a fractions column over the rows that have it."""
    m = mean_interval([100 * v for v in frame[column].drop_nulls().to_list()] if column in frame.columns else [])
    return {"mean": m.mean, "std": m.std, "low": m.low, "high": m.high}


def _prefixed(key: str, values: dict[str, Any]) -> dict[str, Any]:
    return {f"{key}_{k}": v for k, v in values.items()}


def adjust_family(rows: list[dict[str, Any]]) -> None:
    """Holm-adjust the p-values of the table's gains together (one family), in place."""
    cells = [(r, key) for r in rows if r["row"] == "gain" for key in ("acc", "mca")]
    p = [r[f"{key}_p"] for r, key in cells]
    m = family_size(p)
    for (r, key), adjusted in zip(cells, holm(p)):
        r[f"{key}_p_holm"] = adjusted
        r["m"] = m if m else None


def best_row(
    best: pl.DataFrame, ids: list[str], study: dict[str, Any], budget: str | None, shown: Shown, ref: Reference | None
) -> dict[str, Any]:
    """The best config: its shown numbers over its seeds, flagged when below the majority-class rate."""
    what = describe(best.filter(pl.col("trial_id") == ids[0]).row(0, named=True), study, budget)
    acc, mca = _pct_stats(best, shown.acc), _pct_stats(best, shown.mca)
    return _row(
        "best",
        f"best config ({what})" if what else "best trial",
        n=best.height,
        **_prefixed("acc", acc),
        **_prefixed("mca", mca),
        note=_flag(acc["mean"], mca["mean"], ref),
        trial_ids=", ".join(ids),
    )


def reference_rows(ref: Reference) -> list[dict[str, Any]]:
    """Chance and the majority class of the test split."""
    images = f" ({ref.test_images} test images)" if ref.test_images else ""
    return [
        _row(
            "chance",
            f"chance (1/{ref.classes})",
            acc_mean=ref.chance_pct,
            mca_mean=ref.chance_pct,
            note="a uniform guess over the classes",
        ),
        _row(
            "majority",
            f"majority class ({ref.majority_class})",
            acc_mean=ref.majority_acc_pct,
            mca_mean=ref.majority_mca_pct,
            note=f"always answering {ref.majority_class}{images}",
        ),
    ]


def baseline_rows(
    trials: pl.DataFrame, study: dict[str, Any], shown: Shown, budget: str | None, ref: Reference | None
) -> list[dict[str, Any]]:
    """Each baseline at each budget: mean, std and interval over its seeds, flagged when below the majority-class
    rate."""
    rows = []
    for b in baseline_table(trials, study, shown, budget).iter_rows(named=True):
        at = (
            f", {format_budget(b['budget'])} {budget_label(budget).lower()}"
            if budget and b["budget"] is not None
            else ""
        )
        rows.append(
            _row(
                "baseline",
                f"baseline {b['baseline']}{at}",
                n=b["n"],
                **{f"{m}_{s}": b[f"{m}_{s}"] for m in ("acc", "mca") for s in ("mean", "std", "low", "high")},
                note=_flag(b["acc_mean"], b["mca_mean"], ref),
                trial_ids=b["trial_ids"],
            )
        )
    return rows


def gain_row(best: pl.DataFrame, base: pl.DataFrame, name: str, shown: Shown) -> dict[str, Any]:
    """The best config's gain over the trials ``base`` of the baseline ``name`` (at the best config's budget, which
    ``name`` may say):
    the difference of their means, in points; with a paired t-test of the seeds both ran when the best config
    has several seeds, the mean paired difference, its t-interval and its p."""
    label = f"gain over {name} (pp)"
    if not base.height:
        return _row("gain", label, note=f"no baseline trial of {name}: no gain")
    out = _row("gain", label)
    for key, column in (("acc", shown.acc), ("mca", shown.mca)):
        mine, theirs = _pct_stats(best, column)["mean"], _pct_stats(base, column)["mean"]
        out[f"{key}_mean"] = None if mine is None or theirs is None else mine - theirs
        if best.height > 1 and column in best.columns:
            pairs = gain_pairs(best, base, column)
            test = paired_t_test(pairs["a"].to_list(), pairs["b"].to_list())
            out |= {f"{key}_t": test.t, f"{key}_p": test.p, f"{key}_sd_diff": test.sd_diff}
            out |= {"n": test.n} if key == "acc" else {}
            if test.p is not None:  # the gain of the paired seeds: their mean difference and its interval
                out |= {f"{key}_mean": test.mean_diff, f"{key}_low": test.low, f"{key}_high": test.high}
    if best.height < 2:
        out["note"] = ONE_SEED
    elif (out["n"] or 0) < 2:
        out["note"] = f"{out['n'] or 0} seed(s) shared with {name}: no paired test"
    else:
        out["note"] = f"paired t-test over {out['n']} seeds ({'/'.join(pair_columns(best))}), two-sided"
    return out


def gain_pairs(best: pl.DataFrame, base: pl.DataFrame, column: str) -> pl.DataFrame:
    """The seeds both ran: ``pair``, the baseline's ``a`` and the best config's ``b`` (in %)."""
    return (
        best.select(pair_expr(best), (pl.col(column) * 100).alias("b"))
        .join(base.select(pair_expr(base), (pl.col(column) * 100).alias("a")), on="pair")
        .drop_nulls()
    )


def summary_notes(out: Summary) -> list[str]:
    notes = [
        f"numbers: {out.shown.what} of each trial, in %; mean [{100 * CONFIDENCE:.0f} % t-interval] over seeds "
        "(Student's "
        "t with n - 1 degrees of freedom: at 3-10 seeds a bootstrap's interval is too narrow); a gain is the mean "
        "paired difference over the shared seeds with its t-interval, its p from a two-sided paired t-test, "
        "Holm-adjusted over the table's gains (p (Holm, m = N)); the words follow the adjusted p"
    ]
    if out.shown.note:
        notes.append(out.shown.note)
    notes.append(
        f"best config: ranked on `{out.ranking.column}` ({'higher' if out.ranking.descending else 'lower'} is better), "
        "the mean over its seeds; diverged and error trials never count"
    )
    if out.ranking.note:
        notes.append(out.ranking.note)
    if out.reference is not None:
        notes.append(f"chance and majority class: from {out.reference.source}")
    return notes


def gain_text(r: dict[str, Any], key: str) -> str:
    """A gain for reading: ``+5.0 [+2.5, +7.5] (p 0.013; p (Holm, m = 2) 0.026: significant)``."""
    if r[f"{key}_mean"] is None:
        return "–"
    text = mean_ci(r[f"{key}_mean"], r[f"{key}_low"], r[f"{key}_high"], sign=True)
    p = p_value(r[f"{key}_p"])
    if not p:
        return text
    adjusted = r[f"{key}_p_holm"]
    return f"{text} (p {p}; p (Holm, m = {r['m']}) {p_value(adjusted)}: {verdict(adjusted)})"


def power_text(r: dict[str, Any], key: str = "acc", min_effect: float | None = None) -> str:
    """The seeds a paired test of a gain row needs at 80 % power: for the observed gain, and for ``min_effect``
    (points) when given; empty without a paired spread."""
    sd, gain = r.get(f"{key}_sd_diff"), r.get(f"{key}_mean")
    if sd is None or gain is None or not sd > 0:
        return ""
    parts = []
    observed = seeds_needed(gain, sd)
    if observed is not None:
        parts.append(f"{observed} to detect the observed {gain:+.1f} points")
    if min_effect is not None:
        parts.append(f"{seeds_needed(min_effect, sd)} to detect report.min_effect = {min_effect:g} points")
    return (
        f"seeds for {100 * POWER:.0f} % power (paired t-test, alpha 0.05, from the paired sd {sd:.1f} points over "
        f"{r['n']} seeds): " + "; ".join(parts)
    )


def display(table: pl.DataFrame) -> pl.DataFrame:
    """The summary for reading: means with their 95 % intervals, signed gains with their intervals and p-values
    (raw and Holm-adjusted, with the verdict of the adjusted one)."""

    def cell(r: dict[str, Any], key: str) -> str:
        if r["row"] != "gain":
            return mean_ci(r[f"{key}_mean"], r[f"{key}_low"], r[f"{key}_high"])
        return gain_text(r, key)

    rows = [
        {
            "": r["name"],
            "Seeds": r["n"],
            ACC_HEADER: cell(r, "acc"),
            MCA_HEADER: cell(r, "mca"),
            "Note": r["note"] or "",
        }
        for r in table.iter_rows(named=True)
    ]
    schema = {"": pl.String, "Seeds": pl.Int64, ACC_HEADER: pl.String, MCA_HEADER: pl.String}
    return pl.DataFrame(rows, schema=schema | {"Note": pl.String})
