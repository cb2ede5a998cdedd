"""The EMA teacher against Ada-CM's WeightEMA (hangyu94/Ada-CM main.py:337-356), written out by hand."""

import pytest
import torch
from torch import nn

from ablate.components import Context
from ablate.components.ema import Ema
from ablate.config.run import resolve_components
from ablate.errors import ConfigError


def _ema(**given) -> Ema:
    hp = resolve_components({"supervised": {"enabled": True}, "ema": {"enabled": True, **given}})["ema"]
    return Ema(hp, Context(2, 0, 1, 1, torch.device("cpu")))


def _student() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))


def _train_step(model: nn.Module, optimizer: torch.optim.Optimizer, seed: int) -> None:
    """One step that moves both the weights and the BatchNorm running statistics."""
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(8, 3, generator=g) * 2 + 1, torch.randint(0, 2, (8,), generator=g)
    model.train()
    optimizer.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()


def _clone(state: dict) -> dict:
    return {k: v.clone() for k, v in state.items()}


def _assert_states_equal(got: dict, expected: dict) -> None:
    assert list(got) == list(expected)
    for key in expected:
        assert torch.allclose(got[key].double(), expected[key].double(), atol=1e-6), key


@pytest.mark.parametrize("buffers", ["copy", "average"])
@pytest.mark.parametrize("student_decay", [0.0, 0.1])
def test_two_steps_match_a_hand_written_update(buffers, student_decay):
    """Two steps of the teacher and of the student, against the official loop written out over the state dict:
    for a float tensor, ema = a * ema + (1 - a) * student, then student *= 1 - wd; BatchNorm statistics are
    averaged (``average``, Ada-CM) or copied (``copy``); the integer num_batches_tracked is copied."""
    decay = 0.9
    student = _student()
    optimizer = torch.optim.SGD(student.parameters(), lr=0.5)
    ema = _ema(decay=decay, buffers=buffers, student_decay=student_decay)
    ema.attach(student)
    expected_teacher = _clone(student.state_dict())
    for seed in (1, 2):
        _train_step(student, optimizer, seed)
        trained = _clone(student.state_dict())
        expected_student = {}
        for key, s in trained.items():
            is_stat = key.endswith(("running_mean", "running_var"))
            if not s.is_floating_point() or (is_stat and buffers == "copy"):
                expected_teacher[key] = s.clone()
            else:
                expected_teacher[key] = decay * expected_teacher[key] + (1 - decay) * s
            expected_student[key] = s * (1 - student_decay) if s.is_floating_point() else s.clone()
        ema.after_step(None, student)
        _assert_states_equal(ema.teacher.state_dict(), expected_teacher)
        _assert_states_equal(student.state_dict(), expected_student)
    # the two modes really differ: the averaged statistics lag the student's
    lagging = not torch.allclose(ema.teacher[1].running_mean, student[1].running_mean / (1 - student_decay))
    assert lagging == (buffers == "average")
    assert int(ema.teacher[1].num_batches_tracked) == 2


def test_the_student_decay_shrinks_bn_statistics_too():
    """Ada-CM walks state_dict(), so the running statistics of the student shrink with its weights."""
    student = _student()
    ema = _ema(student_decay=0.25)
    ema.attach(student)
    student[1].running_var.fill_(2.0)
    ema.after_step(None, student)
    assert torch.allclose(student[1].running_var, torch.full((4,), 1.5))
    assert int(student[1].num_batches_tracked) == 0  # the integer counter is not a float tensor: untouched


def test_attach_starts_the_teacher_identical_to_the_student_and_independent():
    """main.py:346-347 copies the EMA into the student so that both start equal; ablate copies the other way."""
    student = _student()
    ema = _ema()
    ema.attach(student)
    _assert_states_equal(ema.teacher.state_dict(), student.state_dict())
    with torch.no_grad():
        student[0].weight.add_(1.0)
    assert not torch.allclose(ema.teacher[0].weight, student[0].weight)
    assert not any(p.requires_grad for p in ema.teacher.parameters())
    assert not ema.teacher.training


def test_bad_ema_options_are_refused():
    with pytest.raises(ConfigError, match=r"components.ema.buffers: 'mean' is not allowed; allowed: 'copy', 'average'"):
        _ema(buffers="mean")
    with pytest.raises(ConfigError, match=r"components.ema.student_decay: 1.0 is out of range"):
        _ema(student_decay=1.0)
