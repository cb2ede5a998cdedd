"""``supervised``: cross-entropy on the labeled batch (Ada-CM weights it 0.5)."""

from __future__ import annotations

import torch.nn.functional as F

from ablate.components.base import Component, StepBatch, register_component


@register_component("supervised")
class Supervised(Component):
    default_weight = 0.5
    uses_unlabeled = False
    grad_views = frozenset({"labeled"})
    reports = ("labeled_acc",)

    def loss(self, batch: StepBatch):
        loss = F.cross_entropy(batch.logits_l.float(), batch.labels)
        accuracy = (batch.logits_l.argmax(dim=1) == batch.labels).float().mean()
        return loss, {"labeled_acc": accuracy}
