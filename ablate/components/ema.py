"""``ema``: an exponential-moving-average teacher (decay 0.999), used for evaluation and, when
``teacher_pseudo_labels`` is on, for the weak views' probabilities that give pseudo-labels and masks."""

from __future__ import annotations

import copy

import torch

from ablate.components.base import Component, StepBatch, register_component
from ablate.params import Param


@torch.no_grad()
def ema_update(teacher: torch.nn.Module, student: torch.nn.Module, decay: float) -> None:
    """teacher <- decay * teacher + (1 - decay) * student for parameters; buffers (BN statistics) are copied."""
    for t, s in zip(teacher.parameters(), student.parameters()):
        t.mul_(decay).add_(s.detach(), alpha=1.0 - decay)
    for t, s in zip(teacher.buffers(), student.buffers()):
        t.copy_(s)


@register_component("ema")
class Ema(Component):
    name = "ema"
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

    def after_step(self, batch: StepBatch, model) -> None:
        ema_update(self.teacher, model, self.hp["decay"])

    def state_dict(self):
        return {"teacher": self.teacher.state_dict()}

    def load_state_dict(self, state):
        self.teacher.load_state_dict(state["teacher"])
