"""The tables of a hyper-parameter search: the best trials, each searched parameter against the numbers, the
parameters' importance (Optuna), and where ASHA stopped trials.

Rankings, the best values and the importance read the study's ranking metric (``ablate.results.selection``:
validation by default); the numbers a reader compares are the shown test numbers (``--which``) and the
last-epoch ones. Only finished search trials count: baselines are references, diverged and error trials no
results.
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import polars as pl

from ablate.results.layout import searched_keys
from ablate.results.records import STATUSES
from ablate.results.selection import LAST, Ranking, Shown, ranking, search_trials


def _pct(column: str) -> pl.Expr:
    return (pl.col(column) * 100).alias(f"{column}_pct")


def shown_for_ranking(rank: Ranking, shown: Shown) -> str:
    """The shown test column of the ranking metric's kind: mean class accuracy when it ranks on one, else
    accuracy."""
    return shown.mca if "mean_class" in rank.column else shown.acc


def best_trials(trials: pl.DataFrame, study: dict[str, Any], shown: Shown, k: int = 10) -> pl.DataFrame:
    """The ``k`` best finished search trials by the ranking metric: rank, trial_id, status, epochs_done, the
    searched values, the ranking metric, the shown test numbers and the last-epoch ones (all in %)."""
    rank = ranking(study, trials)
    candidates = search_trials(trials)
    if rank.column not in candidates.columns:
        return pl.DataFrame()
    keys = [c for c in searched_keys(study) if c in candidates.columns]
    numbers = list(dict.fromkeys([rank.column, shown.acc, shown.mca, *LAST]))
    return (
        candidates.filter(pl.col(rank.column).is_not_null())
        .sort(rank.column, descending=rank.descending)
        .head(k)
        .select(
            *[c for c in ("trial_id", "status", "epochs_done", *keys) if c in candidates.columns],
            *[_pct(c) for c in numbers if c in candidates.columns],
        )
        .with_row_index("rank", offset=1)
    )


def param_points(trials: pl.DataFrame, study: dict[str, Any], key: str, shown: Shown) -> pl.DataFrame:
    """One searched parameter against the numbers, one row per finished search trial: trial_id, value,
    metric_pct (the shown test number of the ranking metric's kind), rank_pct (the ranking metric), status,
    epochs_done."""
    rank = ranking(study, trials)
    column = shown_for_ranking(rank, shown)
    candidates = search_trials(trials)
    schema = {
        "trial_id": pl.String,
        "value": pl.Float64,
        "metric_pct": pl.Float64,
        "rank_pct": pl.Float64,
        "status": pl.String,
        "epochs_done": pl.Int64,
    }
    if key not in candidates.columns or column not in candidates.columns or rank.column not in candidates.columns:
        return pl.DataFrame(schema=schema)
    return candidates.filter(pl.col(column).is_not_null() & pl.col(key).is_not_null()).select(
        "trial_id",
        pl.col(key).alias("value"),
        (pl.col(column) * 100).alias("metric_pct"),
        (pl.col(rank.column) * 100).alias("rank_pct"),
        "status",
        (pl.col("epochs_done") if "epochs_done" in candidates.columns else pl.lit(None, dtype=pl.Int64)).alias(
            "epochs_done"
        ),
    )


def _is_numeric(dtype: pl.DataType) -> bool:
    return dtype.is_numeric() and dtype != pl.Boolean


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


PARAM_SUMMARY_SCHEMA = {
    "param": pl.String,
    "distribution": pl.String,
    "n": pl.Int64,
    "spearman": pl.Float64,
    "best_trial_value": pl.String,
    "best_level": pl.String,
    "best_level_mean_pct": pl.Float64,
}


def param_summary(trials: pl.DataFrame, study: dict[str, Any], shown: Shown) -> pl.DataFrame:
    """Each searched parameter: its distribution, the trials that have it, its Spearman rank correlation with
    the shown test number (numeric parameters; what the scatter figure draws), the best trial's value and
    (categorical) the best level by mean ranking metric: the choices are made on the ranking metric, like the
    search's own."""
    rank = ranking(study, trials)
    rows = []
    for key, spec in (study.get("params") or {}).items():
        points = param_points(trials, study, key, shown)
        kind, values = next(iter(spec.items()))
        row: dict[str, Any] = {c: None for c in PARAM_SUMMARY_SCHEMA} | {
            "param": key,
            "distribution": f"{kind} {json.dumps(values)}",
            "n": points.height,
        }
        if points.height:
            row["best_trial_value"] = _short(points.sort("rank_pct", descending=rank.descending)["value"][0])
            varies = points["value"].n_unique() > 1 and points["metric_pct"].n_unique() > 1
            if _is_numeric(points.schema["value"]) and points.height > 2 and varies:
                row["spearman"] = points.select(pl.corr("value", "metric_pct", method="spearman")).item()
            if kind in ("grid", "choice") or not _is_numeric(points.schema["value"]):
                levels = (
                    points.group_by("value")
                    .agg(pl.col("rank_pct").mean().alias("m"))
                    .sort("m", descending=rank.descending)
                )
                row["best_level"], row["best_level_mean_pct"] = _short(levels["value"][0]), levels["m"][0]
        rows.append(row)
    return pl.DataFrame(rows, schema=PARAM_SUMMARY_SCHEMA)


def asha_stops(trials: pl.DataFrame) -> pl.DataFrame:
    """How many trials ended after each number of epochs, by status: where ASHA (or an interruption, a
    divergence, an error) ended trials. Columns: epochs_done, complete, stopped, diverged, error, total."""
    statuses = list(STATUSES)
    if "epochs_done" not in trials.columns or not trials.height:
        return pl.DataFrame(schema={"epochs_done": pl.Int64, **{s: pl.UInt32 for s in statuses}, "total": pl.UInt32})
    counts = trials.group_by("epochs_done").agg(*[(pl.col("status") == s).sum().alias(s) for s in statuses])
    return counts.with_columns(pl.sum_horizontal(statuses).alias("total")).sort("epochs_done")


def _distribution(spec: dict[str, Any], observed: list[Any]):
    """The Optuna distribution of one searched key, from its spec in study.json."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    kind, values = next(iter(spec.items()))
    if kind == "uniform":
        return FloatDistribution(min(values[0], *observed), max(values[1], *observed))
    if kind == "loguniform":
        return FloatDistribution(min(values[0], *observed), max(values[1], *observed), log=True)
    if kind == "int":
        return IntDistribution(int(min(values[0], *observed)), int(max(values[1], *observed)))
    choices = [_categorical(v) for v in values]
    return CategoricalDistribution(choices + [v for v in map(_categorical, observed) if v not in choices])


def _categorical(value: Any) -> Any:
    return value if value is None or isinstance(value, (bool, int, float, str)) else json.dumps(value)


def importance_method() -> str:
    """fANOVA (Optuna's FanovaImportanceEvaluator) when scikit-learn is installed, else PED-ANOVA."""
    return "fanova" if importlib.util.find_spec("sklearn") is not None else "ped-anova"


def param_importance(
    trials: pl.DataFrame, study: dict[str, Any], method: str | None = None, seed: int = 0
) -> tuple[pl.DataFrame, str]:
    """The importance of each searched parameter for the ranking metric, and a sentence saying how it was got.

    An Optuna study is rebuilt in memory from the finished search trials (early-stopped ones judged on their
    best-so-far value; distributions from study.json's params) and given to
    ``optuna.importance.get_param_importances`` with ``method``: "fanova" (FanovaImportanceEvaluator(seed),
    needs scikit-learn) or "ped-anova" (PedAnovaImportanceEvaluator, no extra dependency); by default fANOVA
    when scikit-learn is installed. Importances sum to 1. Columns: param, importance.
    """
    import optuna

    empty = pl.DataFrame(schema={"param": pl.String, "importance": pl.Float64})
    method = method or importance_method()
    rank = ranking(study, trials)
    candidates = search_trials(trials)
    params = {k: v for k, v in (study.get("params") or {}).items() if k in candidates.columns}
    if not params or rank.column not in candidates.columns:
        return empty, "no searched parameters: no importance to compute"
    usable = candidates.filter(pl.col(rank.column).is_not_null())
    varying = {k: v for k, v in params.items() if usable[k].n_unique() > 1}
    if usable.height < 3 or not varying:
        return (
            empty,
            f"{usable.height} trial(s) with a metric and {len(varying)} varying parameter(s): "
            "too few for an importance",
        )
    distributions = {k: _distribution(spec, usable[k].drop_nulls().to_list()) for k, spec in varying.items()}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rebuilt = optuna.create_study(direction="maximize" if rank.descending else "minimize")
    for row in usable.iter_rows(named=True):
        values = {k: _categorical(row[k]) for k in varying if row[k] is not None}
        rebuilt.add_trial(
            optuna.trial.create_trial(
                params=values, distributions={k: distributions[k] for k in values}, value=float(row[rank.column])
            )
        )
    if method == "fanova":
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
        how = f"fANOVA (Optuna's FanovaImportanceEvaluator, seed {seed})"
    elif method == "ped-anova":
        evaluator = optuna.importance.PedAnovaImportanceEvaluator()
        how = "PED-ANOVA (Optuna's PedAnovaImportanceEvaluator; fANOVA needs scikit-learn, which is not installed)"
    else:
        raise ValueError(f"method: expected 'fanova' or 'ped-anova', got {method!r}")
    try:
        scores = optuna.importance.get_param_importances(rebuilt, evaluator=evaluator, normalize=True)
    except Exception as err:
        return empty, f"{how} failed on {usable.height} trials: {err}"
    table = pl.DataFrame(
        {"param": list(scores), "importance": [float(v) for v in scores.values()]}, schema=empty.schema
    )
    return table.sort("importance", descending=True), f"{how} of {rank.column} over {usable.height} trials"
