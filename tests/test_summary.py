"""The summary a study prints: references, baselines as mean ± std, the best config and its paired gain, by hand."""

import json
import sys

import polars as pl

from ablate.results.printed import best_config, summarise

REFERENCE = {
    "class_names": ["a", "b", "c", "d"],
    "test_class_counts": [20, 100, 60, 20],
    "chance": 0.25,
    "majority_class": "b",
    "majority_test_acc": 0.5,
    "majority_test_mean_class_acc": 0.25,
}
RECORD = {"name": "hand", "search": {"metric": "best_val_acc", "mode": "max"}, "params": {"x": {"choice": [1, 2]}}}


def row(trial_id, role, seed, x, val, acc, mca, status="complete", baseline=None, step=None, error=None):
    return {
        "trial_id": trial_id,
        "status": status,
        "role": role,
        "baseline": baseline,
        "trainer.seed": seed,
        "data.labels": 100,
        "x": x,
        "config_json": json.dumps({"trainer": {"seed": seed}, "x": x}),
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
    best = best_config(frame().filter(pl.col("role") == "search"), "best_val_acc", "max")
    assert [r["trial_id"] for r in best] == ["s0", "s1", "s2"]  # mean 0.61 beats 0.55; the diverged 0.99 never ranks
    lowest = best_config(frame().filter(pl.col("role") == "search"), "best_val_acc", "min")
    assert [r["trial_id"] for r in lowest] == ["t0", "t1", "t2"]


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
    text = summarise(frame(), {**RECORD, "reference": REFERENCE}, "/r/hand")
    lines = text.splitlines()
    assert lines[0] == "study hand: 8 trials (6 complete, 1 diverged, 1 error); baselines: 3 trials (3 complete)"
    assert lines[1] == "failed: 1 trial: OSError: [Errno 28] No space"
    assert "trial nan diverged at step 7 (epoch 1): not ranked" in lines[2]
    assert "chance 25.0 %" in text and "always 'b' (the majority class): 50.0 % accuracy, 25.0 % mean class" in text
    # baseline: acc 0.40, 0.42, 0.44 -> 42.0 ± 2.0; mca 0.30, 0.31, 0.35 -> mean 32.0, sample std sqrt(0.0007) = 2.6
    assert "baseline supervised: test acc 42.0 ± 2.0 % (3 seeds), mean class acc 32.0 ± 2.6 % (3 seeds)" in text
    assert "best config, 3 seeds (trials s0, s1, s2; mean best_val_acc = 0.6100)" in text
    assert "test acc 47.0 ± 2.6 % (3 seeds)" in text
    # paired differences acc 0.05, 0.04, 0.06: t = 0.05 / (0.01 / sqrt 3) = 8.660, 2 df: p = 1 - t / sqrt(2 + t^2)
    # = 0.0131; mca 0.03, 0.04, 0.03: t = 10.0, p = 1 - 10 / sqrt(102) = 0.00985
    assert "gain over supervised: +5.0 acc points (p = 0.0131), +3.3 mean class acc points (p = 0.00985)" in text
    assert "paired over 3 seeds" in text
    assert "warning: the best test accuracy (47.0 %) is below the majority-class rate (50.0 %, always 'b')" in text
    assert "not a result" in text


def test_one_seed_has_no_paired_test():
    text = summarise(frame(best_seeds=1), {**RECORD, "reference": REFERENCE}, "/r/hand")
    assert "best trial s0 (best_val_acc = 0.6000): test acc 45.0 % (1 seed)" in text
    # 0.45 - mean(0.40, 0.42, 0.44) = +3.0; 0.33 - 0.32 = +1.0
    assert "gain over supervised: +3.0 acc, +1.0 mean class acc points (one seed: no paired test)" in text


def test_no_warning_above_the_majority_rate():
    reference = {**REFERENCE, "majority_test_acc": 0.3}
    assert "warning" not in summarise(frame(), {**RECORD, "reference": reference}, "/r/hand")


def test_without_scipy_the_gain_is_shown_and_the_test_skipped(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.stats", None)
    text = summarise(frame(), {**RECORD, "reference": REFERENCE}, "/r/hand")
    assert "gain over supervised: +5.0 acc points (no paired t-test: it needs scipy" in text


def test_a_study_with_nothing_ranked_says_so():
    only_failures = frame().filter(pl.col("status") != "complete")
    assert "no ranked trial" in summarise(only_failures, RECORD, "/r/hand")
