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
