"""The statistics of the tables: Student's paired t-test across seeds (scipy) and mean ± std over seeds."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats


@dataclass(frozen=True)
class PairedTest:
    """A paired t-test of ``b - a``: the mean difference, its t statistic, two-sided p-value and the pair count."""

    n: int
    mean_diff: float | None
    t: float | None
    p: float | None


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> PairedTest:
    """Student's paired t-test of ``b`` against ``a`` (pair i = (a[i], b[i])), two-sided: ``scipy.stats.ttest_rel``.

    t = mean(d) / (sd(d) / sqrt(n)) with d = b - a, sd with n - 1, df = n - 1. Fewer than two pairs: no test
    (t and p are None). Differences without spread (scipy would warn and return inf or nan): t = +-inf and p = 0
    when they are not zero, t = 0 and p = 1 when they are.
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
            return PairedTest(n, mean, 0.0, 1.0)
        return PairedTest(n, mean, math.copysign(math.inf, mean), 0.0)
    result = stats.ttest_rel([float(y) for y in b], [float(x) for x in a])
    return PairedTest(n, mean, float(result.statistic), float(result.pvalue))


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """The mean and the sample standard deviation (n - 1) of ``values``; std None for one value, both for none."""
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None
