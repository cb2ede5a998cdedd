"""The summary a study prints: references, baselines and the best config with their intervals, its paired gain with
its interval and Holm-adjusted p, and the seeds its test needs; by hand."""

import json
import sys

import polars as pl

from ablate.results.printed import summarise
from ablate.results.selection import best_config

REFERENCE = {
    "class_names": ["a", "b", "c", "d"],
    "test_class_counts": [20, 100, 60, 20],
    "chance": 0.25,
    "majority_class": "b",
    "majority_test_acc": 0.5,
    "majority_test_mean_class_acc": 0.25,
}
RECORD = {
    "name": "hand",
    "search": {"metric": "best_val_acc", "mode": "max"},
    "params": {"trainer.lr": {"choice": [1, 2]}},
}


def row(trial_id, role, seed, x, val, acc, mca, status="complete", baseline=None, step=None, error=None):
    return {
        "trial_id": trial_id,
        "status": status,
        "role": role,
        "baseline": baseline,
        "trainer.seed": seed,
        "data.labels": 100,
        "trainer.lr": x,
        "config_json": json.dumps({"trainer": {"seed": seed, "lr": x}}),
        "best_val_acc": val,
        "test_acc_at_best_val": acc,
        "test_mean_class_acc_at_best_val": mca,
        "diverged_step": step,
        "diverged_epoch": None if step is None else 1,
        "error": error,
    }


def frame(best_seeds=3):
    rows = [
        row(f"b{s}", "baseline", s, None, 0.3, acc, mca, baseline="supervised")
        for s, acc, mca in [(0, 0.40, 0.30), (1, 0.42, 0.31), (2, 0.44, 0.35)]
    ]
    best = [(0, 0.60, 0.45, 0.33), (1, 0.62, 0.46, 0.35), (2, 0.61, 0.50, 0.38)][:best_seeds]
    rows += [row(f"s{s}", "search", s, 1, val, acc, mca) for s, val, acc, mca in best]
    rows += [row(f"t{s}", "search", s, 2, 0.55, 0.9, 0.9) for s in range(best_seeds)]  # worse on validation
    rows.append(row("nan", "search", 0, 3, 0.99, 0.99, 0.99, status="diverged", step=7))
    rows.append(row("err", "search", 0, 4, None, None, None, status="error", error="OSError: [Errno 28] No space"))
    return pl.DataFrame(rows)


def test_the_best_config_is_ranked_on_mean_validation_without_diverged_trials():
    assert best_config(frame(), RECORD)[:1] == ["s1"]  # mean 0.61 beats 0.55; the diverged 0.99 never ranks
    assert sorted(best_config(frame(), RECORD)) == ["s0", "s1", "s2"]
    lowest = best_config(frame(), {**RECORD, "search": {"metric": "best_val_acc", "mode": "min"}})
    assert sorted(lowest) == ["t0", "t1", "t2"]


def test_the_failed_trials_are_counted_with_the_first_error_and_how_many_share_it():
    from ablate.results.printed import error_lines

    errors = [
        "OSError: [Errno 28] No space left on device",
        "ValueError: bad",
        "OSError: [Errno 28] No space left on device",
    ]
    rows = [row(f"e{i}", "search", 0, 1, None, None, None, status="error", error=e) for i, e in enumerate(errors)]
    rows.append(row("ok", "search", 0, 1, 0.5, 0.5, 0.5))
    rows.append(
        row("b", "baseline", 0, None, None, None, None, status="error", baseline="supervised", error="ValueError: bad")
    )
    assert error_lines(pl.DataFrame(rows)) == [
        "failed: 4 trials; the first error, shared by 2 of them: OSError: [Errno 28] No space left on device"
    ]
    assert error_lines(pl.DataFrame(rows[3:4])) == []


def test_summary_by_hand():
    text = summarise(frame(), {**RECORD, "reference": REFERENCE, "report": {"min_effect": 2.0}}, "/r/hand")
    lines = text.splitlines()
    assert lines[0] == "study hand: 8 trials (6 complete, 1 diverged, 1 error); baselines: 3 trials (3 complete)"
    assert lines[1] == "failed: 1 trial: OSError: [Errno 28] No space"
    assert "trial nan diverged at step 7 (epoch 1): not ranked" in lines[2]
    assert "chance 25.0 %" in text and "always 'b' (the majority class): 50.0 % accuracy, 25.0 % mean class" in text
    # t(0.975, 2) = 4.302653. baseline acc 40, 42, 44: 42 ± 4.302653 · 2 / sqrt 3 = 42 ± 4.968 -> [37.0, 47.0];
    # mca 30, 31, 35: mean 32, s = sqrt 7 -> 32 ± 6.572 -> [25.4, 38.6]
    assert (
        "baseline supervised, 100 labels: test acc 42.0 % [37.0, 47.0], mean class acc 32.0 % [25.4, 38.6] "
        "(3 seeds; 95 % t-intervals), at the best-validation epoch"
    ) in text
    assert "best config: trials s1, s2, s0 (searched mean best_val_acc = 0.6100)" in text
    # best acc 45, 46, 50: mean 47, s = sqrt 7 -> [40.4, 53.6]; mca 33, 35, 38: 35.3, s = 2.517 -> [29.1, 41.6]
    assert "test acc 47.0 % [40.4, 53.6], mean class acc 35.3 % [29.1, 41.6] (3 seeds" in text
    # paired differences acc 5, 4, 6: 5 ± 2.484 -> [+2.5, +7.5], t = 8.660, p = 1 - t / sqrt(2 + t^2) = 0.0131;
    # mca 3, 4, 3: 3.33 ± 1.434 -> [+1.9, +4.8], t = 10.0, p = 1 - 10 / sqrt(102) = 0.00985.
    # Holm, m = 2: 2 x 0.00985 = 0.0197 for mca, max(0.0197, 0.0131) = 0.0197 for acc
    assert (
        "gain over supervised at 100 labels: +5.0 [+2.5, +7.5] (p 0.013; p (Holm, m = 2) 0.020: significant) acc "
        "points, +3.3 [+1.9, +4.8] (p 0.010; p (Holm, m = 2) 0.020: significant) mean class acc points; "
        "paired t-test over 3 seeds"
    ) in text
    # paired sd 1 point: d = 5 for the observed gain, d = 2 for min_effect 2 (tests/test_stats.py checks the
    # solver against the noncentral t)
    assert (
        "power: seeds for 80 % power (paired t-test, alpha 0.05, from the paired sd 1.0 points over 3 seeds): "
        "3 to detect the observed +5.0 points; 5 to detect report.min_effect = 2 points"
    ) in text
    assert "warning: the best test accuracy (47.0 %) is below the majority-class rate (50.0 %, always 'b')" in text
    assert "not a result" in text


def test_one_seed_has_no_paired_test():
    text = summarise(frame(best_seeds=1), {**RECORD, "reference": REFERENCE}, "/r/hand")
    assert "best config: trials s0 (searched mean best_val_acc = 0.6000): test acc 45.0 %" in text
    assert "mean class acc 33.0 % (1 seed), at the best-validation epoch" in text  # no interval for one seed
    # 0.45 - mean(0.40, 0.42, 0.44) = +3.0; 0.33 - 0.32 = +1.0
    assert "gain over supervised at 100 labels: +3.0 acc points, +1.0 mean class acc points; one seed" in text
    assert "power:" not in text


def test_no_warning_above_the_majority_rate():
    reference = {**REFERENCE, "majority_test_acc": 0.3}
    assert "warning" not in summarise(frame(), {**RECORD, "reference": reference}, "/r/hand")


def test_without_the_statistics_libraries_the_summary_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.stats", None)
    monkeypatch.delitem(sys.modules, "ablate.results.stats", raising=False)
    monkeypatch.delitem(sys.modules, "ablate.results.summary", raising=False)
    monkeypatch.delitem(sys.modules, "ablate.results.baselines", raising=False)
    text = summarise(frame(), {**RECORD, "reference": REFERENCE}, "/r/hand")
    assert "no statistics: the summary's intervals and tests need scipy and statsmodels" in text
    assert "results: /r/hand/trials.parquet" in text


def test_a_study_with_nothing_ranked_says_so():
    only_failures = frame().filter(pl.col("status") != "complete")
    assert "no ranked trial" in summarise(only_failures, RECORD, "/r/hand")


def confirmed(stopped_best=False):
    """frame(best_seeds=1) with the best config re-run on the baselines' seeds: confirmation trials c1, c2 (and c0
    when the search trial s0 was stopped early)."""
    rows = frame(best_seeds=1).to_dicts()
    if stopped_best:
        rows = [r | {"status": "stopped"} if r["trial_id"] == "s0" else r for r in rows]
    seeds = [(0, 0.47, 0.36)] if stopped_best else []
    for s, acc, mca in [*seeds, (1, 0.46, 0.35), (2, 0.50, 0.38)]:
        # a confirmation trial's validation number never ranks it, however high
        rows.append(row(f"c{s}", "confirm", s, 1, 0.99, acc, mca) | {"confirms": "s0"})
    return pl.DataFrame([r | {"confirms": r.get("confirms")} for r in rows])


def test_confirmation_trials_complete_the_best_configs_seeds():
    from ablate.results.selection import confirmed_config

    trials = confirmed()
    assert best_config(trials, RECORD) == ["s0"] and confirmed_config(trials, RECORD) == ["s0", "c1", "c2"]
    text = summarise(trials, {**RECORD, "reference": REFERENCE}, "/r/hand")
    assert "baselines: 3 trials (3 complete); confirmation: 2 trials (2 complete)" in text
    assert "best config: trials s0, c1, c2, of which 2 confirmation (searched mean best_val_acc = 0.6000)" in text
    # the same numbers as the three-seed best config of test_summary_by_hand: 45, 46, 50 against 40, 42, 44
    assert "gain over supervised at 100 labels: +5.0 [+2.5, +7.5] (p 0.013;" in text
    # a search trial stopped early is replaced by the confirmation trial of its seed
    assert confirmed_config(confirmed(stopped_best=True), RECORD) == ["c0", "c1", "c2"]
