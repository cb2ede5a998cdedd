"""The analyses of a results folder: hand-checked statistics and tables, the honest-numbers rules (validation
selection, oracle labels, baselines, diverged trials), the notebooks run headless, the report end to end.

Fixtures (tests/fixtures/, see its README): ``ablation/`` and ``search/`` are real small studies written before
validation selection, baselines and divergence existed (they must still report); ``selected_search/`` and
``selected_ablation/`` hold the new columns and are written by ``tests/fixtures/make_fixtures.py``.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from scipy import stats as scipy_stats

from ablate.report import dynamics as dynamics_tables
from ablate.report import ladder, plots, searches, sections
from ablate.report.page import write_report
from ablate.results import baselines, formatting, selection, stats, summary
from ablate.results import layout as study_layout
from ablate.results.reader import ResultsError, load_results

ROOT = Path(__file__).resolve().parents[1]

FIXTURES = Path(__file__).parent / "fixtures"
ABLATION, SEARCH = FIXTURES / "ablation", FIXTURES / "search"
NEW_SEARCH, NEW_ABLATION = FIXTURES / "selected_search", FIXTURES / "selected_ablation"
NOTEBOOKS = ("ablation", "search", "dynamics")
RAF_CLASSES = ["surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"]
ORACLE = selection.ORACLE_LABEL


def run(*args: str, cwd: Path = ROOT, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def cauchy_p(t: float) -> float:
    """Two-sided p of Student's t with 1 degree of freedom (the Cauchy distribution): 1 - (2/pi) atan(|t|)."""
    return 1 - 2 / math.pi * math.atan(abs(t))


# ---- the paired t-test: scipy's, checked by hand ------------------------------------------------------------


def test_paired_t_test_by_hand_and_against_scipy():
    # d = b - a = (6, 10): mean 8, sd 2*sqrt(2), se = 2, t = 4, df 1 (closed form of the p-value)
    test = stats.paired_t_test([50.0, 60.0], [56.0, 70.0])
    assert (test.n, test.mean_diff, test.t) == (2, pytest.approx(8.0), pytest.approx(4.0))
    assert test.p == pytest.approx(cauchy_p(4.0))
    # d = (1, 2, 3, 6): mean 3, sd sqrt(14/3), t = 3 / (sqrt(14/3) / 2) = 2.7775, df 3
    a, b = [0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 6.0]
    test = stats.paired_t_test(a, b)
    t = 3 / (math.sqrt(14 / 3) / 2)
    assert test.t == pytest.approx(t)
    assert test.p == pytest.approx(2 * scipy_stats.t.sf(t, 3))  # the t distribution's tail, not ttest_rel
    assert test.p == pytest.approx(scipy_stats.ttest_rel(b, a).pvalue)
    assert 0.05 < test.p < 0.1  # t(3) 97.5 % = 3.182, 95 % = 2.353
    assert stats.paired_t_test(b, a).t == pytest.approx(-t)  # the sign says which is better


def test_paired_t_test_degenerate():
    assert stats.paired_t_test([], []).t is None
    one = stats.paired_t_test([1.0], [2.0])
    assert (one.n, one.mean_diff, one.t, one.p) == (1, 1.0, None, None)
    same = stats.paired_t_test([1.0, 2.0], [3.0, 4.0])  # every difference 2: no spread
    assert (same.t, same.p) == (math.inf, 0.0)
    equal = stats.paired_t_test([1.0, 2.0], [1.0, 2.0])
    assert (equal.t, equal.p) == (0.0, 1.0)
    with pytest.raises(ValueError, match="equal lengths"):
        stats.paired_t_test([1.0], [1.0, 2.0])


def test_mean_std():
    assert stats.mean_std([50.0, 60.0]) == (pytest.approx(55.0), pytest.approx(math.sqrt(50)))
    assert stats.mean_std([3.0]) == (3.0, None)
    assert stats.mean_std([]) == (None, None)


# ---- hand-made studies ----------------------------------------------------------------------------------------

REFERENCE = {  # 100 test faces, 40 of them happy: always "happiness" scores 40 % accuracy, 100/7 % mean class acc.
    "class_names": RAF_CLASSES,
    "test_class_counts": [10, 5, 5, 40, 15, 5, 20],
    "chance": 1 / 7,
    "majority_class": "happiness",
    "majority_test_acc": 0.40,
    "majority_test_mean_class_acc": 1 / 7,
}


def frame(rows: list[dict]) -> pl.DataFrame:
    """A trials table from a few columns per row; the rest of the contract's columns filled in."""
    defaults = {
        "status": "complete",
        "role": "search",
        "baseline": None,
        "variant": None,
        "repeat": 0,
        "data.labels": 100,
        "trainer.seed": 0,
        "epochs_done": 4,
        "diverged_step": None,
        "diverged_epoch": None,
        "error": None,
    }
    rows = [defaults | {"trial_id": f"t{i}"} | r for i, r in enumerate(rows)]
    return pl.DataFrame(rows, infer_schema_length=None)


def numbers(val: float, at_val: float, mca: float | None = None, best: float | None = None) -> dict:
    """A trial's selection columns: best_val_acc, the test numbers at the best validation epoch, the oracle
    (``best``, default higher than at_val: a test-selected number flatters) and the last epoch's."""
    mca = at_val - 0.1 if mca is None else mca
    best = at_val + 0.05 if best is None else best
    return {
        "best_val_acc": val,
        "best_val_epoch": 3,
        "test_acc_at_best_val": at_val,
        "test_mean_class_acc_at_best_val": mca,
        "best_test_acc": best,
        "best_test_mean_class_acc": mca + 0.05,
        "last_test_acc": at_val - 0.02,
        "last_test_mean_class_acc": mca - 0.02,
    }


def search_study(**search) -> dict:
    return {
        "name": "hand",
        "variants": {},
        "params": {"components.threshold.floor": {"uniform": [0.5, 0.95]}},
        "search": {"metric": "best_val_acc", "mode": "max"} | search,
        "scheduler": {"name": "none"},
        "baselines": ["supervised"],
        "reference": REFERENCE,
    }


def three_seed_search() -> pl.DataFrame:
    """Config A (floor 0.8) over seeds 0-2, config B (floor 0.6) with one seed, the supervised baseline over
    seeds 0-2, and a diverged and an error trial whose validation numbers would otherwise win."""
    floor = "components.threshold.floor"
    rows = [
        {floor: 0.8, "trainer.seed": 0, **numbers(0.60, 0.50, 0.40)},
        {floor: 0.8, "trainer.seed": 1, **numbers(0.62, 0.56, 0.42)},
        {floor: 0.8, "trainer.seed": 2, **numbers(0.64, 0.59, 0.47)},
        {floor: 0.6, "trainer.seed": 0, **numbers(0.55, 0.70, 0.60, best=0.90)},  # the best test number of all
        {"role": "baseline", "baseline": "supervised", "trainer.seed": 0, floor: None, **numbers(0.5, 0.45, 0.35)},
        {"role": "baseline", "baseline": "supervised", "trainer.seed": 1, floor: None, **numbers(0.5, 0.50, 0.40)},
        {"role": "baseline", "baseline": "supervised", "trainer.seed": 2, floor: None, **numbers(0.5, 0.52, 0.41)},
        {floor: 0.7, "status": "diverged", "diverged_step": 57, "diverged_epoch": 2, **numbers(0.99, 0.9)},
        {
            floor: 0.9,
            "status": "error",
            "epochs_done": 0,
            "error": "RuntimeError: boom",
            **dict.fromkeys(numbers(0, 0), None),
        },
    ]
    return frame(rows)


# ---- which numbers, which ranking, which trials ----------------------------------------------------------


def test_shown_numbers_and_the_fallback_of_older_results():
    trials = three_seed_search()
    val = selection.shown_numbers(trials)
    assert (val.acc, val.mca, val.oracle, val.note) == (
        "test_acc_at_best_val",
        "test_mean_class_acc_at_best_val",
        False,
        "",
    )
    last = selection.shown_numbers(trials, "last")
    assert (last.acc, last.mca, last.oracle) == ("last_test_acc", "last_test_mean_class_acc", False)
    oracle = selection.shown_numbers(trials, "oracle")
    assert (oracle.acc, oracle.oracle) == ("best_test_acc", True) and ORACLE in oracle.what
    old = selection.shown_numbers(trials.drop("test_acc_at_best_val", "test_mean_class_acc_at_best_val"))
    assert (old.acc, old.mca, old.oracle) == ("best_test_acc", "best_test_mean_class_acc", True)
    assert "this study predates validation selection" in old.note and ORACLE in old.note
    with pytest.raises(ValueError, match="val, last, oracle"):
        selection.shown_numbers(trials, "best")


def test_ranking_is_on_validation_unless_the_study_selects_on_test():
    trials = three_seed_search()
    rank = selection.ranking(search_study(), trials)
    assert (rank.column, rank.oracle, rank.note) == ("best_val_acc", False, "")
    assert selection.ranking(search_study(metric="val_acc"), trials).column == "last_val_acc"
    chosen = selection.ranking(search_study(metric="best_test_acc", select_on_test=True), trials)
    assert (chosen.column, chosen.oracle) == ("best_test_acc", True)
    # a test metric without the opt-in (an older study): ranked on its validation twin when trials have it ...
    with_val = trials.with_columns(pl.col("best_val_acc").alias("best_val_mean_class_acc"))
    sneaky = selection.ranking(search_study(metric="best_test_mean_class_acc"), with_val)
    assert (sneaky.column, sneaky.oracle) == ("best_val_mean_class_acc", False) and "select_on_test" in sneaky.note
    # ... else on test, labelled oracle
    old = selection.ranking(search_study(metric="best_test_acc"), trials.drop("best_val_acc"))
    assert (old.column, old.oracle) == ("best_test_acc", True) and "predates" in old.note


def test_diverged_and_error_trials_are_never_best_and_are_listed():
    trials, study = three_seed_search(), search_study()
    assert trials.filter(pl.col("status") == "diverged")["best_val_acc"][0] == trials["best_val_acc"].max()
    ranked = selection.ranked_trial_ids(trials, study)
    assert ranked == ["t2", "t1", "t0", "t3"]  # search trials only: no baseline, no diverged, no error
    assert selection.best_trial_id(trials, study) == "t2"
    # even when selecting on test, where the diverged trial's 0.95 would win
    oracle = search_study(metric="best_test_acc", select_on_test=True)
    assert selection.ranked_trial_ids(trials, oracle)[0] == "t3"
    failed = selection.did_not_finish(trials)
    assert failed["trial_id"].to_list() == ["t7", "t8"]
    diverged = failed.row(0, named=True)
    assert (diverged["status"], diverged["diverged_step"], diverged["diverged_epoch"]) == ("diverged", 57, 2)
    assert failed.row(1, named=True)["error"] == "RuntimeError: boom"


def test_best_config_is_the_best_mean_over_seeds():
    trials, study = three_seed_search(), search_study()
    # config A's seeds (0.60, 0.62, 0.64: mean 0.62) beat config B's one seed (0.55)
    configs = selection.ranked_configs(trials, study)
    assert configs["n"].to_list() == [3, 1]
    assert configs["metric"].to_list() == pytest.approx([0.62, 0.55])
    assert selection.best_config(trials, study) == ["t2", "t1", "t0"]  # the best seed first
    # a lucky seed does not make a config best: B's seed at 0.70 against A's mean 0.62 ...
    lucky = trials.with_columns(
        pl.when(pl.col("trial_id") == "t3").then(0.70).otherwise(pl.col("best_val_acc")).alias("best_val_acc")
    )
    assert selection.best_config(lucky, study) == ["t3"]
    # ... but B with two more seeds at 0.40 (mean 0.50) does not
    seed_b = lucky.filter(pl.col("trial_id") == "t3")
    more = pl.concat(
        [lucky]
        + [
            seed_b.with_columns(
                pl.lit(f"t3_{s}").alias("trial_id"), pl.lit(s, dtype=pl.Int64).alias("trainer.seed")
            ).with_columns(pl.lit(0.40).alias("best_val_acc"))
            for s in (1, 2)
        ]
    )
    assert selection.best_config(more, study)[0] == "t2"


def test_selected_epoch():
    trials = frame([{"best_val_epoch": 2}, {"best_val_epoch": None}])
    epochs = pl.DataFrame(
        {
            "trial_id": ["t0"] * 3 + ["t1"] * 3,
            "epoch": [1, 2, 3] * 2,
            "val_acc": [0.3, 0.5, 0.4, 0.5, 0.6, 0.6],
            "test_acc": [0.2, 0.6, 0.6, 0.7, 0.1, 0.1],
        }
    )
    val, last = selection.shown_numbers(frame([numbers(0.5, 0.5)])), selection.shown_numbers(trials, "last")
    oracle = selection.shown_numbers(trials, "oracle")
    assert selection.selected_epoch(trials, epochs, "t0", val) == 2  # the recorded best_val_epoch
    assert selection.selected_epoch(trials, epochs, "t1", val) == 3  # read from val_acc: the latest of a tie
    assert selection.selected_epoch(trials, epochs, "t0", last) == 3
    assert selection.selected_epoch(trials, epochs, "t0", oracle) == 2  # the first of a tie on test
    assert selection.selected_epoch(trials, epochs, "t1", oracle) == 1


# ---- the summary: the best config against chance, the majority class and the baselines ---------------------


def test_summary_gain_and_paired_test_on_three_seeds():
    trials, study = three_seed_search(), search_study()
    s = summary.summary(trials, pl.DataFrame({"trial_id": [], "epoch": []}), study)
    rows = {r["row"]: r for r in s.data.iter_rows(named=True)}
    assert list(rows) == ["best", "chance", "majority", "baseline", "gain"]
    best = rows["best"]
    assert best["n"] == 3 and best["trial_ids"] == "t2, t1, t0"
    assert (best["acc_mean"], best["acc_std"]) == (pytest.approx(55.0), pytest.approx(math.sqrt(21)))  # 50, 56, 59
    assert rows["chance"]["acc_mean"] == pytest.approx(100 / 7)
    assert (rows["majority"]["acc_mean"], rows["majority"]["mca_mean"]) == (pytest.approx(40.0), pytest.approx(100 / 7))
    assert rows["baseline"]["n"] == 3 and rows["baseline"]["acc_mean"] == pytest.approx(49.0)  # 45, 50, 52
    gain = rows["gain"]
    # accuracy, paired by seed: d = (50-45, 56-50, 59-52) = (5, 6, 7): mean 6, sd 1, t = 6 / (1 / sqrt 3), df 2
    t_acc = 6 / (1 / math.sqrt(3))
    assert (gain["n"], gain["acc_mean"], gain["acc_t"]) == (3, pytest.approx(6.0), pytest.approx(t_acc))
    assert gain["acc_p"] == pytest.approx(2 * scipy_stats.t.sf(t_acc, 2))
    # mean class accuracy: d = (40-35, 42-40, 47-41) = (5, 2, 6): mean 13/3, sd sqrt(13/3)
    t_mca = (13 / 3) / (math.sqrt(13 / 3) / math.sqrt(3))
    assert (gain["mca_mean"], gain["mca_t"]) == (pytest.approx(13 / 3), pytest.approx(t_mca))
    assert gain["mca_p"] == pytest.approx(2 * scipy_stats.t.sf(t_mca, 2))
    assert "paired t-test over 3 seeds" in gain["note"]
    # the gain's 95 % t-interval: 6 ± t(0.975, 2) · 1 / sqrt 3 = 6 ± 4.3027 / 1.7321 = [3.52, 8.48]
    assert (gain["acc_low"], gain["acc_high"]) == (pytest.approx(6 - 2.48414, abs=1e-4), pytest.approx(8.48414))
    # Holm over the table's family (acc, mca: m = 2): the smaller p doubled, the larger kept (never below it)
    p_acc, p_mca = 2 * scipy_stats.t.sf(t_acc, 2), 2 * scipy_stats.t.sf(t_mca, 2)
    assert p_acc < p_mca and gain["m"] == 2
    assert (gain["acc_p_holm"], gain["mca_p_holm"]) == (pytest.approx(2 * p_acc), pytest.approx(p_mca))
    # the best config's mean: 50, 56, 59 -> 55 ± t(0.975, 2) · sqrt(21) / sqrt(3) = 55 ± 11.384
    assert (best["acc_low"], best["acc_high"]) == (pytest.approx(55 - 11.3838, abs=1e-3), pytest.approx(66.3838))
    shown = summary.display(s.data)
    assert shown[summary.ACC_HEADER].to_list()[-1] == (
        f"+6.0 [+3.5, +8.5] (p {p_acc:.3f}; p (Holm, m = 2) {2 * p_acc:.3f}: significant)"
    )
    assert shown[summary.MCA_HEADER].to_list()[-1].endswith(f"p (Holm, m = 2) {p_mca:.3f}: no difference found)")
    assert shown[summary.ACC_HEADER].to_list()[0] == "55.0 [43.6, 66.4]"
    assert not s.oracle


def test_summary_one_seed_and_the_majority_flag():
    trials = three_seed_search().filter(~pl.col("trial_id").is_in(["t0", "t1", "t2"]))  # config B alone: one seed
    s = summary.summary(trials, pl.DataFrame({"trial_id": [], "epoch": []}), search_study())
    rows = {r["row"]: r for r in s.data.iter_rows(named=True)}
    assert rows["best"]["trial_ids"] == "t3" and rows["best"]["note"] == ""
    assert rows["gain"]["note"] == summary.ONE_SEED and rows["gain"]["acc_p"] is None
    assert rows["gain"]["acc_mean"] == pytest.approx(70.0 - 49.0)
    # the baseline (49 % accuracy) is above the 40 % majority rate; at 30 % it is no result
    assert rows["baseline"]["note"] == ""
    low = trials.with_columns(
        pl.when(pl.col("role") == "baseline")
        .then(0.30)
        .otherwise(pl.col("test_acc_at_best_val"))
        .alias("test_acc_at_best_val")
    )
    flagged = summary.summary(low, pl.DataFrame({"trial_id": [], "epoch": []}), search_study()).data
    assert flagged.filter(pl.col("row") == "baseline")["note"][0] == baselines.BELOW_MAJORITY
    assert flagged.filter(pl.col("row") == "best")["note"][0] == ""


def test_reference_levels_from_study_or_confusion():
    ref = baselines.reference_levels({"reference": REFERENCE}, pl.DataFrame())
    assert (ref.classes, ref.majority_class, ref.majority_acc_pct, ref.test_images) == (7, "happiness", 40.0, 100)
    # an older study: the row sums of a recorded confusion matrix (rows = true class)
    epochs = pl.DataFrame(
        {"trial_id": ["a"], "epoch": [1], "test_confusion": [[[3, 1, 0], [0, 2, 0], [4, 0, 0]]], "test_acc_x": [0.1]}
    ).with_columns(pl.lit(0.1).alias("test_acc_y"), pl.lit(0.1).alias("test_acc_z"))
    old = baselines.reference_levels({}, epochs)
    assert (old.classes, old.majority_class) == (3, "x")  # support 4, 2, 4: the first of the largest
    assert old.majority_acc_pct == pytest.approx(40.0) and old.chance_pct == pytest.approx(100 / 3)
    assert "predates" in old.source
    assert baselines.reference_levels({}, pl.DataFrame()) is None


# ---- the ladder, baselines first ----------------------------------------------------------------------------


def ladder_study() -> dict:
    # the grid's order is the ladder's; the variants mapping is in another order, and neither is alphabetical
    return {
        "name": "hand",
        "variants": {"adaptive": {}, "fixmatch": {}},
        "params": {"variant": {"grid": ["fixmatch", "adaptive"]}, "trainer.seed": {"grid": [0, 1]}},
        "search": {"metric": "best_val_acc", "mode": "max"},
        "scheduler": {"name": "none"},
        "baselines": ["supervised"],
        "reference": REFERENCE,
    }


def ladder_trials() -> pl.DataFrame:
    rows = [  # (rung, seed, acc at best val, mean class acc at best val), shuffled
        ("fixmatch", 1, 0.70, 0.50),
        ("supervised", 0, 0.50, 0.40),
        ("adaptive", 1, 0.72, 0.58),
        ("supervised", 1, 0.60, 0.44),
        ("adaptive", 0, 0.60, 0.52),
        ("fixmatch", 0, 0.56, 0.46),
    ]
    return frame(
        [
            {
                "trainer.seed": seed,
                **({"role": "baseline", "baseline": "supervised"} if rung == "supervised" else {"variant": rung}),
                **numbers(0.5, acc, mca),
            }
            for rung, seed, acc, mca in rows
        ]
    )


def test_the_aggregate_pools_a_rungs_runs_and_compares_them_with_the_reference():
    """One budget, two seeds a rung: supervised 50, 60; fixmatch 56, 70; adaptive 60, 72 (acc., %). IQM of two
    values: their mean (trim_mean cuts int(0.25 * 2) = 0 at each end). P(fixmatch > supervised): 56 > 50, 56 < 60,
    70 > 50, 70 > 60: 3 of 4; P(adaptive > supervised): 60 > 50, 60 = 60 (a half), 72 > 50, 72 > 60: 3.5 of 4."""
    table = ladder.aggregate_table(ladder_trials(), ladder_study())
    assert table["rung"].to_list() == ["supervised", "fixmatch", "adaptive"]
    sup, fix, ada = table.iter_rows(named=True)
    assert (sup["tasks"], sup["runs"], sup["ref_rung"]) == (1, 2, "supervised")
    assert [r["acc_iqm"] for r in (sup, fix, ada)] == pytest.approx([55.0, 63.0, 66.0])
    assert sup["acc_poi"] is None
    assert (fix["acc_poi"], ada["acc_poi"]) == (0.75, 0.875)
    assert fix["acc_poi_low"] <= 0.75 <= fix["acc_poi_high"]
    shown = ladder.format_aggregate(table)
    assert shown.columns[-2:] == ["P(acc. > supervised)", "P(mean class acc. > supervised)"]
    assert shown.row(2)[-2].startswith("0.88 [")


def test_ladder_baseline_is_the_first_rung_and_the_reference():
    table = ladder.ladder_table(ladder_trials(), ladder_study())
    assert table["rung"].to_list() == ["supervised", "fixmatch", "adaptive"]
    sup, fix, ada = table.iter_rows(named=True)
    assert (sup["budget"], sup["n"], sup["ref_rung"]) == (100, 2, "supervised")
    # supervised: 50, 60 -> 55 ± 7.071; fixmatch: 56, 70 -> 63 ± 9.899; adaptive: 60, 72 -> 66 ± 8.485
    assert (sup["acc_mean"], sup["acc_std"]) == (pytest.approx(55.0), pytest.approx(math.sqrt(50)))
    assert (fix["acc_mean"], fix["acc_std"]) == (pytest.approx(63.0), pytest.approx(math.sqrt(98)))
    assert (ada["acc_mean"], ada["acc_std"]) == (pytest.approx(66.0), pytest.approx(math.sqrt(72)))
    assert [r["mca_mean"] for r in (sup, fix, ada)] == pytest.approx([42.0, 48.0, 55.0])
    assert sup["acc_gain_prev"] is None and sup["acc_p_ref"] is None
    assert (fix["acc_gain_prev"], fix["acc_gain_ref"]) == (pytest.approx(8.0), pytest.approx(8.0))
    assert (ada["acc_gain_prev"], ada["acc_gain_ref"]) == (pytest.approx(3.0), pytest.approx(11.0))
    assert (ada["mca_gain_prev"], ada["mca_gain_ref"]) == (pytest.approx(7.0), pytest.approx(13.0))
    # fixmatch - supervised per seed: 6, 10 -> t = 4 (df 1); adaptive - fixmatch: 4, 2 -> t = 3;
    # adaptive - supervised: 10, 12 -> t = 11; in mean class acc., adaptive - supervised: 12, 14 -> t = 13
    assert (fix["acc_t_prev"], fix["acc_p_prev"], fix["n_pairs_prev"]) == (
        pytest.approx(4.0),
        pytest.approx(cauchy_p(4)),
        2,
    )
    assert (ada["acc_t_prev"], ada["acc_p_prev"]) == (pytest.approx(3.0), pytest.approx(cauchy_p(3)))
    assert (ada["acc_t_ref"], ada["acc_p_ref"]) == (pytest.approx(11.0), pytest.approx(cauchy_p(11)))
    assert (ada["mca_t_ref"], ada["mca_p_ref"]) == (pytest.approx(13.0), pytest.approx(cauchy_p(13)))
    # one family, Holm: 6 distinct comparisons (fixmatch's gain over the previous rung is its gain over supervised);
    # fixmatch - supervised in mean class acc. is 6, 6 (no spread: p 0); adaptive - fixmatch there is 6, 8 (t 7).
    # Sorted p: 0, c13, c11, c7, c4, c3, times 6, 5, 4, 3, 2, 1, each at least the one before
    c = {t: cauchy_p(t) for t in (3, 4, 7, 11, 13)}
    assert ada["m"] == 6 and fix["mca_p_ref"] == 0.0 and ada["mca_p_prev"] == pytest.approx(c[7])
    assert ada["mca_p_holm_ref"] == pytest.approx(5 * c[13])
    assert ada["acc_p_holm_ref"] == pytest.approx(5 * c[13])  # 4 x c11 = 0.231 is below 5 x c13 = 0.244
    assert ada["mca_p_holm_prev"] == pytest.approx(3 * c[7])
    assert fix["acc_p_holm_ref"] == fix["acc_p_holm_prev"] == pytest.approx(2 * c[4])
    assert ada["acc_p_holm_prev"] == pytest.approx(2 * c[4])  # 1 x c3 = 0.205 is below 2 x c4 = 0.312
    # the 95 % t-interval of each mean, n = 2: t(0.975, 1) = 12.7062 times s / sqrt 2 (5, 7 and 6 points)
    assert (sup["acc_low"], sup["acc_high"]) == (pytest.approx(55 - 63.531, abs=1e-3), pytest.approx(118.531, abs=1e-3))
    # and of each paired gain: adaptive - supervised, 10 and 12: 11 ± 12.7062
    assert (ada["acc_low_ref"], ada["acc_high_ref"]) == (pytest.approx(11 - 12.7062, abs=1e-4), pytest.approx(23.7062))
    shown = ladder.format_ladder(table, "Labels", baselines.reference_levels(ladder_study(), pl.DataFrame()))
    assert "Δ acc. vs supervised (pp)" in shown.columns
    assert shown["Accuracy (%)"].to_list() == ["55.0 [-8.5, 118.5]", "63.0 [-25.9, 151.9]", "66.0 [-10.2, 142.2]"]
    assert shown["Δ acc. vs supervised (pp)"].to_list() == ["", "+8.0 [-17.4, +33.4]", "+11.0 [-1.7, +23.7]"]
    holm_acc = shown["p (Holm, m = 6) (acc.) vs supervised"].to_list()
    assert holm_acc == ["", f"{2 * c[4]:.3f}: no difference found", f"{5 * c[13]:.3f}: no difference found"]
    assert shown["Note"].to_list() == ["", "", ""]  # all above the 40 % majority rate


def test_ladder_baseline_named_like_a_variant():
    study = ladder_study() | {"variants": {"supervised": {}, "fixmatch": {}, "adaptive": {}}}
    study["params"]["variant"]["grid"] = ["supervised", "fixmatch", "adaptive"]
    extra = frame([{"variant": "supervised", "trainer.seed": s, **numbers(0.5, 0.4, 0.3)} for s in (0, 1)])
    table = ladder.ladder_table(pl.concat([ladder_trials(), extra], how="diagonal_relaxed"), study)
    assert table["rung"].to_list() == ["supervised (baseline)", "supervised", "fixmatch", "adaptive"]
    assert table["ref_rung"].unique().to_list() == ["supervised (baseline)"]
    assert table.row(1, named=True)["acc_gain_ref"] == pytest.approx(40.0 - 55.0)


def test_ladder_gains_are_against_supervised_among_several_baselines():
    study = ladder_study() | {"baselines": ["teacher_only", "supervised"]}
    extra = frame(
        [{"role": "baseline", "baseline": "teacher_only", "trainer.seed": s, **numbers(0.5, 0.3, 0.2)} for s in (0, 1)]
    )
    table = ladder.ladder_table(pl.concat([ladder_trials(), extra], how="diagonal_relaxed"), study)
    assert table["rung"].to_list() == ["teacher_only", "supervised", "fixmatch", "adaptive"]
    assert table["ref_rung"].unique().to_list() == ["supervised"]
    assert table["acc_gain_ref"].to_list() == pytest.approx([30.0 - 55.0, None, 8.0, 11.0], nan_ok=True)


def test_ladder_excludes_failed_trials_and_reads_which():
    trials = pl.concat(
        [
            ladder_trials(),
            frame(
                [
                    {
                        "trial_id": "wild",
                        "variant": "adaptive",
                        "trainer.seed": 2,
                        "status": "diverged",
                        **numbers(0.9, 0.99),
                    }
                ]
            ),
        ],
        how="diagonal_relaxed",
    )
    table = ladder.ladder_table(trials, ladder_study())
    assert table.filter(pl.col("rung") == "adaptive")["n"][0] == 2
    assert table.filter(pl.col("rung") == "adaptive")["acc_mean"][0] == pytest.approx(66.0)
    last = ladder.ladder_table(trials, ladder_study(), which="last")
    assert last["acc_mean"].to_list() == pytest.approx([53.0, 61.0, 64.0])
    oracle = ladder.ladder_table(trials, ladder_study(), which="oracle")
    assert oracle["acc_mean"].to_list() == pytest.approx([60.0, 68.0, 71.0])
    # a stopped trial does not count by default; its partner is left unpaired
    stopped = trials.with_columns(
        pl.when(pl.col("trial_id") == "t0").then(pl.lit("stopped")).otherwise(pl.col("status")).alias("status")
    )
    fix = ladder.ladder_table(stopped, ladder_study()).row(1, named=True)
    assert (fix["n"], fix["acc_mean"], fix["acc_std"]) == (1, pytest.approx(56.0), None)
    assert (fix["n_pairs_prev"], fix["acc_t_prev"], fix["acc_p_prev"]) == (1, None, None)
    both = ladder.ladder_table(stopped, ladder_study(), statuses=("complete", "stopped"))
    assert both["n"].to_list() == [2, 2, 2]


def test_ladder_without_baselines_variants_order_and_budgets():
    study = ladder_study() | {"baselines": []}
    del study["params"]["variant"]  # no grid: the variants mapping's order
    trials = ladder_trials().filter(pl.col("role") == "search")
    trials = pl.concat(
        [trials, trials.with_columns(pl.lit(400, dtype=pl.Int64).alias("data.labels"), pl.col("trial_id") + "b")]
    )
    table = ladder.ladder_table(trials, study)
    assert table["budget"].to_list() == [100] * 2 + [400] * 2
    assert table["rung"].to_list() == ["adaptive", "fixmatch"] * 2
    assert table["ref_rung"].to_list() == ["adaptive"] * 4  # no baseline: each budget's first rung
    shown = ladder.format_ladder(table, study_layout.budget_label("data.labels"))
    assert shown.columns[:4] == ["Labels", "Rung", "Seeds", "Accuracy (%)"]
    # fixmatch - adaptive per seed: -4, -2 -> -3 ± 12.7062 (n = 2)
    assert shown["Δ acc. vs prev. (pp)"].to_list()[:2] == ["", "-3.0 [-15.7, +9.7]"]
    assert "Note" not in shown.columns  # no reference given: nothing to flag against
    no_budget = ladder.ladder_table(trials.filter(pl.col("data.labels") == 100).drop("data.labels"), study)
    assert no_budget["budget"].to_list() == [None] * 2


def test_budget_key_and_labels():
    study = {"params": {"data.labels_per_class": {"grid": [10, 40]}}}
    trials = pl.DataFrame(
        {"data.labels": [None, None], "data.labels_per_class": [10, 40], "data.label_fraction": [None, None]}
    )
    assert study_layout.budget_key(trials, study) == "data.labels_per_class"
    fraction = trials.drop("data.labels_per_class").with_columns(pl.lit(0.1).alias("data.label_fraction"))
    assert study_layout.budget_key(fraction, {}) == "data.label_fraction"
    assert study_layout.budget_label("data.labels_per_class") == "Labels per class"
    assert (study_layout.format_budget(100.0), study_layout.format_budget(None)) == ("100", "all")


# ---- figures draw the references --------------------------------------------------------------------------


def legend_labels(fig) -> list[str]:
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    return labels + [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]


def test_figures_draw_chance_majority_and_supervised():
    study, trials = ladder_study(), ladder_trials()
    ref = baselines.reference_levels(study, pl.DataFrame())
    table = ladder.ladder_table(trials, study)
    fig = plots.ladder_figure(table, study_layout.rung_order(study, trials), reference=ref, baseline="supervised")
    labels = legend_labels(fig)
    assert "chance (1/7): 14.3%" in labels
    assert "majority class (always Happiness): 40.0%" in labels
    assert "supervised baseline: mean at each budget" in labels
    acc_panel = fig.axes[0]
    heights = sorted({round(y, 6) for line in acc_panel.lines + acc_panel.collections for y in _ys(line)})
    assert {round(100 / 7, 6), 40.0, 55.0} <= set(heights)  # chance, majority, supervised's mean accuracy
    per_class = pl.DataFrame({"class": ["a", "b"], "accuracy_pct": [50.0, 20.0], "support": [3, 4]})
    base = pl.DataFrame({"class": ["a", "b"], "accuracy_pct": [30.0, 10.0]})
    fig = plots.per_class_figure(
        per_class, "t", 1, lines=plots.floor_lines(ref, "mca"), baseline=base, baseline_label="sup"
    )
    assert legend_labels(fig) == ["chance (1/7): 14.3%", "sup"]
    plots.plt.close("all")


def _ys(artist) -> list[float]:
    if hasattr(artist, "get_ydata"):
        return [float(y) for y in artist.get_ydata()]
    return [float(y) for seg in artist.get_segments() for _, y in seg]


# ---- the fixtures: the new columns ------------------------------------------------------------------------


def test_make_fixtures_reproduces_the_committed_files(tmp_path):
    done = run("tests/fixtures/make_fixtures.py", str(tmp_path))
    assert done.returncode == 0, done.stderr
    for folder in (NEW_SEARCH, NEW_ABLATION):
        for name in ("trials.parquet", "epochs.parquet"):
            written, committed = pl.read_parquet(tmp_path / folder.name / name), pl.read_parquet(folder / name)
            assert written.equals(committed), f"{folder.name}/{name}: rerun tests/fixtures/make_fixtures.py"
        assert json.loads((tmp_path / folder.name / "study.json").read_text()) == json.loads(
            (folder / "study.json").read_text()
        )


def test_new_search_fixture():
    res = load_results(NEW_SEARCH)
    trials, study = res.trials, res.study
    diverged = trials.filter(pl.col("status") == "diverged").row(0, named=True)
    assert diverged["best_val_acc"] == trials["best_val_acc"].max()  # it would win, were it counted
    assert selection.best_trial_id(trials, study) != diverged["trial_id"]
    assert selection.best_config(trials, study) == ["s0_1", "s0_0", "s0_2"]
    failed = selection.did_not_finish(trials)
    assert failed["status"].to_list() == ["diverged", "error"] and failed["diverged_step"][0] == 73
    s = summary.summary(trials, res.epochs, study)
    gain = s.data.filter(pl.col("row") == "gain").row(0, named=True)
    best = trials.filter(pl.col("trial_id").is_in(["s0_0", "s0_1", "s0_2"])).sort("trainer.seed")
    base = trials.filter(pl.col("role") == "baseline").sort("trainer.seed")
    expected = scipy_stats.ttest_rel(best["test_acc_at_best_val"] * 100, base["test_acc_at_best_val"] * 100)
    assert (gain["acc_t"], gain["acc_p"]) == (pytest.approx(expected.statistic), pytest.approx(expected.pvalue))
    points = searches.param_points(trials, study, "components.negative.rho", selection.shown_numbers(trials))
    assert points.height == 12  # search trials only
    assert searches.asha_stops(trials).select("diverged", "error").sum().row(0) == (1, 1)


def test_new_ablation_fixture():
    res = load_results(NEW_ABLATION)
    table = ladder.ladder_table(res.trials, res.study)
    assert table["rung"].unique(maintain_order=True).to_list() == ["supervised", "fixmatch", "adacm", "lion"]
    lion = table.filter((pl.col("rung") == "lion") & (pl.col("budget") == 100)).row(0, named=True)
    assert lion["n"] == 2 and lion["n_pairs_ref"] == 2  # seed 2 diverged
    ids = res.trials.filter(
        (pl.col("variant") == "lion") & (pl.col("data.labels") == 100) & (pl.col("status") == "complete")
    )
    assert lion["acc_mean"] == pytest.approx(100 * ids["test_acc_at_best_val"].mean())


# ---- oracle labels: present exactly when something was selected on test ----------------------------------------


def copy_results(src: Path, dst: Path, **search) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("trials.parquet", "epochs.parquet"):
        shutil.copy(src / name, dst / name)
    spec = json.loads((src / "study.json").read_text())
    spec["search"] |= search
    (dst / "study.json").write_text(json.dumps(spec))
    return dst


def test_oracle_labels_only_when_selected_on_test(tmp_path):
    honest = write_report(load_results(NEW_SEARCH), tmp_path / "honest").read_text()
    assert ORACLE not in honest
    assert "## Summary" in honest and honest.index("## Summary") < honest.index("## Search")
    folder = copy_results(NEW_SEARCH, tmp_path / "oracle", metric="best_test_acc", select_on_test=True)
    res = load_results(folder)
    text = write_report(res, tmp_path / "oracle" / "report").read_text()
    for title in (
        "The best config against chance, the majority class and the baselines",
        "The 10 best trials",
        "Parameter importance",
        "Per-class test accuracy of the best trial",
        "Test confusion matrix of the best trial",
    ):
        assert f"### {title}: {ORACLE}" in text, title
    assert f"### Searched parameters against the numbers: {ORACLE}" not in text  # their numbers: at best validation
    dyn = sections.dynamics(res)
    assert dyn.figure("per_class").title.endswith(ORACLE)
    assert any(t.get_text() == ORACLE for t in dyn.figure("per_class").figure.texts)
    plots.plt.close("all")
    asked = write_report(load_results(NEW_SEARCH), tmp_path / "asked", which="oracle").read_text()
    assert f"Searched parameters against the numbers: {ORACLE}" in asked


# ---- the old fixtures: written before these columns, they still report ------------------------------------


@pytest.fixture(scope="module")
def old_ablation():
    return load_results(ABLATION)


@pytest.fixture(scope="module")
def old_search():
    return load_results(SEARCH)


def test_old_results_load_with_roles(old_ablation):
    assert old_ablation.trials["role"].unique().to_list() == ["search"]
    assert study_layout.baseline_names(old_ablation.trials, old_ablation.study) == []


def test_old_fixture_ladder(old_ablation):
    trials, study = old_ablation.trials, old_ablation.study
    table = ladder.ladder_table(trials, study)
    assert table["rung"].unique(maintain_order=True).to_list() == study["params"]["variant"]["grid"]
    assert table["budget"].unique().sort().to_list() == [100, 400]
    for row in table.iter_rows(named=True):  # no at-best-val columns: the best test numbers (oracle)
        accs = trials.filter((pl.col("variant") == row["rung"]) & (pl.col("data.labels") == row["budget"]))
        assert row["n"] == accs.height
        assert row["acc_mean"] == pytest.approx(100 * accs["best_test_acc"].mean())


def test_old_fixture_search_tables(old_search):
    trials, study = old_search.trials, old_search.study
    shown = selection.shown_numbers(trials)
    best = searches.best_trials(trials, study, shown, k=3)
    assert best["rank"].to_list() == [1, 2, 3]
    values = best["best_test_acc_pct"].to_list()
    assert values == sorted(values, reverse=True)
    assert values[0] == pytest.approx(100 * trials["best_test_acc"].max())
    assert {"components.threshold.floor", "components.negative.rho", "last_test_acc_pct"} <= set(best.columns)
    stops = searches.asha_stops(trials)
    assert stops["total"].sum() == trials.height
    assert stops.filter(pl.col("epochs_done") == study["scheduler"]["max_t"])["complete"].sum() >= 1
    assert stops["stopped"].sum() == (trials["status"] == "stopped").sum()
    summary_table = searches.param_summary(trials, study, shown)
    assert summary_table["param"].to_list() == list(study["params"])
    assert summary_table["n"].to_list() == [trials.height] * 2


def test_old_fixture_importance(old_search):
    table, how = searches.param_importance(old_search.trials, old_search.study, method="ped-anova")
    assert set(table["param"].to_list()) == set(old_search.study["params"])
    assert table["importance"].sum() == pytest.approx(1.0)
    assert "PED-ANOVA" in how
    empty, why = searches.param_importance(old_search.trials.head(2), old_search.study)
    assert empty.height == 0 and "too few" in why


def test_old_fixture_dynamics(old_ablation):
    epochs, trials, study = old_ablation.epochs, old_ablation.trials, old_ablation.study
    assert study_layout.class_names(epochs) == RAF_CLASSES
    best = selection.best_trial_id(trials, study)
    shown = selection.shown_numbers(trials)
    epoch = selection.selected_epoch(trials, epochs, best, shown)  # oracle: where its test accuracy peaked
    row = epochs.filter((pl.col("trial_id") == best) & (pl.col("epoch") == epoch)).row(0, named=True)
    assert row["test_acc"] == pytest.approx(row["best_test_acc"])
    per_class = dynamics_tables.per_class_accuracy(epochs, best, epoch)
    counts = dynamics_tables.confusion(epochs, best, epoch)
    assert per_class["class"].to_list() == RAF_CLASSES
    matrix = [list(r[1:]) for r in counts.iter_rows()]
    for i, (acc, support) in enumerate(zip(per_class["accuracy_pct"], per_class["support"])):
        assert support == sum(matrix[i])
        assert acc == pytest.approx(100 * matrix[i][i] / support)
    percent = dynamics_tables.confusion(epochs, best, epoch, normalize=True)
    assert [sum(r[1:]) for r in percent.iter_rows()] == pytest.approx([100.0] * 7)
    trial, moving = dynamics_tables.threshold_trial(trials, epochs, study)
    assert moving
    mode = trials.filter(pl.col("trial_id") == trial)["components.threshold.mode"][0]
    assert mode == "adaptive"  # fixmatch's fixed thresholds never move
    thr = dynamics_tables.thresholds(epochs, trial)
    assert thr.height == 7 * epochs.filter(pl.col("trial_id") == trial).height
    ref = baselines.reference_levels(study, epochs)
    support = [sum(r) for r in epochs["test_confusion"][0]]
    assert ref.majority_class == "happiness" and ref.majority_acc_pct == pytest.approx(
        100 * max(support) / sum(support)
    )


def test_old_fixture_curves_are_means_over_seeds(old_ablation):
    epochs, trials, study = old_ablation.epochs, old_ablation.trials, old_ablation.study
    table = dynamics_tables.curves(epochs, trials, study, ["unlabeled_mask_rate", "test_acc"])
    assert table["group"][0] == "supervised · 100 labels"  # ladder order, then budget
    ids = trials.filter((pl.col("variant") == "lion") & (pl.col("data.labels") == 400))["trial_id"]
    raw = epochs.filter(pl.col("trial_id").is_in(ids.to_list()) & (pl.col("epoch") == 2))["test_acc"]
    got = table.filter((pl.col("group") == "lion · 400 labels") & (pl.col("epoch") == 2))
    assert got["n"][0] == raw.len()
    assert got["test_acc_pct"][0] == pytest.approx(100 * raw.mean())


def test_applicable_sections(old_ablation, old_search):
    assert sections.applicable(old_ablation) == ["summary", "ablation", "dynamics"]  # rungs, budgets, seeds: untuned
    assert sections.applicable(old_search) == ["summary", "search", "dynamics"]


def test_markdown_table_by_polars():
    table = pl.DataFrame({"name": ["a|b", None], "acc_pct": [12.345, None], "x": [0.000123456, 2.0]})
    assert formatting.to_markdown(table).splitlines() == [
        "| name | acc_pct | x         |",
        "|------|---------|-----------|",
        "| a\\|b | 12.3    | 0.0001235 |",
        "|      |         | 2.0       |",
    ]
    assert formatting.to_markdown(table.clear()).endswith("_(no rows)_")


# ---- loading errors -----------------------------------------------------------------------------------------


def test_load_errors(tmp_path):
    with pytest.raises(ResultsError, match="no such results folder"):
        load_results(tmp_path / "nope")
    (tmp_path / "trials.parquet").write_bytes((ABLATION / "trials.parquet").read_bytes())
    with pytest.raises(ResultsError, match=r"missing epochs\.parquet, study\.json"):
        load_results(tmp_path)
    (tmp_path / "epochs.parquet").write_text("not parquet")
    (tmp_path / "study.json").write_text("{}")
    with pytest.raises(ResultsError, match="cannot read the Parquet files"):
        load_results(tmp_path)


# ---- the notebooks and the report, headless ----------------------------------------------------------------

EXPECTED = {
    "summary": ["summary.md", "summary.csv", "did_not_finish.md"],
    "ablation": ["ladder.png", "ladder.md", "ladder.csv"],
    "search": [
        "best_trials.md",
        "best_trials.csv",
        "params.png",
        "importance.png",
        "importance.csv",
        "stops.png",
        "stops.md",
    ],
    "dynamics": [
        "accuracy.png",
        "thresholds.png",
        "unlabeled.png",
        "negative.png",
        "per_class.png",
        "confusion.png",
        "confusion.csv",
        "per_class.md",
    ],
}


@pytest.mark.parametrize("name, folder", [("ablation", NEW_ABLATION), ("search", NEW_SEARCH), ("dynamics", ABLATION)])
def test_notebook_exports(name, folder, tmp_path):
    out = tmp_path / name
    done = run(f"analysis/{name}.py", "--", str(folder), "--out", str(out))
    assert done.returncode == 0, done.stderr
    for file in EXPECTED[name]:
        assert (out / file).is_file() and (out / file).stat().st_size > 0, file
    if name == "ablation":
        md = (out / "ladder.md").read_text()
        assert md.index("| supervised ") < md.index("| fixmatch ") < md.index("| lion ")


def test_notebook_without_folder():
    done = run("analysis/ablation.py")
    assert done.returncode == 2
    assert "no results folder given" in done.stderr and "Traceback" not in done.stderr


def test_old_results_report_end_to_end(tmp_path):
    out = tmp_path / "report"
    done = run("-m", "ablate.report", str(ABLATION), "--out", str(out), cwd=tmp_path)  # not from the repository root
    assert done.returncode == 0, done.stderr
    assert "index.md" in done.stdout
    index = (out / "index.md").read_text()
    headings = [line for line in index.splitlines() if line.startswith("## ")]
    assert [h.split(" (")[0] for h in headings] == ["## Summary", "## Ablation ladder", "## Training dynamics"]
    assert "this study predates validation selection" in index and f"### Ablation ladder: {ORACLE}" in index
    for link in [line.split("](")[1].split(")")[0] for line in index.splitlines() if "](" in line]:
        assert (out / link).is_file(), link
    assert "src='ablation/ladder.png'" in (out / "index.html").read_text()
    for section in ("summary", "ablation", "dynamics"):
        for file in EXPECTED[section]:
            assert (out / section / file).is_file(), file


def test_old_search_report_default_out(tmp_path):
    folder = tmp_path / "search"
    folder.mkdir()
    for name in ("trials.parquet", "epochs.parquet", "study.json"):
        (folder / name).write_bytes((SEARCH / name).read_bytes())
    done = run("-m", "ablate.report", str(folder), "--which", "last")
    assert done.returncode == 0, done.stderr
    assert (folder / "report" / "index.md").is_file()
    for file in EXPECTED["search"]:
        assert (folder / "report" / "search" / file).is_file()
    assert not (folder / "report" / "ablation").exists()
    assert "test at the last epoch" in (folder / "report" / "index.md").read_text()


def test_report_when_every_trial_failed(tmp_path):
    trials = pl.read_parquet(SEARCH / "trials.parquet").with_columns(
        pl.lit("error").alias("status"),
        pl.lit("ValueError: boom").alias("error"),
        pl.lit(0, dtype=pl.Int64).alias("epochs_done"),
        *[
            pl.lit(None, dtype=pl.Float64).alias(c)
            for c in ("best_test_acc", "last_test_acc", "best_test_mean_class_acc", "last_test_mean_class_acc")
        ],
    )
    trials.write_parquet(tmp_path / "trials.parquet")
    pl.DataFrame(schema={"trial_id": pl.String, "epoch": pl.Int64}).write_parquet(tmp_path / "epochs.parquet")
    (tmp_path / "study.json").write_bytes((SEARCH / "study.json").read_bytes())
    text = write_report(load_results(tmp_path), tmp_path / "report").read_text()
    assert "6 trials: 0 complete, 0 stopped, 0 diverged, 6 error" in text and "ValueError: boom" in text
    assert "no best config" in text
    assert (tmp_path / "report" / "dynamics" / "confusion.png").is_file()


def test_report_errors(tmp_path):
    done = run("-m", "ablate.report", str(tmp_path / "missing"))
    assert done.returncode == 2
    assert str(tmp_path / "missing") in done.stderr and "trials.parquet" in done.stderr
    assert "Traceback" not in done.stderr
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "study.json").write_text("{}")
    done = run("-m", "ablate.report", str(tmp_path / "half"))
    assert done.returncode == 2
    assert "missing trials.parquet, epochs.parquet" in done.stderr and "Traceback" not in done.stderr


def test_report_which_choices(capsys):
    from ablate.report.command import parse_args

    assert parse_args([str(ABLATION)]).which == "val"
    assert parse_args([str(ABLATION), "--which", "oracle"]).which == "oracle"
    with pytest.raises(SystemExit):
        parse_args([str(ABLATION), "--which", "best"])  # the old choice: the best epoch on test
    assert "invalid choice: 'best'" in capsys.readouterr().err


def test_marimo_check():
    if run("-m", "marimo", "check", "--help").returncode != 0:
        pytest.skip("this marimo has no `marimo check` subcommand")
    # --ignore-scripts: analysis/ also holds the plain modules the notebooks import
    done = run("-m", "marimo", "check", "--strict", "--ignore-scripts", *[f"analysis/{n}.py" for n in NOTEBOOKS])
    assert done.returncode == 0, done.stdout + done.stderr
