"""Selection stability: the validation faces' packed right-or-wrong, the resampled choice of config, the gap a
split of n faces resolves; by hand."""

import pytest

pytest.importorskip("statsmodels")

import polars as pl

from ablate.config.metrics import pack_correct, unpack_correct
from ablate.results.stability import resolvable_gap, selection_stability, stability_text

RECORD = {"search": {"metric": "best_val_acc", "mode": "max"}, "params": {"trainer.lr": {"choice": [1, 2]}}}


def test_packed_faces_round_trip_and_never_read_as_a_number():
    assert pack_correct([True, False, True, True, False]) == "hex:5:b0"  # 1011 0(000)
    assert unpack_correct("hex:5:b0") == [True, False, True, True, False]
    assert pack_correct([]) == "hex:0:" and unpack_correct("hex:0:") == []
    many = [i % 3 == 0 for i in range(141)]
    assert unpack_correct(pack_correct(many)) == many
    with pytest.raises(ValueError):
        float(pack_correct([True] * 8))  # "ff" alone would not, "1e10" would: the prefix keeps MLflow away
    for bad in ("b0", "hex:6:b", "hex:5:zz", "hex:x:b0"):
        with pytest.raises(ValueError, match="not a packed hex:N:DIGITS value"):
            unpack_correct(bad)


def test_the_gap_a_split_resolves():
    # Wald: 1.96 * sqrt(2 * 0.5 * 0.5 / 100) = 0.13859 -> 13.9 points; 4x the faces halve it
    assert resolvable_gap(0.5, 100) == pytest.approx(13.859, abs=1e-3)
    assert resolvable_gap(0.5, 400) == pytest.approx(13.859 / 2, abs=1e-3)
    assert resolvable_gap(0.8, 140) == pytest.approx(100 * 1.959964 * (2 * 0.8 * 0.2 / 140) ** 0.5, abs=1e-3)


def tables(a_right: list[int], b_right: list[int], n: int = 100, seeds: int = 1):
    """Two configs (trainer.lr 1 and 2), ``seeds`` trials each, one epoch, right on the given faces."""
    trials, epochs = [], []
    for lr, right in ((1, a_right), (2, b_right)):
        for seed in range(seeds):
            tid = f"lr{lr}s{seed}"
            trials.append({"trial_id": tid, "status": "complete", "role": "search", "trainer.seed": seed,
                           "trainer.lr": lr, "best_val_acc": len(right) / n})  # fmt: skip
            epochs.append({"trial_id": tid, "epoch": 1, "val_correct": pack_correct([i in right for i in range(n)])})
    return pl.DataFrame(trials), pl.DataFrame(epochs)


def test_a_clear_choice_stays_and_a_coin_flip_does_not():
    trials, epochs = tables(list(range(90)), list(range(40)))  # 90 % against 40 %
    clear = selection_stability(trials, epochs, RECORD, resamples=500)
    assert clear.kept == 1.0 and clear.configs == 2 and clear.faces == 100
    assert clear.gap == pytest.approx(50.0) and clear.resolvable == pytest.approx(resolvable_gap(0.9, 100))
    # 51 % against 50 %, on different faces: a resample picks either, about as often
    trials, epochs = tables(list(range(51)), list(range(50, 100)), seeds=2)
    flip = selection_stability(trials, epochs, RECORD, resamples=2000)
    assert 0.35 < flip.kept < 0.8 and flip.runner_up_share == pytest.approx(1 - flip.kept)
    assert flip.runner_up == "trainer.lr 2" and flip.gap == pytest.approx(1.0)
    assert "stays selected in" in stability_text(flip)


def test_the_best_epoch_is_re_read_in_each_resample():
    """best_val_acc is each trial's best epoch: config 2 is right on faces 48-99; config 1's first epoch on faces
    0-54 (a near coin flip against it), its second on 45-99 (never below it): with both epochs config 1 is
    always chosen, with the first alone not."""
    n = 100
    trials = pl.DataFrame(
        [{"trial_id": t, "status": "complete", "role": "search", "trainer.seed": 0, "trainer.lr": lr,
          "best_val_acc": v} for t, lr, v in (("a", 1, 0.55), ("b", 2, 0.52))]
    )  # fmt: skip
    epochs = pl.DataFrame(
        [
            {"trial_id": "a", "epoch": 1, "val_correct": pack_correct([i < 55 for i in range(n)])},
            {"trial_id": "a", "epoch": 2, "val_correct": pack_correct([i >= 45 for i in range(n)])},
            {"trial_id": "b", "epoch": 1, "val_correct": pack_correct([i >= 48 for i in range(n)])},
        ]
    )
    both = selection_stability(trials, epochs, RECORD, resamples=1000)
    one = selection_stability(trials, epochs.filter(pl.col("epoch") < 2), RECORD, resamples=1000)
    assert both.kept == 1.0 and 0.3 < one.kept < 1.0
    assert both.runner_up == "trainer.lr 2"


def test_no_resampling_says_why():
    trials, epochs = tables(list(range(90)), list(range(40)))
    assert "predate val_correct" in selection_stability(trials, epochs.drop("val_correct"), RECORD).note
    single = selection_stability(trials.head(1), epochs, RECORD)
    assert single.kept is None and "fewer than two configs" in stability_text(single)
    loss = {**RECORD, "search": {"metric": "best_val_acc", "mode": "min"}}
    assert "not a validation accuracy to maximise" in selection_stability(trials, epochs, loss).note
