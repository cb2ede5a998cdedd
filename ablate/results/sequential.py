"""Seeds until decided: a sequential rule for a paired gain that keeps the error rate (torch-free, scipy).

After each new paired seed (from ``min_seeds`` to ``max_seeds``) the gain's paired t-test is read at a level that
the alpha-spending function allots to that look: Lan-DeMets' Pocock-type spending, alpha(t) = alpha · ln(1 + (e - 1)
t), at information fraction t = n / max_seeds. Look k is tested at the alpha spent since the look before,
alpha(t_k) - alpha(t_{k-1}) (the first look at everything spent up to it), so the levels of all looks add up to
alpha: by the union bound the chance of declaring a gain that is not there stays below alpha however the looks
are correlated (conservative; it needs no joint distribution of the t statistics, which at 3-10 seeds with an
estimated spread is not the normal one the classic boundaries assume). Pocock-type spending, not O'Brien-Fleming:
with 3 to 10 seeds the early looks must be able to decide; O'Brien-Fleming spends 0.0003 at 3 of 10 seeds, which
no paired t-test over 3 seeds can reach. With ``family`` comparisons decided together, each look's level is split
between them (Bonferroni).

A look decides:

- ``gain``: the paired t-interval at that look's level excludes 0 (its p is below the level);
- ``narrow``: that interval is narrower than ``min_effect`` points, so more seeds would not resolve an effect the
  user cares about;
- ``max``: ``max_seeds`` are in, undecided;
- ``continue``: none of these; run another seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ablate.results.stats import ALPHA, paired_t_test

DECISIONS = ("gain", "narrow", "max", "continue")


def pocock_spending(t: float, alpha: float = ALPHA) -> float:
    """Lan-DeMets' Pocock-type alpha-spending function: the error rate spent by information fraction ``t``."""
    if not 0 <= t <= 1:
        raise ValueError(f"information fraction {t}: expected 0 <= t <= 1")
    return alpha * math.log(1 + (math.e - 1) * t)


def look_level(n: int, min_seeds: int, max_seeds: int, alpha: float = ALPHA, family: int = 1) -> float:
    """The two-sided level the paired test is read at with ``n`` seeds in (a look from min_seeds to max_seeds)."""
    if not 2 <= min_seeds <= n <= max_seeds:
        raise ValueError(f"a look at {n} seeds: expected 2 <= min_seeds ({min_seeds}) <= n <= max_seeds ({max_seeds})")
    before = 0.0 if n == min_seeds else pocock_spending((n - 1) / max_seeds, alpha)
    return (pocock_spending(n / max_seeds, alpha) - before) / family


@dataclass(frozen=True)
class Look:
    """One look: the seeds in, the level it is read at, the test's p, the interval at that level, the decision."""

    n: int
    level: float
    p: float | None
    low: float | None
    high: float | None
    decision: str


def decide(
    a: Sequence[float],
    b: Sequence[float],
    min_seeds: int,
    max_seeds: int,
    min_effect: float | None = None,
    alpha: float = ALPHA,
    family: int = 1,
) -> Look:
    """The decision after the paired seeds so far (``b`` against ``a``, pair i = seed i): see the module docstring.
    Fewer than ``min_seeds`` pairs: ``continue``, no test yet."""
    n = len(a)
    if n < min_seeds:
        return Look(n, 0.0, None, None, None, "continue")
    level = look_level(n, min_seeds, max_seeds, alpha, family)
    test = paired_t_test(a, b, confidence=1 - level)
    if test.p is not None and test.p < level:
        decision = "gain"
    elif (
        min_effect is not None and test.low is not None and test.high is not None and test.high - test.low < min_effect
    ):
        decision = "narrow"
    elif n >= max_seeds:
        decision = "max"
    else:
        decision = "continue"
    return Look(n, level, test.p, test.low, test.high, decision)


def run_until_decided(
    a: Sequence[float],
    b: Sequence[float],
    min_seeds: int,
    max_seeds: int,
    min_effect: float | None = None,
    alpha: float = ALPHA,
) -> list[Look]:
    """The looks a sequential study would take over the scripted results ``a``, ``b`` (one pair per seed, in
    order), up to and including the first that decides."""
    looks = []
    for n in range(min_seeds, min(max_seeds, len(a)) + 1):
        looks.append(decide(a[:n], b[:n], min_seeds, max_seeds, min_effect, alpha))
        if looks[-1].decision != "continue":
            break
    return looks
