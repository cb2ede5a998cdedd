"""The statistics of every table, figure and printed summary, in one place (scipy and statsmodels).

- **Intervals of a mean over seeds**: Student's t-interval, ``mean ± t(0.975, n - 1) · s / sqrt(n)``
  (``scipy.stats.t.interval``). Chosen over a bootstrap for the 3-10 seeds a study has: a bootstrap of n = 3
  values has 10 distinct resamples and its percentile interval never leaves the sample's range (it covers far
  less than 95 %); the t-interval is exact for normal seed-to-seed noise and widens honestly at small n.
- **Paired gains**: Student's paired t-test across seeds (``scipy.stats.ttest_rel``), with the t-interval of the
  mean difference beside its p.
- **Families**: the p-values one table reports are Holm-adjusted together (``statsmodels``' ``multipletests``).
- **Power**: the seeds a paired t-test needs to detect a gain at 80 % power, from the observed spread of the
  paired differences (``statsmodels``' ``TTestPower``).
- **Across tasks** (label budgets, data sets): ``rliable``'s aggregates (Agarwal et al., NeurIPS 2021), the
  interquartile mean of every run's score (``scipy.stats.trim_mean``, 25 % cut at each end) and the probability
  of improvement, P(X > Y) averaged over tasks, each task's the Mann-Whitney U statistic over N_x N_y (ties count
  a half), with percentile intervals of the stratified bootstrap: each task's runs resampled with replacement,
  separately (``scipy.stats.bootstrap`` over one sample per task, which resamples each sample independently).
  scipy rather than ``rliable`` itself, whose pins (``arch``, old numpy) do not install beside the project's.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
POWER = 0.8


@dataclass(frozen=True)
class PairedTest:
    """A paired t-test of ``b - a``: the mean difference, its t statistic, two-sided p-value, the pair count, the
    t-interval of the mean difference and the sample std of the differences."""

    n: int
    mean_diff: float | None
    t: float | None
    p: float | None
    low: float | None = None
    high: float | None = None
    sd_diff: float | None = None


def paired_t_test(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> PairedTest:
    """Student's paired t-test of ``b`` against ``a`` (pair i = (a[i], b[i])), two-sided: ``scipy.stats.ttest_rel``,
    with the ``confidence`` t-interval of the mean difference.

    t = mean(d) / (sd(d) / sqrt(n)) with d = b - a, sd with n - 1, df = n - 1. Fewer than two pairs: no test
    (t, p and the interval are None). Differences without spread (scipy would warn and return inf or nan): t =
    +-inf and p = 0 when they are not zero, t = 0 and p = 1 when they are; the interval is the difference itself.
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
    if max(d) - min(d) <= 1e-12 * max(1.0, abs(mean)):
        if abs(mean) <= 1e-12:
            return PairedTest(n, mean, 0.0, 1.0, mean, mean, 0.0)
        return PairedTest(n, mean, math.copysign(math.inf, mean), 0.0, mean, mean, 0.0)
    result = stats.ttest_rel([float(y) for y in b], [float(x) for x in a])
    interval = result.confidence_interval(confidence)
    return PairedTest(
        n,
        mean,
        float(result.statistic),
        float(result.pvalue),
        float(interval.low),
        float(interval.high),
        statistics.stdev(d),
    )


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """The mean and the sample standard deviation (n - 1) of ``values``; std None for one value, both for none."""
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


@dataclass(frozen=True)
class MeanInterval:
    """A mean over seeds with its sample std and its t-interval (None where n is too small)."""

    n: int
    mean: float | None
    std: float | None
    low: float | None
    high: float | None


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> MeanInterval:
    """The mean of ``values``, their sample std and the ``confidence`` t-interval of the mean
    (``scipy.stats.t.interval`` with n - 1 degrees of freedom and scale s / sqrt(n)); no interval below 2 values,
    and a point interval when the values do not spread."""
    mean, std = mean_std(values)
    n = len(values)
    if mean is None or std is None:
        return MeanInterval(n, mean, std, None, None)
    if std == 0:
        return MeanInterval(n, mean, std, mean, mean)
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=std / math.sqrt(n))
    return MeanInterval(n, mean, std, float(low), float(high))


def holm(p_values: Sequence[float | None], alpha: float = ALPHA) -> list[float | None]:
    """The Holm-adjusted p-values of one family (``statsmodels.stats.multitest.multipletests``, method holm); a
    missing p stays missing and does not count in the family's size."""
    from statsmodels.stats.multitest import multipletests

    present = [i for i, p in enumerate(p_values) if p is not None and not math.isnan(p)]
    out: list[float | None] = [None] * len(p_values)
    if present:
        adjusted = multipletests([p_values[i] for i in present], alpha=alpha, method="holm")[1]
        for i, p in zip(present, adjusted):
            out[i] = float(p)
    return out


def family_size(p_values: Sequence[float | None]) -> int:
    """m of a family: the p-values it holds."""
    return sum(1 for p in p_values if p is not None and not math.isnan(p))


def verdict(p_adjusted: float | None, alpha: float = ALPHA) -> str:
    """The words of a comparison, from its family-adjusted p."""
    if p_adjusted is None:
        return ""
    return "significant" if p_adjusted < alpha else "no difference found"


def seeds_needed(effect: float, sd_diff: float | None, alpha: float = ALPHA, power: float = POWER) -> int | None:
    """The pairs (seeds) a two-sided paired t-test at ``alpha`` needs to detect a mean difference ``effect`` with
    probability ``power``, when the differences spread with sample std ``sd_diff``: ``TTestPower().solve_power``
    on the effect size |effect| / sd_diff, rounded up (at least 2: a paired test needs two pairs). None when the
    spread or the effect is zero or unknown."""
    if sd_diff is None or not sd_diff > 0 or effect is None or effect == 0:
        return None
    from statsmodels.stats.power import TTestPower

    size = abs(effect) / sd_diff
    try:
        n = TTestPower().solve_power(effect_size=size, alpha=alpha, power=power, alternative="two-sided")
    except (ValueError, RuntimeError):  # an effect so large that no n >= 2 is bracketed: two pairs suffice
        return 2
    n = float(n[0]) if hasattr(n, "__len__") else float(n)
    return max(2, math.ceil(n - 1e-9)) if math.isfinite(n) else None


BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0  # a report is repeatable


@dataclass(frozen=True)
class Aggregate:
    """An aggregate over tasks with the percentile interval of its stratified bootstrap (None where some task
    has fewer than two runs: resampling one run says nothing about the spread)."""

    value: float | None
    low: float | None = None
    high: float | None = None


def _stratified(samples: Sequence[Sequence[float]], statistic, value: float, confidence: float) -> Aggregate:
    if any(len(s) < 2 for s in samples):
        return Aggregate(value)
    if all(min(s) == max(s) for s in samples):  # nothing to resample
        return Aggregate(value, value, value)
    result = stats.bootstrap(
        [np.asarray(s, dtype=float) for s in samples],
        statistic,
        vectorized=False,
        paired=False,
        n_resamples=BOOTSTRAP_RESAMPLES,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(BOOTSTRAP_SEED),
    )
    return Aggregate(value, float(result.confidence_interval.low), float(result.confidence_interval.high))


def iqm(values: Sequence[float] | np.ndarray) -> float:
    """The interquartile mean: the mean of the middle 50 % of the values (``scipy.stats.trim_mean(x, 0.25)``)."""
    return float(stats.trim_mean(np.asarray(values, dtype=float), 0.25))


def iqm_over_tasks(tasks: Sequence[Sequence[float]], confidence: float = CONFIDENCE) -> Aggregate:
    """The IQM of every run of every task pooled, with its stratified-bootstrap interval."""
    if not tasks or not all(tasks):
        return Aggregate(None)
    return _stratified(tasks, lambda *s: iqm(np.concatenate(s)), iqm([v for t in tasks for v in t]), confidence)


def probability_of_improvement(x: Sequence[float], y: Sequence[float]) -> float:
    """P(X > Y) of one task: the Mann-Whitney U statistic of x against y over N_x N_y (a tie counts 1/2)."""
    return float(stats.mannwhitneyu(x, y).statistic) / (len(x) * len(y))


def improvement_over_tasks(
    pairs: Sequence[tuple[Sequence[float], Sequence[float]]], confidence: float = CONFIDENCE
) -> Aggregate:
    """rliable's average probability of improvement of X over Y, the mean over tasks of P(X_m > Y_m), with its
    stratified-bootstrap interval (each task's X and Y runs resampled separately)."""
    if not pairs or not all(x and y for x, y in pairs):
        return Aggregate(None)

    def statistic(*s):
        return float(np.mean([probability_of_improvement(s[2 * i], s[2 * i + 1]) for i in range(len(pairs))]))

    samples = [v for pair in pairs for v in pair]
    return _stratified(samples, statistic, statistic(*samples), confidence)
