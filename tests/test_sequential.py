"""Seeds until decided: the alpha-spending levels by hand and the rule stopping where it should on scripted results."""

import math

import pytest
from scipy import stats as scipy_stats

from ablate.results import sequential

ZERO = [0.0] * 10


def test_pocock_spending_by_hand():
    # alpha · ln(1 + (e - 1) t): at t = 0.3, 0.05 · ln(1.515485) = 0.020787; at t = 1 all of alpha
    assert sequential.pocock_spending(0.3) == pytest.approx(0.0207868, abs=1e-7)
    assert sequential.pocock_spending(1.0) == pytest.approx(0.05)
    # look at 4 of 10 seeds: alpha(0.4) - alpha(0.3) = 0.05 · ln(1.687313 / 1.515485) = 0.005370
    assert sequential.look_level(4, 3, 10) == pytest.approx(0.0053701, abs=1e-7)
    # the levels of all looks add up to alpha (the union bound keeps the error rate)
    assert sum(sequential.look_level(n, 3, 10) for n in range(3, 11)) == pytest.approx(0.05)
    assert sequential.look_level(3, 3, 10, family=2) == pytest.approx(0.0207868 / 2, abs=1e-7)
    with pytest.raises(ValueError, match="min_seeds"):
        sequential.look_level(2, 3, 10)


def test_a_real_gain_stops_at_the_fifth_seed():
    gains = [1.0, 3.0, 2.0, 2.0, 2.0, 2.0, 2.0]
    looks = sequential.run_until_decided(ZERO, gains, min_seeds=3, max_seeds=10)
    # 3 seeds: mean 2, sd 1, t = 3.464 (df 2): p 0.074 > 0.0208; 4 seeds: sd 0.8165, t = 4.899 (df 3): p 0.0163 >
    # 0.00537; 5 seeds: sd 0.7071, t = 6.325 (df 4): p 0.0032 < alpha(0.5) - alpha(0.4) = 0.00485: a gain
    assert [look.n for look in looks] == [3, 4, 5]
    assert [look.decision for look in looks] == ["continue", "continue", "gain"]
    assert looks[-1].p == pytest.approx(2 * scipy_stats.t.sf(2 / (math.sqrt(0.5) / math.sqrt(5)), 4))
    assert looks[-1].level == pytest.approx(0.05 * math.log((1 + (math.e - 1) * 0.5) / (1 + (math.e - 1) * 0.4)))
    assert looks[-1].low > 0  # the interval at the look's level excludes 0
    # read at a fixed 0.05 the fourth seed would already "decide" (p 0.016): the spending keeps it from doing so
    assert looks[1].p < 0.05


def test_no_gain_runs_to_max_or_stops_when_the_interval_is_narrow():
    noise = [1.0, -1.0, 2.0, -2.0, 1.0, -1.0, 0.5, -0.5, 1.0, -1.0]
    looks = sequential.run_until_decided(ZERO, noise, min_seeds=3, max_seeds=10)
    assert [look.n for look in looks] == list(range(3, 11)) and looks[-1].decision == "max"
    # asked to resolve 4 points: at 9 seeds the interval at that look's level is [-1.65, 1.87], 3.5 wide
    narrow = sequential.run_until_decided(ZERO, noise, min_seeds=3, max_seeds=10, min_effect=4.0)
    assert narrow[-1].n == 9 and narrow[-1].decision == "narrow"
    assert narrow[-2].high - narrow[-2].low >= 4.0 > narrow[-1].high - narrow[-1].low
    assert sequential.decide(ZERO[:2], noise[:2], 3, 10).decision == "continue"  # below min_seeds: no test yet
