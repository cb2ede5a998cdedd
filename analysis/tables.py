"""Pure polars functions that turn a study's results folder into tables.

A results folder (``python -m ablate.run`` writes it) holds ``trials.parquet`` (one row per trial),
``epochs.parquet`` (one row per trial and epoch) and ``study.json`` (the validated study). Accuracies are
stored as fractions; every table here reports them in percent (``*_pct`` and ``acc_*``/``mca_*`` columns) and
differences between them in percentage points. Nothing here draws or writes files: see ``plots`` and ``sections``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from ablate.errors import AblateError

TRIALS_FILE, EPOCHS_FILE, STUDY_FILE = "trials.parquet", "epochs.parquet", "study.json"
# The keys that set a label budget, in the order they are looked for.
BUDGET_KEYS = ("data.labels", "data.labels_per_class", "data.label_fraction")
SEED_KEYS = ("trainer.seed", "repeat")  # ladder trials are paired on these within a budget


class ResultsError(AblateError):
    """A results folder is missing, incomplete, or does not hold what an analysis needs."""


# ---- loading --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Results:
    """One study's results: its trials, its epochs and its study record (``study.json``)."""

    path: Path
    trials: pl.DataFrame
    epochs: pl.DataFrame
    study: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.study.get("name") or self.path.name)


def load_results(folder: str | Path) -> Results:
    """Read ``folder``'s trials.parquet, epochs.parquet and study.json; a clear ``ResultsError`` otherwise."""
    path = Path(folder)
    if not path.is_dir():
        raise ResultsError(
            f"{path}: no such results folder; expected the folder `python -m ablate.run` wrote, "
            f"holding {TRIALS_FILE}, {EPOCHS_FILE} and {STUDY_FILE} (e.g. results/<study name>)"
        )
    missing = [name for name in (TRIALS_FILE, EPOCHS_FILE, STUDY_FILE) if not (path / name).is_file()]
    if missing:
        raise ResultsError(
            f"{path}: missing {', '.join(missing)}; a results folder holds {TRIALS_FILE}, {EPOCHS_FILE} and "
            f"{STUDY_FILE}. If the study was interrupted, `python -m ablate.run --space FILE --resume` rewrites them"
        )
    try:
        trials = pl.read_parquet(path / TRIALS_FILE)
        epochs = pl.read_parquet(path / EPOCHS_FILE)
    except Exception as err:
        raise ResultsError(f"{path}: cannot read the Parquet files ({err})") from None
    try:
        study = json.loads((path / STUDY_FILE).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ResultsError(f"{path / STUDY_FILE}: not a readable study record ({err})") from None
    for column in ("trial_id", "status"):
        if column not in trials.columns:
            raise ResultsError(f"{path / TRIALS_FILE}: no {column!r} column; is this a trials table written by ablate?")
    return Results(path, trials, epochs, study)


# ---- small helpers --------------------------------------------------------------------------------------


def metric_column(metric: str, which: str = "best") -> str:
    """``test_acc`` -> ``best_test_acc`` (or ``last_test_acc``); a name that already says best_/last_ is kept."""
    if which not in ("best", "last"):
        raise ValueError(f"which: expected 'best' or 'last', got {which!r}")
    return metric if metric.startswith(("best_", "last_")) else f"{which}_{metric}"


def search_metric(study: dict[str, Any]) -> tuple[str, str]:
    """The trials column the study was optimised on, and its mode (max or min)."""
    search = study.get("search") or {}
    return metric_column(search.get("metric", "best_test_acc"), "last"), search.get("mode", "max")


def metric_title(column: str) -> str:
    """``best_test_acc`` -> "Best test accuracy (%)": a metric column as an axis label."""
    which, _, rest = column.partition("_") if column.startswith(("best_", "last_")) else ("", "", column)
    split, _, name = rest.partition("_")
    words = {"acc": "accuracy", "mean_class_acc": "mean class accuracy"}.get(name, name.replace("_", " "))
    prefix = {"best": "Best ", "last": "Last-epoch ", "": ""}[which]
    text = f"{prefix}{'validation' if split == 'val' else split} {words} (%)"
    return text[0].upper() + text[1:]


def budget_key(trials: pl.DataFrame, study: dict[str, Any]) -> str | None:
    """The config key that sets the label budget: a searched one first, else the first one with values."""
    params = study.get("params") or {}
    for key in BUDGET_KEYS:
        if key in params and key in trials.columns:
            return key
    for key in BUDGET_KEYS:
        if key in trials.columns and trials[key].drop_nulls().len():
            return key
    return None


def rung_order(study: dict[str, Any], trials: pl.DataFrame | None = None) -> list[str]:
    """The ladder's rungs in the study's order: the ``variant`` grid/choice list, else the ``variants`` mapping,
    then any rung found only in the trials (in order of appearance). Never alphabetical."""
    spec = (study.get("params") or {}).get("variant")
    order = [str(v) for v in next(iter(spec.values()))] if spec else [str(v) for v in (study.get("variants") or {})]
    if trials is not None and "variant" in trials.columns:
        order += [v for v in trials["variant"].drop_nulls().unique(maintain_order=True).to_list() if v not in order]
    return order


def class_names(epochs: pl.DataFrame) -> list[str]:
    """Class names in the trainer's order, read from the per-class test accuracy (or threshold) columns."""
    for prefix in ("test_acc_", "threshold_", "val_acc_"):
        names = [c.removeprefix(prefix) for c in epochs.columns if c.startswith(prefix)]
        if names:
            return names
    return []


def pretty_class(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _present(frame: pl.DataFrame, columns: Sequence[str]) -> list[str]:
    """The columns of ``columns`` that exist and hold at least one value."""
    return [c for c in columns if c in frame.columns and frame[c].null_count() < frame.height]


def _pct(column: str, alias: str | None = None) -> pl.Expr:
    return (pl.col(column) * 100).alias(alias or column)


# ---- statistics -----------------------------------------------------------------------------------------


def _beta_continued_fraction(a: float, b: float, x: float, eps: float = 1e-15, max_iter: int = 1000) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes 6.4)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, max_iter + 1):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            step = d * c
            h *= step
        if abs(step - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b), for a, b > 0 and 0 <= x <= 1."""
    if not (a > 0 and b > 0):
        raise ValueError(f"betainc: a and b must be > 0, got {a}, {b}")
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def student_t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))  # P(T > |t|)
    return 1.0 - tail if t >= 0 else tail


def student_t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom: I_{df/(df+t^2)}(df/2, 1/2)."""
    if math.isinf(t):
        return 0.0
    return betainc(df / 2.0, 0.5, df / (df + t * t))


@dataclass(frozen=True)
class PairedTest:
    """A paired t-test of ``b - a``: the mean difference, its t statistic, two-sided p-value and the pair count."""

    n: int
    mean_diff: float | None
    t: float | None
    p: float | None


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> PairedTest:
    """Student's paired t-test of ``b`` against ``a`` (same length, pair i = (a[i], b[i])), two-sided.

    t = mean(d) / (sd(d) / sqrt(n)) with d = b - a and sd the sample standard deviation (n - 1), df = n - 1.
    Fewer than two pairs: no test (t and p are None). All differences equal: t = +-inf and p = 0 when they are
    not zero, t = 0 and p = 1 when they are.
    """
    if len(a) != len(b):
        raise ValueError(f"paired_t_test: {len(a)} values against {len(b)}; pairs need equal lengths")
    d = [float(y) - float(x) for x, y in zip(a, b)]
    n = len(d)
    if n == 0:
        return PairedTest(0, None, None, None)
    mean = sum(d) / n
    if n < 2:
        return PairedTest(n, mean, None, None)
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    if sd <= 1e-12 * max(1.0, abs(mean)):
        return (
            PairedTest(n, mean, 0.0, 1.0)
            if abs(mean) <= 1e-12
            else PairedTest(n, mean, math.copysign(math.inf, mean), 0.0)
        )
    t = mean / (sd / math.sqrt(n))
    return PairedTest(n, mean, t, student_t_two_sided_p(t, n - 1))


# ---- the ablation ladder --------------------------------------------------------------------------------

LADDER_COLUMNS = (
    "budget",
    "rung",
    "n",
    "acc_mean",
    "acc_std",
    "mca_mean",
    "mca_std",
    "acc_gain_prev",
    "acc_gain_sup",
    "mca_gain_prev",
    "mca_gain_sup",
    "n_pairs_prev",
    "t_prev",
    "p_prev",
    "n_pairs_sup",
    "t_sup",
    "p_sup",
)


def ladder_table(
    trials: pl.DataFrame,
    study: dict[str, Any],
    which: str = "best",
    split: str = "test",
    statuses: Sequence[str] = ("complete",),
) -> pl.DataFrame:
    """The ablation ladder: one row per label budget and rung, rungs in the study's order.

    Columns (accuracies in %, gains in percentage points): budget (the value of ``budget_key``, null when the
    study has none), rung, n (trials = seeds), acc_mean/acc_std (the ``which`` = best or last accuracy over seeds,
    std with n - 1), mca_mean/mca_std (mean class accuracy), acc_gain_prev / mca_gain_prev (over the previous
    rung present at that budget), acc_gain_sup / mca_gain_sup (over the first rung, supervised only), and paired
    t-tests of the accuracy against the previous and the first rung: pairs are trials with the same
    ``trainer.seed`` (and ``repeat``) at the same budget; n_pairs_*, t_*, p_* (two-sided).
    Only trials whose status is in ``statuses`` count.
    """
    acc, mca = metric_column(f"{split}_acc", which), metric_column(f"{split}_mean_class_acc", which)
    schema = {"budget": pl.Float64, "rung": pl.String, "n": pl.UInt32} | {c: pl.Float64 for c in LADDER_COLUMNS[3:]}
    schema |= {"n_pairs_prev": pl.Int64, "n_pairs_sup": pl.Int64}
    if "variant" not in trials.columns or acc not in trials.columns:
        return pl.DataFrame(schema=schema)
    key = budget_key(trials, study)
    order = rung_order(study, trials)
    seeds = [k for k in SEED_KEYS if k in trials.columns]
    frame = trials.filter(
        pl.col("status").is_in(list(statuses)) & pl.col("variant").is_not_null() & pl.col(acc).is_not_null()
    ).with_columns(
        (pl.col(key) if key else pl.lit(None, dtype=pl.Float64)).alias("budget"),
        pl.col("variant").alias("rung"),
        _pct(acc, "acc"),
        (_pct(mca, "mca") if mca in trials.columns else pl.lit(None, dtype=pl.Float64).alias("mca")),
        pl.concat_str([pl.col(k).cast(pl.String).fill_null("") for k in seeds], separator="/").alias("pair")
        if seeds
        else pl.lit("").alias("pair"),
    )
    if not frame.height:
        return pl.DataFrame(schema=schema | {"budget": frame.schema["budget"]})
    stats = (
        frame.group_by("budget", "rung")
        .agg(
            pl.len().alias("n"),
            pl.col("acc").mean().alias("acc_mean"),
            pl.col("acc").std().alias("acc_std"),
            pl.col("mca").mean().alias("mca_mean"),
            pl.col("mca").std().alias("mca_std"),
        )
        .with_columns(
            pl.col("rung").replace_strict({r: i for i, r in enumerate(order)}, return_dtype=pl.Int64).alias("_order")
        )
        .sort("budget", "_order", nulls_last=True)
    )
    rows = []
    for budget_rows in stats.partition_by("budget", maintain_order=True):
        records = budget_rows.to_dicts()
        budget = records[0]["budget"]
        here = frame.filter(pl.col("budget").is_null() if budget is None else pl.col("budget") == budget)
        by_rung = {r: dict(zip(g["pair"].to_list(), g["acc"].to_list())) for (r,), g in here.group_by("rung")}
        first = records[0]
        for i, row in enumerate(records):
            prev = records[i - 1] if i else None
            for tag, ref in (("prev", prev), ("sup", first if i else None)):
                if ref is None:
                    row |= {
                        f"acc_gain_{tag}": None,
                        f"mca_gain_{tag}": None,
                        f"n_pairs_{tag}": None,
                        f"t_{tag}": None,
                        f"p_{tag}": None,
                    }
                    continue
                row[f"acc_gain_{tag}"] = row["acc_mean"] - ref["acc_mean"]
                row[f"mca_gain_{tag}"] = (
                    None if row["mca_mean"] is None or ref["mca_mean"] is None else row["mca_mean"] - ref["mca_mean"]
                )
                mine, theirs = by_rung[row["rung"]], by_rung[ref["rung"]]
                common = [p for p in mine if p in theirs]
                test = paired_t_test([theirs[p] for p in common], [mine[p] for p in common])
                row |= {f"n_pairs_{tag}": test.n, f"t_{tag}": test.t, f"p_{tag}": test.p}
            rows.append(row)
    out = pl.DataFrame(
        rows, schema_overrides={c: schema[c] for c in LADDER_COLUMNS if c not in ("budget",)}, infer_schema_length=None
    )
    return out.select(LADDER_COLUMNS)


def format_ladder(table: pl.DataFrame, budget_label: str = "Labels") -> pl.DataFrame:
    """The ladder for reading: mean ± std strings, signed gains, p-values; one row per budget and rung."""

    def pm(mean: float | None, std: float | None) -> str:
        if mean is None:
            return "–"
        return f"{mean:.1f}" if std is None or math.isnan(std) else f"{mean:.1f} ± {std:.1f}"

    def signed(x: float | None) -> str:
        return "" if x is None else f"{x:+.1f}"

    def pval(p: float | None, n: int | None) -> str:
        return "" if p is None else (f"{p:.3f}" if p >= 0.001 else "<0.001") + f" (n={n})"

    rows = [
        {
            budget_label: "" if r["budget"] is None else _fmt_budget(r["budget"]),
            "Rung": r["rung"],
            "Seeds": r["n"],
            "Accuracy (%)": pm(r["acc_mean"], r["acc_std"]),
            "Mean class acc. (%)": pm(r["mca_mean"], r["mca_std"]),
            "Δ acc. vs prev. (pp)": signed(r["acc_gain_prev"]),
            "p vs prev.": pval(r["p_prev"], r["n_pairs_prev"]),
            "Δ acc. vs supervised (pp)": signed(r["acc_gain_sup"]),
            "p vs supervised": pval(r["p_sup"], r["n_pairs_sup"]),
            "Δ mean class acc. vs supervised (pp)": signed(r["mca_gain_sup"]),
        }
        for r in table.iter_rows(named=True)
    ]
    columns = [
        budget_label,
        "Rung",
        "Seeds",
        "Accuracy (%)",
        "Mean class acc. (%)",
        "Δ acc. vs prev. (pp)",
        "p vs prev.",
        "Δ acc. vs supervised (pp)",
        "p vs supervised",
        "Δ mean class acc. vs supervised (pp)",
    ]
    return pl.DataFrame(rows, schema={c: (pl.Int64 if c == "Seeds" else pl.String) for c in columns})


def _fmt_budget(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def budget_label(key: str | None) -> str:
    return {
        "data.labels": "Labels",
        "data.labels_per_class": "Labels per class",
        "data.label_fraction": "Label fraction",
    }.get(key or "", "Budget")


# ---- the search -----------------------------------------------------------------------------------------


# Searched keys that lay out an ablation (its rungs, budgets and seeds) rather than tune a hyper-parameter.
LADDER_AXES = ("variant", "trainer.seed", "data.split_seed", *BUDGET_KEYS)


def searched_keys(study: dict[str, Any]) -> list[str]:
    return list(study.get("params") or {})


def tuned_keys(study: dict[str, Any]) -> list[str]:
    """The searched keys that are hyper-parameters, not the ladder's axes (rung, budget, seed)."""
    return [k for k in searched_keys(study) if k not in LADDER_AXES]


def _is_numeric(dtype: pl.DataType) -> bool:
    return dtype.is_numeric() and dtype != pl.Boolean


def best_trials(trials: pl.DataFrame, study: dict[str, Any], k: int = 10) -> pl.DataFrame:
    """The ``k`` best trials by the study's metric (in %), with their status, epochs and searched values."""
    column, mode = search_metric(study)
    if column not in trials.columns:
        return pl.DataFrame()
    keys = [c for c in searched_keys(study) if c in trials.columns]
    keep = ["trial_id", "status", "epochs_done", *keys, column]
    extra = [c for c in (metric_column("test_mean_class_acc"),) if c in trials.columns and c != column]
    return (
        trials.filter(pl.col(column).is_not_null())
        .sort(column, descending=mode == "max")
        .head(k)
        .select(
            *[c for c in keep if c in trials.columns and c != column],
            _pct(column, f"{column}_pct"),
            *[_pct(c, f"{c}_pct") for c in extra],
        )
        .with_row_index("rank", offset=1)
    )


def param_points(trials: pl.DataFrame, study: dict[str, Any], key: str) -> pl.DataFrame:
    """One searched parameter against the study's metric: value, metric (in %), status, epochs_done per trial."""
    column, _ = search_metric(study)
    if key not in trials.columns or column not in trials.columns:
        return pl.DataFrame(
            schema={"value": pl.Float64, "metric_pct": pl.Float64, "status": pl.String, "epochs_done": pl.Int64}
        )
    return trials.filter(pl.col(column).is_not_null() & pl.col(key).is_not_null()).select(
        "trial_id", pl.col(key).alias("value"), _pct(column, "metric_pct"), "status", "epochs_done"
    )


def param_summary(trials: pl.DataFrame, study: dict[str, Any]) -> pl.DataFrame:
    """Each searched parameter: its distribution, the trials that have it, its Spearman rank correlation with
    the metric (numeric parameters), the best trial's value, and (categorical) the best level by mean metric."""
    column, mode = search_metric(study)
    rows = []
    for key, spec in (study.get("params") or {}).items():
        points = param_points(trials, study, key)
        kind, values = next(iter(spec.items()))
        row: dict[str, Any] = {
            "param": key,
            "distribution": f"{kind} {json.dumps(values)}",
            "n": points.height,
            "spearman": None,
            "best_trial_value": None,
            "best_level": None,
            "best_level_mean_pct": None,
        }
        if points.height:
            ranked = points.sort("metric_pct", descending=mode == "max")
            row["best_trial_value"] = _short(ranked["value"][0])
            numeric = _is_numeric(points.schema["value"])
            if numeric and points.height > 2 and points["value"].n_unique() > 1 and points["metric_pct"].n_unique() > 1:
                row["spearman"] = points.select(pl.corr("value", "metric_pct", method="spearman")).item()
            levels = (
                points.group_by("value").agg(pl.col("metric_pct").mean().alias("m")).sort("m", descending=mode == "max")
            )
            if kind in ("grid", "choice") or not _is_numeric(points.schema["value"]):
                row["best_level"], row["best_level_mean_pct"] = _short(levels["value"][0]), levels["m"][0]
        rows.append(row)
    return pl.DataFrame(
        rows,
        schema={
            "param": pl.String,
            "distribution": pl.String,
            "n": pl.Int64,
            "spearman": pl.Float64,
            "best_trial_value": pl.String,
            "best_level": pl.String,
            "best_level_mean_pct": pl.Float64,
        },
    )


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def asha_stops(trials: pl.DataFrame) -> pl.DataFrame:
    """How many trials ended after each number of epochs, by status (complete / stopped / error): where ASHA
    (or an interruption) stopped trials. Columns: epochs_done, complete, stopped, error, total."""
    statuses = ["complete", "stopped", "error"]
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
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return "ped-anova"
    return "fanova"


def param_importance(
    trials: pl.DataFrame, study: dict[str, Any], method: str | None = None, seed: int = 0
) -> tuple[pl.DataFrame, str]:
    """The importance of each searched parameter for the study's metric, and a sentence saying how it was got.

    An Optuna study is rebuilt in memory from the trials (every trial with a metric, early-stopped ones judged
    on their best-so-far value; distributions from study.json's params) and given to
    ``optuna.importance.get_param_importances`` with ``method``: "fanova" (FanovaImportanceEvaluator(seed),
    needs scikit-learn) or "ped-anova" (PedAnovaImportanceEvaluator, no extra dependency); by default fANOVA
    when scikit-learn is installed. Importances sum to 1. Columns: param, importance.
    """
    import optuna

    empty = pl.DataFrame(schema={"param": pl.String, "importance": pl.Float64})
    method = method or importance_method()
    column, mode = search_metric(study)
    params = {k: v for k, v in (study.get("params") or {}).items() if k in trials.columns}
    if not params or column not in trials.columns:
        return empty, "no searched parameters: no importance to compute"
    usable = trials.filter(pl.col(column).is_not_null() & (pl.col("status") != "error"))
    varying = {k: v for k, v in params.items() if usable[k].n_unique() > 1}
    if usable.height < 3 or not varying:
        return (
            empty,
            f"{usable.height} trial(s) with a metric and {len(varying)} varying parameter(s): too few for an importance",
        )
    distributions = {k: _distribution(spec, usable[k].drop_nulls().to_list()) for k, spec in varying.items()}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rebuilt = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
    for row in usable.iter_rows(named=True):
        values = {k: _categorical(row[k]) for k in varying if row[k] is not None}
        rebuilt.add_trial(
            optuna.trial.create_trial(
                params=values, distributions={k: distributions[k] for k in values}, value=float(row[column])
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
    return table.sort("importance", descending=True), f"{how} of {column} over {usable.height} trials"


# ---- dynamics -------------------------------------------------------------------------------------------


def best_trial_id(
    trials: pl.DataFrame, study: dict[str, Any], require: Sequence[str] = (), epochs: pl.DataFrame | None = None
) -> str | None:
    """The best trial by the study's metric; with ``require``, the best one whose epochs hold those columns."""
    column, mode = search_metric(study)
    if column not in trials.columns:
        return None
    ranked = trials.filter(pl.col(column).is_not_null()).sort(column, descending=mode == "max")["trial_id"].to_list()
    if require and epochs is not None:
        cols = [c for c in require if c in epochs.columns]
        if len(cols) < len(require):
            return None
        having = set(epochs.filter(pl.any_horizontal([pl.col(c).is_not_null() for c in cols]))["trial_id"].to_list())
        ranked = [t for t in ranked if t in having]
    return ranked[0] if ranked else None


def trial_label(trials: pl.DataFrame, study: dict[str, Any]) -> pl.DataFrame:
    """A short label per trial for the curves: the rung (with its budget when the study has several), else
    the trial id. Columns: trial_id, group."""
    key = budget_key(trials, study)
    ran = trials.filter(pl.col("status") != "error") if "status" in trials.columns else trials
    several = key is not None and ran[key].n_unique() > 1
    if "variant" in trials.columns and trials["variant"].drop_nulls().len():
        group = pl.col("variant").fill_null("?")
        if several:
            group = pl.concat_str(
                [group, pl.lit(" · "), pl.col(key).cast(pl.String), pl.lit(f" {budget_label(key).lower()}")]
            )
        return trials.select("trial_id", group.alias("group"))
    column, _ = search_metric(study)
    if column in trials.columns:
        metric = pl.format("{}%", (pl.col(column) * 100).round(1)).fill_null("no metric")
        return trials.select("trial_id", pl.concat_str([pl.col("trial_id"), pl.lit(" · "), metric]).alias("group"))
    return trials.select("trial_id", pl.col("trial_id").alias("group"))


def curves(
    epochs: pl.DataFrame, trials: pl.DataFrame, study: dict[str, Any], columns: Sequence[str], max_groups: int = 8
) -> pl.DataFrame:
    """Per-epoch curves of ``columns`` (fractions), averaged over the trials of each group (``trial_label``):
    one row per group and epoch, columns group, epoch, n (trials) and ``<column>_pct`` for each column, in %.
    Groups are ordered by budget, then rung, or for a search by the trials' metric, best first, at most
    ``max_groups`` of them. Rows where none of the columns was recorded (a component that is off) are left out."""
    cols = _present(epochs, columns)
    if not cols or not epochs.height:
        return pl.DataFrame(schema={"group": pl.String, "epoch": pl.Int64, "n": pl.UInt32})
    labels = trial_label(trials, study)
    joined = epochs.select("trial_id", "epoch", *cols).join(labels, on="trial_id", how="inner")
    out = joined.group_by("group", "epoch").agg(
        pl.len().alias("n"), *[(pl.col(c).mean() * 100).alias(f"{c}_pct") for c in cols]
    )
    order = _group_order(trials, study, labels)
    if not _has_rungs(trials):
        order = order[:max_groups]
    rank = {g: i for i, g in enumerate(order)}
    out = out.filter(pl.col("group").is_in(order) & pl.any_horizontal([pl.col(f"{c}_pct").is_not_null() for c in cols]))
    return (
        out.with_columns(pl.col("group").replace_strict(rank, return_dtype=pl.Int64).alias("_o"))
        .sort("_o", "epoch")
        .drop("_o")
    )


def _has_rungs(trials: pl.DataFrame) -> bool:
    return "variant" in trials.columns and trials["variant"].drop_nulls().len() > 0


def _group_order(trials: pl.DataFrame, study: dict[str, Any], labels: pl.DataFrame) -> list[str]:
    column, mode = search_metric(study)
    if "variant" in trials.columns and trials["variant"].drop_nulls().len():
        rung = {r: i for i, r in enumerate(rung_order(study, trials))}
        key = budget_key(trials, study)
        frame = labels.join(trials.select("trial_id", "variant", *([key] if key else [])), on="trial_id")
        frame = frame.with_columns(
            pl.col("variant").replace_strict(rung, default=len(rung), return_dtype=pl.Int64).alias("_r")
        )
        return frame.sort(*([key] if key else []), "_r")["group"].unique(maintain_order=True).to_list()
    if column in trials.columns:
        ranked = trials.sort(column, descending=mode == "max", nulls_last=True).select("trial_id")
        return ranked.join(labels, on="trial_id", how="left", maintain_order="left")["group"].to_list()
    return labels["group"].to_list()


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
    """The trial whose thresholds to show: the best one whose thresholds move (differ between classes or
    epochs: an adaptive threshold), else the best one with thresholds at all. Returns (trial id, moving)."""
    cols = [f"threshold_{c}" for c in class_names(epochs) if f"threshold_{c}" in epochs.columns]
    if not cols:
        return None, False
    spread = (
        epochs.filter(pl.any_horizontal([pl.col(c).is_not_null() for c in cols]))
        .group_by("trial_id")
        .agg(pl.concat_list(cols).explode().n_unique().alias("distinct"))
    )
    moving = set(spread.filter(pl.col("distinct") > 1)["trial_id"].to_list())
    column, mode = search_metric(study)
    ranked = (
        trials.filter(pl.col(column).is_not_null()).sort(column, descending=mode == "max")["trial_id"].to_list()
        if column in trials.columns
        else []
    )
    for trial in ranked:
        if trial in moving:
            return trial, True
    having = set(spread["trial_id"].to_list())
    return next((t for t in ranked if t in having), None), False


def chance_levels(epochs: pl.DataFrame) -> dict[str, Any]:
    """What a model that learnt nothing scores on the test set (read from a confusion matrix, whose row sums
    are the class counts): the majority class's share (always predicting it: the accuracy floor) and 100/K
    (the mean class accuracy of any constant prediction). Empty when no confusion matrix was recorded."""
    if "test_confusion" not in epochs.columns:
        return {}
    matrices = epochs["test_confusion"].drop_nulls()
    if not matrices.len():
        return {}
    support = [sum(row) for row in matrices[0]]
    names = class_names(epochs)
    top = max(range(len(support)), key=support.__getitem__)
    return {
        "majority_class": names[top] if len(names) == len(support) else str(top),
        "majority_pct": 100.0 * support[top] / max(1, sum(support)),
        "chance_mca_pct": 100.0 / len(support),
        "test_images": sum(support),
    }


def best_epoch(epochs: pl.DataFrame, trial_id: str, metric: str = "test_acc") -> int | None:
    """The epoch of a trial's best ``metric`` (the first one on ties): where its best_* value was measured."""
    rows = (
        epochs.filter((pl.col("trial_id") == trial_id) & pl.col(metric).is_not_null())
        if metric in epochs.columns
        else epochs.clear()
    )
    if not rows.height:
        return None
    return int(rows.sort(metric, "epoch", descending=[True, False])["epoch"][0])


def per_class_accuracy(epochs: pl.DataFrame, trial_id: str, epoch: int) -> pl.DataFrame:
    """One trial's per-class test accuracy (in %) at ``epoch``, with each class's test support (from the
    confusion matrix). Columns: class, accuracy_pct, support."""
    names = class_names(epochs)
    row = epochs.filter((pl.col("trial_id") == trial_id) & (pl.col("epoch") == epoch))
    if not row.height or not names:
        return pl.DataFrame(schema={"class": pl.String, "accuracy_pct": pl.Float64, "support": pl.Int64})
    r = row.row(0, named=True)
    matrix = r.get("test_confusion")
    support = [int(sum(line)) for line in matrix] if matrix else [None] * len(names)
    return pl.DataFrame(
        {
            "class": names,
            "accuracy_pct": [None if r.get(f"test_acc_{c}") is None else r[f"test_acc_{c}"] * 100 for c in names],
            "support": support,
        },
        schema={"class": pl.String, "accuracy_pct": pl.Float64, "support": pl.Int64},
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
