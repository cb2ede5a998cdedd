"""``pseudo_label``: cross-entropy of the strong view against the weak views' argmax, each sample weighted by the
policy's weight, averaged over the whole unlabeled batch (FixMatch eq. 4, Ada-CM's subset I; weight 1.0)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ablate.components.base import Component, StepBatch, register_component


def pseudo_label_loss(logits_strong: torch.Tensor, pseudo_labels: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    per_sample = F.cross_entropy(logits_strong.float(), pseudo_labels, reduction="none")
    return (per_sample * weight).sum() / max(len(weight), 1)


@register_component("pseudo_label")
class PseudoLabel(Component):
    default_weight = 1.0
    needs = ("policy",)
    grad_views = frozenset({"strong"})

    def loss(self, batch: StepBatch):
        return pseudo_label_loss(batch.logits_s, batch.pseudo_labels, batch.weight), {}
