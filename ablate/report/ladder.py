"""The ablation ladder: per label budget and rung, mean, std and 95 % t-interval over seeds, each rung's gain over
the previous rung and over the reference rung, with paired t-tests across seeds (the interval of the mean paired
difference beside each p). The table's comparisons are one family: every p it shows (both references, both metrics,
every budget and rung) is Holm-adjusted together, and its words follow the adjusted p.

The baselines (trials with role "baseline") are the first rungs, named by the baseline's name; the reference rung
is the supervised-only baseline (else the first baseline; in a study without baselines, the first rung). Rungs
follow the study's order, never the alphabet. Accuracies are in %, gains in percentage points.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from ablate.results.baselines import BELOW_MAJORITY, Reference, below_majority, reference_rung
from ablate.results.formatting import mean_ci, p_value, signed
from ablate.results.layout import (
    baseline_names,
    baseline_rung,
    budget_key,
    format_budget,
    pair_expr,
    rung_order,
    variant_order,
    with_rungs,
)
from ablate.results.records import CONFIRM
from ablate.results.selection import finished, shown_numbers
from ablate.results.stats import (
    family_size,
    holm,
    improvement_over_tasks,
    iqm_over_tasks,
    mean_interval,
    paired_t_test,
    verdict,
)

METRICS = ("acc", "mca")
TAGS = ("prev", "ref")  # against the previous rung, against the reference rung
LADDER_SCHEMA = (
    {"budget": pl.Float64, "rung": pl.String, "n": pl.Int64}
    | {f"{m}_{s}": pl.Float64 for m in METRICS for s in ("mean", "std", "low", "high")}
    | {"ref_rung": pl.String}
    | {
        f"{name}_{tag}": dtype
        for tag in TAGS
        for name, dtype in (
            ("acc_gain", pl.Float64),
            ("mca_gain", pl.Float64),
            ("n_pairs", pl.Int64),
            ("acc_t", pl.Float64),
            ("acc_p", pl.Float64),
            ("mca_t", pl.Float64),
            ("mca_p", pl.Float64),
            ("acc_diff", pl.Float64),  # the mean paired difference over the shared seeds
            ("mca_diff", pl.Float64),
            ("acc_low", pl.Float64),  # its 95 % t-interval
            ("acc_high", pl.Float64),
            ("mca_low", pl.Float64),
            ("mca_high", pl.Float64),
            ("acc_p_holm", pl.Float64),  # Holm-adjusted over every p of the table
            ("mca_p_holm", pl.Float64),
        )
    }
    | {"m": pl.Int64}  # the family's size: the p-values the table holds
)
GAIN_COLUMNS = ("acc_gain", "mca_gain", "n_pairs", "acc_t", "acc_p", "mca_t", "mca_p")
PAIRED_COLUMNS = ("acc_diff", "mca_diff", "acc_low", "acc_high", "mca_low", "mca_high", "acc_p_holm", "mca_p_holm")


def reference_rung_name(trials: pl.DataFrame, study: dict[str, Any]) -> str | None:
    """The rung gains are measured against: the supervised-only baseline's rung (else the first baseline's);
    None when the study ran no baselines (then each budget's first rung is the reference)."""
    name = reference_rung(baseline_names(trials, study))
    return baseline_rung(name, variant_order(study, trials)) if name else None


def runs_frame(
    trials: pl.DataFrame, study: dict[str, Any], which: str = "val", statuses: Sequence[str] = ("complete",)
) -> pl.DataFrame:
    """One row per counted trial: its budget, rung, shown accuracy and mean class accuracy (in %) and its pair
    (the seeds it shares with the other rungs); empty when the study has no rungs. Only trials whose status is in
    ``statuses`` count, and never confirmation trials."""
    shown = shown_numbers(trials, which)
    empty = pl.DataFrame(schema={"budget": pl.Float64, "rung": pl.String, "acc": pl.Float64, "mca": pl.Float64})
    if not trials.height or "variant" not in trials.columns or shown.acc not in trials.columns:
        return empty
    key = budget_key(trials, study)
    runs = finished(trials)
    if "role" in runs.columns:  # a confirmation trial re-runs the best config: its seeds are not a rung's
        runs = runs.filter(pl.col("role") != CONFIRM)
    frame = (
        with_rungs(runs, study)
        .filter(pl.col("status").is_in(list(statuses)) & pl.col("rung").is_not_null())
        .filter(pl.col(shown.acc).is_not_null())
    )
    if not frame.height:
        return empty
    return frame.select(
        (pl.col(key).cast(pl.Float64) if key else pl.lit(None, dtype=pl.Float64)).alias("budget"),
        "rung",
        (pl.col(shown.acc) * 100).alias("acc"),
        (pl.col(shown.mca) * 100 if shown.mca in frame.columns else pl.lit(None, dtype=pl.Float64)).alias("mca"),
        pair_expr(frame),
    )


def ladder_table(
    trials: pl.DataFrame, study: dict[str, Any], which: str = "val", statuses: Sequence[str] = ("complete",)
) -> pl.DataFrame:
    """The ladder: one row per label budget and rung (``LADDER_SCHEMA``), rungs in ``rung_order``.

    n: the trials (seeds) of a rung; ``*_mean`` / ``*_std``: the shown accuracy (acc) and mean class accuracy
    (mca) over them (``which``, see ``ablate.results.selection``), std with n - 1. ``*_prev``: the gain over the
    previous rung present at that budget; ``*_ref``: over ``ref_rung``. Each gain is the difference of the
    means; its paired t-test pairs the trials of the two rungs with the same seeds at that budget (n_pairs_*,
    *_t_*, *_p_*: two-sided). Only trials whose status is in ``statuses`` count (never diverged or error ones),
    and never confirmation trials.
    """
    frame = runs_frame(trials, study, which, statuses)
    order = {r: i for i, r in enumerate(rung_order(study, trials))}
    if not frame.height:
        return pl.DataFrame(schema=LADDER_SCHEMA)
    stats = (
        frame.group_by("budget", "rung")
        .agg(
            pl.len().cast(pl.Int64).alias("n"),
            *[pl.col(m).mean().alias(f"{m}_mean") for m in METRICS],
            *[pl.col(m).std().alias(f"{m}_std") for m in METRICS],
            *[pl.col(m).drop_nulls().alias(f"{m}_values") for m in METRICS],
        )
        .with_columns(pl.col("rung").replace_strict(order, default=len(order), return_dtype=pl.Int64).alias("_o"))
        .sort("budget", "_o", nulls_last=True)
        .drop("_o")
    )
    ref_name = reference_rung_name(trials, study)
    rows = []
    for part in stats.partition_by("budget", maintain_order=True):
        records = part.to_dicts()
        for r in records:
            for m in METRICS:
                interval = mean_interval(r.pop(f"{m}_values"))
                r[f"{m}_low"], r[f"{m}_high"] = interval.low, interval.high
        budget = records[0]["budget"]
        here = frame.filter(pl.col("budget").is_null() if budget is None else pl.col("budget") == budget)
        values = {
            (r, m): dict(zip(g["pair"].to_list(), g[m].to_list())) for (r,), g in here.group_by("rung") for m in METRICS
        }
        ref = next((r for r in records if r["rung"] == ref_name), records[0])
        for i, row in enumerate(records):
            row["ref_rung"] = ref["rung"]
            for tag, other in (("prev", records[i - 1] if i else None), ("ref", ref if row is not ref else None)):
                row.update(_against(row, other, tag, values))
            row["_same"] = i > 0 and records[i - 1] is ref  # its gain over the previous rung is the one over ref
            rows.append(row)
    # one family: every distinct comparison of the table (a gain over the previous rung that is the reference
    # rung is the same test as the gain over the reference, and counts once)
    tags = {id(r): [t for t in TAGS if not (t == "prev" and r["_same"])] for r in rows}
    cells = [(r, m, tag) for r in rows for tag in tags[id(r)] for m in METRICS]
    p = [r[f"{m}_p_{tag}"] for r, m, tag in cells]
    for (r, m, tag), value in zip(cells, holm(p)):
        r[f"{m}_p_holm_{tag}"] = value
    for r in rows:
        if r.pop("_same"):
            r |= {f"{m}_p_holm_prev": r[f"{m}_p_holm_ref"] for m in METRICS}
        r["m"] = family_size(p)
    return pl.DataFrame(rows, schema=LADDER_SCHEMA)


def _against(row: dict, other: dict | None, tag: str, values: dict) -> dict[str, Any]:
    """The gains of ``row`` over ``other`` and their paired t-tests, as the ``*_{tag}`` columns."""
    out: dict[str, Any] = {f"{c}_{tag}": None for c in (*GAIN_COLUMNS, *PAIRED_COLUMNS)}
    if other is None:
        return out
    for m in METRICS:
        if row[f"{m}_mean"] is not None and other[f"{m}_mean"] is not None:
            out[f"{m}_gain_{tag}"] = row[f"{m}_mean"] - other[f"{m}_mean"]
        mine, theirs = values[(row["rung"], m)], values[(other["rung"], m)]
        common = [p for p in mine if p in theirs and mine[p] is not None and theirs[p] is not None]
        test = paired_t_test([theirs[p] for p in common], [mine[p] for p in common])
        out[f"{m}_t_{tag}"], out[f"{m}_p_{tag}"] = test.t, test.p
        if test.low is not None:
            out[f"{m}_diff_{tag}"], out[f"{m}_low_{tag}"], out[f"{m}_high_{tag}"] = test.mean_diff, test.low, test.high
        if m == "acc":
            out[f"n_pairs_{tag}"] = test.n
    return out


def format_ladder(
    table: pl.DataFrame, budget_label: str = "Labels", reference: Reference | None = None
) -> pl.DataFrame:
    """The ladder for reading: means with their 95 % t-intervals, signed gains (with a paired test, the mean
    paired difference and its interval; else the difference of the means), raw p-values (with their pair
    counts) and the Holm-adjusted ones over the table's family (``p (Holm, m = N)``, with the words they
    support), and the flag of a rung below the majority-class rate (with ``reference``); one row per budget and
    rung."""
    refs = table["ref_rung"].unique(maintain_order=True).to_list() if table.height else []
    ref = refs[0] if len(refs) == 1 else "reference rung"
    holm_m = f"p (Holm, m = {table['m'][0] if table.height else 0})"

    def pval(p: float | None, n: int | None) -> str:
        return "" if p is None else f"{p_value(p)} (n={n})"

    def adjusted(p: float | None) -> str:
        return "" if p is None else f"{p_value(p)}: {verdict(p)}"

    def gain(r: dict[str, Any], m: str, tag: str) -> str:
        # with a paired test: the mean paired difference and its interval; else the difference of the means
        diff, low, high = r[f"{m}_diff_{tag}"], r[f"{m}_low_{tag}"], r[f"{m}_high_{tag}"]
        return signed(r[f"{m}_gain_{tag}"]) if diff is None else mean_ci(diff, low, high, sign=True)

    columns = {
        budget_label: lambda r: format_budget(r["budget"]),
        "Rung": lambda r: r["rung"],
        "Seeds": lambda r: r["n"],
        "Accuracy (%)": lambda r: mean_ci(r["acc_mean"], r["acc_low"], r["acc_high"]),
        "Mean class acc. (%)": lambda r: mean_ci(r["mca_mean"], r["mca_low"], r["mca_high"]),
        "Δ acc. vs prev. (pp)": lambda r: gain(r, "acc", "prev"),
        "p vs prev.": lambda r: pval(r["acc_p_prev"], r["n_pairs_prev"]),
        f"{holm_m} vs prev.": lambda r: adjusted(r["acc_p_holm_prev"]),
        f"Δ acc. vs {ref} (pp)": lambda r: gain(r, "acc", "ref"),
        f"p (acc.) vs {ref}": lambda r: pval(r["acc_p_ref"], r["n_pairs_ref"]),
        f"{holm_m} (acc.) vs {ref}": lambda r: adjusted(r["acc_p_holm_ref"]),
        f"Δ mean class acc. vs {ref} (pp)": lambda r: gain(r, "mca", "ref"),
        f"p (mean class acc.) vs {ref}": lambda r: pval(r["mca_p_ref"], r["n_pairs_ref"]),
        f"{holm_m} (mean class acc.) vs {ref}": lambda r: adjusted(r["mca_p_holm_ref"]),
    }
    if reference is not None:
        columns["Note"] = lambda r: BELOW_MAJORITY if below_majority(r["acc_mean"], r["mca_mean"], reference) else ""
    rows = [{c: f(r) for c, f in columns.items()} for r in table.iter_rows(named=True)]
    return pl.DataFrame(rows, schema={c: (pl.Int64 if c == "Seeds" else pl.String) for c in columns})


# ---- across budgets: rliable's aggregates ------------------------------------------------------------------

AGGREGATE_SCHEMA = {"rung": pl.String, "tasks": pl.Int64, "runs": pl.Int64, "ref_rung": pl.String} | {
    f"{m}_{a}{s}": pl.Float64 for m in METRICS for a in ("iqm", "poi") for s in ("", "_low", "_high")
}


def aggregate_table(trials: pl.DataFrame, study: dict[str, Any], which: str = "val") -> pl.DataFrame:
    """Each rung across the label budgets (the tasks) it ran at (``AGGREGATE_SCHEMA``): the IQM of all its runs'
    accuracy and mean class accuracy, and its probability of improvement over the reference rung (over the
    budgets both ran), each with the 95 % percentile interval of the stratified bootstrap
    (``ablate.results.stats``). The same runs as the ladder's."""
    frame = runs_frame(trials, study, which)
    if not frame.height:
        return pl.DataFrame(schema=AGGREGATE_SCHEMA)
    present = set(frame["rung"])
    rungs = [r for r in rung_order(study, trials) if r in present]
    ref = reference_rung_name(trials, study) or rungs[0]

    def tasks(rung: str, metric: str) -> dict[Any, list[float]]:
        part = frame.filter((pl.col("rung") == rung) & pl.col(metric).is_not_null())
        return {b: g[metric].to_list() for (b,), g in part.group_by("budget", maintain_order=True)}

    reference = {m: tasks(ref, m) for m in METRICS}
    rows = []
    for rung in rungs:
        row: dict[str, Any] = {"rung": rung, "ref_rung": ref}
        for m in METRICS:
            mine, theirs = tasks(rung, m), reference[m]
            if m == "acc":
                row["tasks"], row["runs"] = len(mine), sum(map(len, mine.values()))
            aggregate = iqm_over_tasks(list(mine.values()))
            row[f"{m}_iqm"], row[f"{m}_iqm_low"], row[f"{m}_iqm_high"] = aggregate.value, aggregate.low, aggregate.high
            shared = [(mine[b], theirs[b]) for b in mine if b in theirs]
            better = improvement_over_tasks(shared) if rung != ref else None
            if better is not None:
                row[f"{m}_poi"], row[f"{m}_poi_low"], row[f"{m}_poi_high"] = better.value, better.low, better.high
        rows.append(row)
    return pl.DataFrame(rows, schema=AGGREGATE_SCHEMA)


def format_aggregate(table: pl.DataFrame) -> pl.DataFrame:
    """The aggregates for reading: IQM [95 % CI] in %, P(rung > reference) [95 % CI]."""
    ref = table["ref_rung"][0] if table.height else "reference rung"

    def poi(r: dict[str, Any], m: str) -> str:
        value, low, high = r[f"{m}_poi"], r[f"{m}_poi_low"], r[f"{m}_poi_high"]
        if value is None:
            return ""
        return f"{value:.2f}" + (f" [{low:.2f}, {high:.2f}]" if low is not None else "")

    columns = {
        "Rung": lambda r: r["rung"],
        "Budgets": lambda r: r["tasks"],
        "Runs": lambda r: r["runs"],
        "IQM acc. (%)": lambda r: mean_ci(r["acc_iqm"], r["acc_iqm_low"], r["acc_iqm_high"]),
        "IQM mean class acc. (%)": lambda r: mean_ci(r["mca_iqm"], r["mca_iqm_low"], r["mca_iqm_high"]),
        f"P(acc. > {ref})": lambda r: poi(r, "acc"),
        f"P(mean class acc. > {ref})": lambda r: poi(r, "mca"),
    }
    rows = [{c: f(r) for c, f in columns.items()} for r in table.iter_rows(named=True)]
    return pl.DataFrame(rows, schema={c: (pl.Int64 if c in ("Budgets", "Runs") else pl.String) for c in columns})
