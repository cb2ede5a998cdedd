"""Validation selection and divergence: the bookkeeping by hand, and a real run whose loss becomes NaN."""

import pytest

from ablate.config.metrics import selection_metrics
from ablate.config.run import load_config
from ablate.data import load_dataset
from ablate.training.trainer import Diverged, Trainer


def epoch(n, val, test, test_mca):
    return {"epoch": n, "val_acc": val, "val_mean_class_acc": val, "test_acc": test, "test_mean_class_acc": test_mca}


def test_at_best_val_follows_the_validation_peak_not_the_test_peak():
    history = [epoch(1, 0.30, 0.50, 0.40), epoch(2, 0.60, 0.45, 0.44), epoch(3, 0.40, 0.70, 0.65)]
    out = selection_metrics(history[:2], history[2])
    assert out["best_val_epoch"] == 2
    assert out["test_acc_at_best_val"] == 0.45 and out["test_mean_class_acc_at_best_val"] == 0.44
    assert out["best_val_acc"] == 0.60
    assert out["best_test_acc"] == 0.70  # the oracle: selected on test, reported apart
    assert out["best_test_mean_class_acc"] == 0.65


def test_a_tie_in_validation_picks_the_later_epoch():
    history = [epoch(1, 0.50, 0.40, 0.30), epoch(2, 0.50, 0.42, 0.33)]
    out = selection_metrics(history[:1], history[1])
    assert out["best_val_epoch"] == 2 and out["test_acc_at_best_val"] == 0.42


def test_the_first_epoch_selects_itself_and_no_validation_means_no_selection():
    out = selection_metrics([], epoch(1, 0.2, 0.3, 0.25))
    assert out["best_val_epoch"] == 1 and out["test_acc_at_best_val"] == 0.3
    no_val = selection_metrics([], {"epoch": 1, "test_acc": 0.3, "test_mean_class_acc": 0.2})
    assert "best_val_epoch" not in no_val and "test_acc_at_best_val" not in no_val
    assert no_val["best_test_acc"] == 0.3


TINY = [
    "data.options={scale: 0.05, image_size: 32}",
    "data.val_per_class=2",
    "trainer.epochs=3",
    "trainer.steps_per_epoch=3",
    "trainer.batch_size=8",
    "trainer.mu=2",
    "trainer.eval_unlabeled=32",
]


@pytest.fixture(scope="module")
def faces():
    return load_dataset("synthfer", scale=0.05, image_size=32)


def test_a_loss_that_becomes_nan_ends_the_run_with_its_step(faces):
    trainer = Trainer(load_config("presets/fixmatch.yaml", [*TINY, "trainer.lr=1.0e+30"]), faces)
    with pytest.raises(Diverged) as caught:
        trainer.fit()
    err = caught.value
    assert err.step >= 2 and err.epoch == (err.step - 1) // 3 + 1
    assert f"step {err.step} (epoch {err.epoch})" in str(err)
    assert trainer.epoch == err.epoch - 1  # the diverged epoch is never reported


def test_a_loss_above_the_bound_counts_as_diverged(faces):
    trainer = Trainer(load_config("presets/fixmatch.yaml", [*TINY, "trainer.max_loss=0.01"]), faces)
    with pytest.raises(Diverged) as caught:
        trainer.fit()
    assert caught.value.step == 1 and caught.value.loss > 0.01


def test_a_healthy_run_reports_test_metrics_at_its_best_validation_epoch(faces):
    history = Trainer(load_config("presets/fixmatch.yaml", TINY), faces).fit()
    last = history[-1]
    best = next(e for e in history if e["epoch"] == last["best_val_epoch"])
    assert last["test_acc_at_best_val"] == best["test_acc"]
    assert best["val_acc"] == max(e["val_acc"] for e in history)
