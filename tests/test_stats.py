"""The statistics of the tables on hand-computed cases: t-intervals, Holm, and the seeds a paired test needs."""

import math

import pytest
from scipy import stats as scipy_stats

from ablate.results import stats


def test_t_interval_of_a_known_sample():
    # 1, 2, 3: mean 2, s = 1; t(0.975, 2) = 4.302653 (a t table), half-width 4.302653 / sqrt(3) = 2.484138
    m = stats.mean_interval([1.0, 2.0, 3.0])
    assert (m.n, m.mean, m.std) == (3, pytest.approx(2.0), pytest.approx(1.0))
    assert (m.low, m.high) == (pytest.approx(2 - 2.484138, abs=1e-6), pytest.approx(2 + 2.484138, abs=1e-6))
    # 10, 12 (n = 2): s = sqrt 2, t(0.975, 1) = 12.7062; half-width 12.7062 · sqrt(2) / sqrt(2) = 12.7062
    two = stats.mean_interval([10.0, 12.0])
    assert (two.low, two.high) == (pytest.approx(11 - 12.7062, abs=1e-4), pytest.approx(11 + 12.7062, abs=1e-4))
    assert stats.mean_interval([5.0]).low is None  # one seed: no interval
    same = stats.mean_interval([4.0, 4.0, 4.0])
    assert (same.low, same.high) == (4.0, 4.0)


def test_paired_gain_has_its_interval():
    # d = b - a = 5, 4, 6: mean 5, sd 1 -> 5 ± 2.484138
    test = stats.paired_t_test([40.0, 42.0, 44.0], [45.0, 46.0, 50.0])
    assert (test.mean_diff, test.sd_diff) == (pytest.approx(5.0), pytest.approx(1.0))
    assert (test.low, test.high) == (pytest.approx(5 - 2.484138, abs=1e-6), pytest.approx(5 + 2.484138, abs=1e-6))


def test_holm_on_a_known_list():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # a missing p stays missing and is not counted: m = 2, so 0.02 -> 0.04 and 0.5 stays 0.5
    assert stats.holm([0.02, None, 0.5]) == [pytest.approx(0.04), None, pytest.approx(0.5)]
    assert stats.family_size([0.02, None, 0.5]) == 2
    assert stats.holm([0.3, 0.7]) == [pytest.approx(0.6), pytest.approx(0.7)]  # 0.3 x 2; 0.7 x 1 (above 0.6)
    assert (stats.verdict(0.03), stats.verdict(0.06), stats.verdict(None)) == ("significant", "no difference found", "")


def _power(n: int, d: float) -> float:
    """The power of a two-sided paired t-test at alpha 0.05 with n pairs and effect size d, from the noncentral t."""
    df, nc = n - 1, d * math.sqrt(n)
    crit = scipy_stats.t.ppf(0.975, df)
    return scipy_stats.nct.sf(crit, df, nc) + scipy_stats.nct.cdf(-crit, df, nc)


def test_seeds_needed_for_a_known_effect_and_spread():
    # a gain of 2 points with a paired sd of 2 (d = 1): 10 seeds reach 80 % power, 9 do not
    assert _power(10, 1.0) >= 0.8 > _power(9, 1.0)
    assert stats.seeds_needed(2.0, 2.0) == 10
    assert stats.seeds_needed(-2.0, 2.0) == 10  # a loss needs as many seeds as a gain
    # d = 0.5: 34 seeds (power 0.808), 33 fall short (0.795)
    assert _power(34, 0.5) >= 0.8 > _power(33, 0.5)
    assert stats.seeds_needed(1.0, 2.0) == 34
    assert stats.seeds_needed(1.0, 0.0) is None and stats.seeds_needed(0.0, 1.0) is None


# ---- across budgets: rliable's IQM and probability of improvement ------------------------------------------


def test_iqm_is_the_mean_of_the_middle_half():
    from ablate.results.stats import iqm

    assert iqm([8, 1, 7, 2, 6, 3, 5, 4]) == 4.5  # drop 1, 2 and 7, 8: mean of 3, 4, 5, 6
    assert iqm([1, 2, 3, 100]) == 2.5  # the outlier does not move it


def test_probability_of_improvement_by_hand():
    """x = (3, 5) against y = (1, 3): 3 > 1, 3 = 3 (a half), 5 > 1, 5 > 3: 3.5 of 4 pairs; and a second task where
    x always loses: the average over the two tasks is 0.4375."""
    from ablate.results.stats import improvement_over_tasks, probability_of_improvement

    assert probability_of_improvement([3, 5], [1, 3]) == 0.875
    assert probability_of_improvement([1, 2], [3, 4]) == 0.0
    both = improvement_over_tasks([([3, 5], [1, 3]), ([1, 2], [3, 4])])
    assert both.value == pytest.approx(0.4375)
    assert 0.0 <= both.low <= both.value <= both.high <= 1.0
    # a rung that beats the other in every run of every resample: the interval is the point 1
    sure = improvement_over_tasks([([10, 11, 12], [1, 2, 3]), ([20, 21], [5, 6])])
    assert (sure.value, sure.low, sure.high) == (1.0, 1.0, 1.0)
    assert improvement_over_tasks([([3], [1, 2])]).low is None  # one run: no interval


def test_the_stratified_bootstrap_resamples_within_each_task():
    """Two tasks whose scores do not overlap: a pooled bootstrap could draw six runs of one task (an IQM near 11 or
    51), a stratified one always draws three of each, so the middle four of every resample are two of each task:
    every resampled IQM lies in [(10 + 10 + 50 + 50) / 4, (12 + 12 + 52 + 52) / 4] = [30, 32]."""
    from ablate.results.stats import iqm_over_tasks

    low_task, high_task = [10.0, 11.0, 12.0], [50.0, 51.0, 52.0]
    pooled = iqm_over_tasks([low_task, high_task])
    assert pooled.value == pytest.approx((11 + 12 + 50 + 51) / 4)
    assert 30.0 <= pooled.low <= pooled.value <= pooled.high <= 32.0
    assert iqm_over_tasks([low_task, high_task]) == pooled  # seeded: a report is repeatable
