"""``ema``: an exponential-moving-average teacher (decay 0.999), used for evaluation and, when
``teacher_pseudo_labels`` is on, for the weak views' probabilities that give pseudo-labels and masks.

Each step, after the optimiser step: teacher <- decay * teacher + (1 - decay) * student for every parameter.
Two switches give Ada-CM's ``WeightEMA`` (hangyu94/Ada-CM ``main.py:337-356``), which its code took from
MixMatch-pytorch:

- ``buffers``: ``copy`` copies the student's BatchNorm running statistics into the teacher each step
  (FixMatch-pytorch ``models/ema.py``, USB); ``average`` averages them with the same decay as the weights, as
  Ada-CM does by walking ``state_dict()`` (``main.py:342-354``: every float32 tensor, running mean and variance
  included). Integer buffers (``num_batches_tracked``) are copied in both modes: the official loop skips them,
  and they are read only by a model training with ``momentum=None``, never by the eval-mode teacher.
- ``student_decay``: Ada-CM's "customized weight decay" (``main.py:344,356``): right after the teacher's update,
  every float tensor of the student's state (weights, biases and BatchNorm statistics alike) is multiplied by
  ``1 - student_decay``. The official value is ``0.02 * lr`` = 1e-5 at its lr 5e-4 (its only weight decay: its
  Adam has none); it is given here as the per-step amount, so set 0.02 x ``trainer.lr`` when the lr changes.

The teacher starts as a copy of the student (``attach``), as the official ``WeightEMA.__init__`` copies the
EMA model into the student so that the two start identical (``main.py:346-347``).

Fit ``decay`` to the run's length: after t steps the teacher still holds decay^t of its initial weights (0.999:
92 % after 80 steps, 45 % after 800). Measured on FER2013 (ResNet-18, 48 px, 16 + 16 per step): with 0.999 and
``copy``, such a teacher normalises its mostly-initial activations with the student's statistics and put 99-100 %
of the test faces in one class at 80, 160 and 240 steps; ``average`` spread its predictions a little (75-99 % in
one class) but it still trailed the student by 4.7 to 7.4 points; with 0.99 the teacher followed the student from
the first epoch.
"""

from __future__ import annotations

import copy

import torch

from ablate.components.base import Component, Role, StepBatch, register_component
from ablate.config.params import Param


def _float_buffers(model: torch.nn.Module) -> list[torch.Tensor]:
    return [b for b in model.buffers() if b.is_floating_point()]


@torch.no_grad()
def ema_update(teacher: torch.nn.Module, student: torch.nn.Module, decay: float, buffers: str = "copy") -> None:
    """teacher <- decay * teacher + (1 - decay) * student for the parameters, and for the float buffers when
    ``buffers`` is ``average``; the other buffers are copied."""
    teacher_tensors, student_tensors = list(teacher.parameters()), [p.detach() for p in student.parameters()]
    if buffers == "average":
        teacher_tensors += _float_buffers(teacher)
        student_tensors += _float_buffers(student)
    torch._foreach_mul_(teacher_tensors, decay)
    torch._foreach_add_(teacher_tensors, student_tensors, alpha=1.0 - decay)
    for t, s in zip(teacher.buffers(), student.buffers()):
        if buffers == "copy" or not t.is_floating_point():
            t.copy_(s)


@torch.no_grad()
def decay_student(student: torch.nn.Module, amount: float) -> None:
    """Ada-CM's ``param.mul_(1 - wd)`` on every float tensor of the student's state (main.py:351-356)."""
    tensors = [t for t in student.state_dict().values() if t.is_floating_point()]
    torch._foreach_mul_(tensors, 1.0 - amount)


@register_component("ema")
class Ema(Component):
    role = Role.TEACHER
    uses_unlabeled = False
    params = {
        "decay": Param(0.999, "teacher decay per step (Ada-CM: 0.999, main.py:53)", low=0.0, high=1.0, open_high=True),
        "teacher_pseudo_labels": Param(False, "take pseudo-labels from the teacher instead of the student"),
        "buffers": Param(
            "copy",
            "the teacher's BatchNorm statistics: copy the student's each step (FixMatch-pytorch, USB) or average "
            "them like the weights (average: Ada-CM, main.py:342-354)",
            choices=("copy", "average"),
        ),
        "student_decay": Param(
            0.0,
            "after each teacher update, multiply every float tensor of the student's state by 1 - student_decay "
            "(Ada-CM: 0.02 * lr = 1e-5 at lr 5e-4, main.py:344,356); 0: off",
            low=0.0,
            high=1.0,
            open_high=True,
        ),
    }

    def __init__(self, hp, ctx):
        super().__init__(hp, ctx)
        self.teacher: torch.nn.Module | None = None

    def attach(self, model: torch.nn.Module) -> None:
        self.teacher = copy.deepcopy(model).eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)

    def evaluation_model(self) -> torch.nn.Module:
        return self.teacher

    def pseudo_label_model(self) -> torch.nn.Module | None:
        return self.teacher if self.hp["teacher_pseudo_labels"] else None

    def after_step(self, batch: StepBatch, model) -> None:
        ema_update(self.teacher, model, self.hp["decay"], self.hp["buffers"])
        if self.hp["student_decay"] > 0:
            decay_student(model, self.hp["student_decay"])

    def state_dict(self):
        return {"teacher": self.teacher.state_dict()}

    def load_state_dict(self, state):
        self.teacher.load_state_dict(state["teacher"])
