"""``ema``: an exponential-moving-average teacher (decay 0.999), used for evaluation and, when
``teacher_pseudo_labels`` is on, for the weak views' probabilities that give pseudo-labels and masks."""

from __future__ import annotations

import copy

import torch

from ablate.components.base import Component, Role, StepBatch, register_component
from ablate.params import Param


@torch.no_grad()
def ema_update(teacher: torch.nn.Module, student: torch.nn.Module, decay: float) -> None:
    """teacher <- decay * teacher + (1 - decay) * student for parameters; buffers (BN statistics) are copied."""
    teacher_params, student_params = list(teacher.parameters()), [p.detach() for p in student.parameters()]
    torch._foreach_mul_(teacher_params, decay)
    torch._foreach_add_(teacher_params, student_params, alpha=1.0 - decay)
    for t, s in zip(teacher.buffers(), student.buffers()):
        t.copy_(s)


@register_component("ema")
class Ema(Component):
    name = "ema"
    role = Role.TEACHER
    uses_unlabeled = False
    params = {
        "decay": Param(0.999, "teacher decay per step", low=0.0, high=1.0, open_high=True),
        "teacher_pseudo_labels": Param(False, "take pseudo-labels from the teacher instead of the student"),
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
        ema_update(self.teacher, model, self.hp["decay"])

    def state_dict(self):
        return {"teacher": self.teacher.state_dict()}

    def load_state_dict(self, state):
        self.teacher.load_state_dict(state["teacher"])
