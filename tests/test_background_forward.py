"""The weak views' forward in a background thread (``ablate.training.background_forward``): the running-statistics merge
on a case computed by hand, the shadow model, and when it applies."""

from __future__ import annotations

import threading

import pytest
import torch
from torch import nn

from ablate.config.run import load_config
from ablate.config.trainer import TRAINER_PARAMS
from ablate.data import load_dataset
from ablate.errors import ConfigError
from ablate.training import runtime
from ablate.training.background_forward import BackgroundForward, shadow_of, why_not_in_background
from ablate.training.runtime import Runtime
from ablate.training.trainer import Trainer


def normalise(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return model(x), x


def column(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).reshape(-1, 1)


def test_the_merged_statistics_are_those_of_the_weak_batches_run_after_the_callers_by_hand():
    """Momentum 0.5, running mean 0 and variance 1. The caller's batch [1, 3] (mean 2, unbiased variance 2), then
    the weak batches [3, 5] (4, 2) and [6, 10] (8, 8), one after the other:
    mean 0 -> 1 -> 2.5 -> 5.25; variance 1 -> 1.5 -> 1.75 -> 4.875; three batches counted."""
    norm = nn.BatchNorm1d(1, momentum=0.5)
    background = BackgroundForward(norm, normalise)
    join = background.start([column(3, 5), column(6, 10)])
    norm(column(1, 3))  # the caller's own forward, while the weak views run
    (out1, _), (out2, _) = join()
    assert norm.running_mean.item() == pytest.approx(5.25)
    assert norm.running_var.item() == pytest.approx(4.875)
    assert norm.num_batches_tracked.item() == 3
    # each weak batch normalised with its own statistics (biased variance 1 and 4), as in training mode
    assert out1.flatten().tolist() == pytest.approx([-1, 1], abs=1e-4)
    assert out2.flatten().tolist() == pytest.approx([-1, 1], abs=1e-4)


def test_in_evaluation_mode_nothing_is_merged():
    norm = nn.BatchNorm1d(1, momentum=0.5).eval()
    background = BackgroundForward(norm, normalise)
    ((out, _),) = background.start([column(3, 5)])()
    assert out.flatten().tolist() == pytest.approx([3, 5], abs=1e-4)  # mean 0, variance 1
    assert norm.running_mean.item() == 0 and norm.num_batches_tracked.item() == 0


def test_the_shadow_shares_the_parameters_and_owns_its_buffers():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    shadow = shadow_of(model)
    assert all(a is b for a, b in zip(model.parameters(), shadow.parameters()))
    with torch.no_grad():
        model[0].weight.add_(1.0)  # an optimiser step: the shadow sees it
    assert torch.equal(shadow[0].weight, model[0].weight)
    shadow[1].running_mean.add_(1.0)
    assert model[1].running_mean.abs().sum() == 0


def test_a_model_with_dropout_or_a_cumulative_batch_norm_is_refused():
    assert why_not_in_background(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.0))) is None
    assert "dropout (p = 0.5)" in why_not_in_background(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)))
    assert "cumulative" in why_not_in_background(nn.BatchNorm2d(2, momentum=None))
    with pytest.raises(ValueError, match="dropout"):
        BackgroundForward(nn.Dropout(0.5), normalise)


# ---- when the trainer uses it ---------------------------------------------------------------------------------

TINY = ["data.options={scale: 0.05, image_size: 32}", "data.val_per_class=2", "trainer.device=cpu"]


@pytest.fixture(scope="module")
def faces():
    return load_dataset("synthfer", scale=0.05, image_size=32)


def section(**changes) -> dict:
    return {**{key: param.default for key, param in TRAINER_PARAMS.items()}, "device": "cpu", **changes}


def test_auto_runs_it_when_the_process_has_twice_torchs_threads_in_cores(monkeypatch):
    threads = torch.get_num_threads()
    monkeypatch.setattr(runtime, "usable_cpus", lambda: 2 * threads)
    assert Runtime.from_trainer_section(section()).background_forward
    assert not Runtime.from_trainer_section(section(compile=True)).background_forward
    monkeypatch.setattr(runtime, "usable_cpus", lambda: 2 * threads - 1)
    assert not Runtime.from_trainer_section(section()).background_forward
    assert Runtime.from_trainer_section(section(background_forward=True)).background_forward


def test_asked_for_with_dropout_it_is_refused_and_auto_turns_it_off(faces, monkeypatch):
    dropout = ["model.dropout=0.5", "trainer.background_forward=true"]
    with pytest.raises(ConfigError, match=r"background_forward: true cannot apply: the model has dropout \(p = 0.5\)"):
        Trainer(load_config("presets/lion.yaml", [*TINY, *dropout]), faces)
    monkeypatch.setattr(runtime, "usable_cpus", lambda: 2 * torch.get_num_threads())
    auto = Trainer(load_config("presets/lion.yaml", [*TINY, "model.dropout=0.5"]), faces)
    assert auto.runtime.background_forward and auto.weak_forward is None
    assert Trainer(load_config("presets/lion.yaml", TINY), faces).weak_forward is not None


def test_it_does_not_apply_when_the_weak_views_learn_or_there_are_none(faces):
    on = "trainer.background_forward=true"
    unlabeled = ("threshold", "pseudo_label", "negative", "ema")
    supervised = load_config("presets/lion.yaml", [*TINY, on, *(f"components.{c}.enabled=false" for c in unlabeled)])
    assert Trainer(supervised, faces).weak_forward is None
    learning = load_config("presets/adacm.yaml", [*TINY, on, "model.dropout=0", "trainer.forward=separate"])
    assert "weak" in Trainer(learning, faces).grad_views
    assert Trainer(learning, faces).weak_forward is None


def forward_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("ablate-forward")]


def test_the_thread_ends_with_each_run_of_steps_and_a_later_run_makes_a_new_one(faces):
    """No thread outlives training (one left to the garbage collector would live until interpreter exit)."""
    assert forward_threads() == []
    trainer = Trainer(load_config("presets/lion.yaml", [*TINY, "trainer.background_forward=true"]), faces)
    trainer.run_steps(0, 1)
    assert forward_threads() == []
    trainer.run_steps(1, 2)  # the second run of steps starts a thread again and ends it again
    first_norm = next(m for m in trainer.model.modules() if isinstance(m, nn.BatchNorm2d))
    assert forward_threads() == [] and int(first_norm.num_batches_tracked) == 2 * 4  # two steps, four views each
    norm = nn.BatchNorm1d(1, momentum=0.5)
    with BackgroundForward(norm, normalise) as background:
        background.start([column(3, 5)])()
        assert len(forward_threads()) == 1
    assert forward_threads() == []
