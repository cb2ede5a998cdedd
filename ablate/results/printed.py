"""The summary a study prints when it ends: what the numbers are worth beside its references.

It shows chance and the majority-class rate of the test split, each baseline (mean ± std over its seeds), the
best search config (ranked on the search metric; diverged and failed trials never rank) with its test metrics at
the validation-selected epoch, and its gain over the supervised baseline: a paired t-test across seeds when the
best config was trained with several seeds (scipy's ``ttest_rel``, from the ``analysis`` extra; without scipy the
gain is shown and the test is skipped with a note).
"""

from __future__ import annotations

import json
import math
import statistics
from typing import Any

import polars as pl

from ablate.results.records import BASELINE, DIVERGED, ERROR, RANKED, SEARCH

ACC, MCA = "test_acc_at_best_val", "test_mean_class_acc_at_best_val"
SEED = "trainer.seed"
DATA_KEYS = ("data.labels", "data.labels_per_class", "data.label_fraction", "data.split_seed", "data.val_per_class")
REFERENCE_BASELINE = "supervised"


def metric_column(metric: str) -> str:
    """The trials column of a search metric: best_* as they are, an epoch's metric as its last value."""
    return metric if metric.startswith("best_") else f"last_{metric}"


def percent(value: float) -> str:
    return f"{100 * value:.1f} %"


def mean_std(values: list[float]) -> str:
    """``41.2 ± 1.3 %`` (sample std over seeds); one value has no spread."""
    if len(values) == 1:
        return f"{percent(values[0])} (1 seed)"
    return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f} % ({len(values)} seeds)"


def n_trials(n: int) -> str:
    return f"{n} trial" if n == 1 else f"{n} trials"


def counts(frame: pl.DataFrame) -> str:
    by_status = frame.group_by("status").len().sort("status").iter_rows()
    return ", ".join(f"{n} {status}" for status, n in by_status)


def config_without_seed(config_json: str) -> str:
    """The key of a config across seeds: its JSON with trainer.seed removed."""
    config = json.loads(config_json)
    config.get("trainer", {}).pop("seed", None)
    return json.dumps(config, sort_keys=True)


def condition(row: dict[str, Any], keys: list[str]) -> tuple[Any, ...]:
    return tuple(row.get(k) for k in keys)


def describe(keys: list[str], values: tuple[Any, ...]) -> str:
    return " (" + ", ".join(f"{k.removeprefix('data.')}={v}" for k, v in zip(keys, values)) + ")" if keys else ""


def paired_test(a: list[float], b: list[float]) -> str:
    try:
        from scipy.stats import ttest_rel
    except ModuleNotFoundError:
        return "no paired t-test: it needs scipy (pip install -e '.[analysis]')"
    p = ttest_rel(a, b).pvalue
    return f"p = {p:.3g}" if math.isfinite(p) else "p undefined: the seeds' differences are all equal"


def best_config(search: pl.DataFrame, column: str, mode: str) -> list[dict[str, Any]]:
    """The trials (one per seed) of the config with the best mean search metric, among ranked trials."""
    ranked = [
        row
        for row in search.iter_rows(named=True)
        if row["status"] in RANKED and row.get(column) is not None and row["config_json"]
    ]
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in ranked:
        groups.setdefault(config_without_seed(row["config_json"]), []).append(row)
    if not groups:
        return []
    sign = 1 if mode == "max" else -1
    best = max(groups.values(), key=lambda g: sign * statistics.mean(r[column] for r in g))
    return sorted(best, key=lambda r: r.get(SEED) or 0)


def summarise(trials: pl.DataFrame, record: dict[str, Any], location: str) -> str:
    search_record = record.get("search") or {}
    column = metric_column(search_record.get("metric", "best_val_acc"))
    role = trials["role"] if "role" in trials.columns else pl.Series([SEARCH] * trials.height)
    search = trials.filter(role == SEARCH)
    baselines = trials.filter(role == BASELINE)
    line = f"study {record['name']}: {n_trials(search.height)} ({counts(search)})"
    if baselines.height:
        line += f"; baselines: {n_trials(baselines.height)} ({counts(baselines)})"
    lines = [line, *error_lines(trials)]
    for row in search.filter(pl.col("status") == DIVERGED).iter_rows(named=True):
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

    present = [k for k in DATA_KEYS if k in trials.columns]
    varying = [k for k in present if trials[k].n_unique() > 1]
    has_metrics = ACC in trials.columns and MCA in trials.columns
    by_baseline: dict[tuple[str, tuple[Any, ...]], list[dict[str, Any]]] = {}
    if has_metrics:
        for row in baselines.iter_rows(named=True):
            if row["status"] in RANKED and row[ACC] is not None:
                by_baseline.setdefault((row["baseline"], condition(row, varying)), []).append(row)
    for (name, values), rows in sorted(by_baseline.items(), key=lambda kv: str(kv[0])):
        lines.append(
            f"baseline {name}{describe(varying, values)}: test acc {mean_std([r[ACC] for r in rows])}, mean class acc "
            f"{mean_std([r[MCA] for r in rows])}, at the best-validation epoch"
        )

    best = best_config(search, column, search_record.get("mode", "max")) if column in search.columns else []
    if not best:
        lines.append("no ranked trial: every trial failed, diverged or reported nothing")
    else:
        searched = {k: best[0].get(k) for k in (record.get("params") or {}) if k != SEED}
        if len(best) == 1:
            head = f"best trial {best[0]['trial_id']} ({column} = {best[0][column]:.4f})"
        else:
            ids = ", ".join(r["trial_id"] for r in best)
            mean = statistics.mean(r[column] for r in best)
            head = f"best config, {len(best)} seeds (trials {ids}; mean {column} = {mean:.4f})"
        if has_metrics and all(r[ACC] is not None for r in best):
            accs, mcas = [r[ACC] for r in best], [r[MCA] for r in best]
            lines.append(
                f"{head}: test acc {mean_std(accs)}, mean class acc {mean_std(mcas)}, at the best-validation epoch; "
                f"{json.dumps(searched)}"
            )
            lines += gain_lines(best, by_baseline, varying)
            majority = (reference or {}).get("majority_test_acc")
            if majority is not None and statistics.mean(accs) < majority:
                lines.append(
                    f"warning: the best test accuracy ({percent(statistics.mean(accs))}) is below the majority-class "
                    f"rate ({percent(majority)}, always '{reference['majority_class']}'): not a result"
                )
        else:
            lines.append(f"{head}; {json.dumps(searched)}")
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


def gain_lines(
    best: list[dict[str, Any]], by_baseline: dict[tuple[str, tuple[Any, ...]], list[dict[str, Any]]], varying: list[str]
) -> list[str]:
    """The best config's gain over the supervised baseline trained on the same split (paired by seed)."""
    reference = by_baseline.get((REFERENCE_BASELINE, condition(best[0], varying)))
    if not reference:
        return []
    if len(best) == 1:
        acc = best[0][ACC] - statistics.mean(r[ACC] for r in reference)
        mca = best[0][MCA] - statistics.mean(r[MCA] for r in reference)
        return [
            f"gain over {REFERENCE_BASELINE}: {100 * acc:+.1f} acc, {100 * mca:+.1f} mean class acc points "
            "(one seed: no paired test)"
        ]
    seeds = {r.get(SEED): r for r in reference}
    pairs = [(r, seeds[r.get(SEED)]) for r in best if r.get(SEED) in seeds]
    if len(pairs) < 2:
        return [f"gain over {REFERENCE_BASELINE}: fewer than two seeds in common, no paired test"]
    acc = statistics.mean(a[ACC] - b[ACC] for a, b in pairs)
    mca = statistics.mean(a[MCA] - b[MCA] for a, b in pairs)
    test_acc = paired_test([a[ACC] for a, _ in pairs], [b[ACC] for _, b in pairs])
    test_mca = paired_test([a[MCA] for a, _ in pairs], [b[MCA] for _, b in pairs])
    return [
        f"gain over {REFERENCE_BASELINE}: {100 * acc:+.1f} acc points ({test_acc}), {100 * mca:+.1f} mean class acc "
        f"points ({test_mca}); paired over {len(pairs)} seeds"
    ]
