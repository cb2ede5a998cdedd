"""The summary a study prints when it ends: the report's first table (``ablate.results.summary``) as lines.

It shows chance and the majority-class rate of the test split, each baseline and the best search config (ranked
on the search metric; diverged and failed trials never rank; its numbers over its search and confirmation
trials) with their test metrics at the validation-selected epoch, as mean and 95 % t-interval over seeds; the
best config's gain over the supervised baseline with its interval, its paired p (raw and Holm-adjusted over the
table's family) and the seeds a paired test needs at 80 % power. The statistics need scipy and statsmodels (the
``analysis`` extra); without them the summary says so and shows the counts.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from ablate.results.records import BASELINE, CONFIRM, DIVERGED, ERROR, SEARCH


def percent(value: float) -> str:
    return f"{100 * value:.1f} %"


def n_trials(n: int) -> str:
    return f"{n} trial" if n == 1 else f"{n} trials"


def counts(frame: pl.DataFrame) -> str:
    by_status = frame.group_by("status").len().sort("status").iter_rows()
    return ", ".join(f"{n} {status}" for status, n in by_status)


def seeds(n: int | None) -> str:
    return "1 seed" if n == 1 else f"{n} seeds"


def numbers(r: dict[str, Any]) -> str:
    """``test acc 47.0 % [41.2, 52.8] (3 seeds), mean class acc ...``: means with their 95 % t-intervals."""
    from ablate.results.formatting import interval

    def one(key: str) -> str:
        ci = interval(r[f"{key}_low"], r[f"{key}_high"])
        return f"{r[f'{key}_mean']:.1f} %" + (f" {ci}" if ci else "")

    what = "; 95 % t-intervals" if r["acc_low"] is not None else ""
    return f"test acc {one('acc')}, mean class acc {one('mca')} ({seeds(r['n'])}{what})"


def summarise(trials: pl.DataFrame, record: dict[str, Any], location: str) -> str:
    role = trials["role"] if "role" in trials.columns else pl.Series([SEARCH] * trials.height)
    parts = [(SEARCH, "", trials.filter(role == SEARCH))]
    parts += [(r, f"{w}: ", trials.filter(role == r)) for r, w in ((BASELINE, "baselines"), (CONFIRM, "confirmation"))]
    line = "; ".join(f"{words}{n_trials(f.height)} ({counts(f)})" for r, words, f in parts if f.height or r == SEARCH)
    lines = [f"study {record['name']}: {line}", *error_lines(trials)]
    for row in parts[0][2].filter(pl.col("status") == DIVERGED).iter_rows(named=True):
        step, epoch = row["diverged_step"], row["diverged_epoch"]
        lines.append(f"  trial {row['trial_id']} diverged at step {step} (epoch {epoch}): not ranked")

    reference = record.get("reference")
    if reference:
        k, n = len(reference["class_names"]), sum(reference["test_class_counts"])
        lines.append(
            f"test split: {n} faces, {k} classes; chance {percent(reference['chance'])}; always "
            f"'{reference['majority_class']}' (the majority class): {percent(reference['majority_test_acc'])} "
            f"accuracy, {percent(reference['majority_test_mean_class_acc'])} mean class accuracy"
        )
    try:
        lines += statistics_lines(trials, record)
    except ModuleNotFoundError as err:
        lines.append(
            f"no statistics: the summary's intervals and tests need scipy and statsmodels ({err.name} is missing; "
            "pip install -e '.[analysis]'); python -m ablate.report shows them once installed"
        )
    lines.append(f"results: {location}/trials.parquet, {location}/epochs.parquet")
    if "://" in location:
        lines.append(f"report:  copy {location} to a local folder, then python -m ablate.report FOLDER")
    else:
        lines.append(f"report:  python -m ablate.report {location}")
    return "\n".join(lines)


def error_lines(trials: pl.DataFrame) -> list[str]:
    """The failed trials (an error, not a divergence): how many, the first one's error (its last line), and how
    many trials failed with that same line."""
    failed = trials.filter(pl.col("status") == ERROR)
    if not failed.height:
        return []
    first = failed["error"][0] if "error" in failed.columns else None
    if first is None:
        return [f"failed: {n_trials(failed.height)} (no error text recorded)"]
    if failed.height == 1:
        return [f"failed: 1 trial: {first}"]
    same = failed.filter(pl.col("error") == first).height
    return [f"failed: {n_trials(failed.height)}; the first error, shared by {same} of them: {first}"]


def statistics_lines(trials: pl.DataFrame, record: dict[str, Any]) -> list[str]:
    """The baselines, the best config, its gain and the seeds its paired test needs, from the summary table."""
    from ablate.results.selection import ranked_configs
    from ablate.results.summary import gain_text, power_text, summary

    table = summary(trials, pl.DataFrame(), record)
    rows = {r: table.data.filter(pl.col("row") == r).to_dicts() for r in ("best", "baseline", "gain")}
    epoch = f"at the {table.shown.epoch_words}"
    lines = [f"{r['name']}: {numbers(r)}, {epoch}" for r in rows["baseline"]]
    if not rows["best"]:
        return [*lines, "no ranked trial: every trial failed, diverged or reported nothing"]
    best = rows["best"][0]
    ids = best["trial_ids"].split(", ")
    first = trials.filter(pl.col("trial_id") == ids[0]).row(0, named=True)
    searched = {k: first.get(k) for k in (record.get("params") or {}) if k != "trainer.seed"}
    column, metric = table.ranking.column, ranked_configs(trials, record)["metric"][0]
    confirmed = trials.filter(pl.col("trial_id").is_in(ids) & (pl.col("role") == CONFIRM)).height
    how = f", of which {confirmed} confirmation" if confirmed else ""
    head = f"best config: trials {best['trial_ids']}{how} (searched mean {column} = {metric:.4f})"
    if best["acc_mean"] is None:
        return [*lines, f"{head}; {json.dumps(searched)}"]
    lines.append(f"{head}: {numbers(best)}, {epoch}; {json.dumps(searched)}")
    for gain in rows["gain"]:
        name = gain["name"].removesuffix(" (pp)")
        if gain["acc_mean"] is None:
            lines.append(f"{name}: {gain['note']}")
            continue
        acc, mca = gain_text(gain, "acc"), gain_text(gain, "mca")
        lines.append(f"{name}: {acc} acc points, {mca} mean class acc points; {gain['note']}")
        power = power_text(gain, "acc", (record.get("report") or {}).get("min_effect"))
        if power:
            lines.append(f"power: {power}")
    majority = (record.get("reference") or {}).get("majority_test_acc")
    if majority is not None and best["acc_mean"] < 100 * majority:
        lines.append(
            f"warning: the best test accuracy ({best['acc_mean']:.1f} %) is below the majority-class rate "
            f"({percent(majority)}, always '{record['reference']['majority_class']}'): not a result"
        )
    return lines
