"""``contrastive``: Ada-CM's subset II. NT-Xent (SupCon without labels) between the two weak views' normalised
features of the samples below the threshold; zero when there are none (weight 0.1, temperature 0.07)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ablate.components.base import Component, StepBatch, register_component
from ablate.params import Param


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean over the 2n anchors of -log(exp(s_pos / t) / sum over the other 2n-1 of exp(s / t)).

    z1[i] and z2[i] are the two views of sample i, both L2-normalised; s is the cosine similarity.
    """
    n = len(z1)
    if n == 0:
        return z1.new_zeros(())
    z = torch.cat([z1, z2]).float()
    similarity = z @ z.T / temperature
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    similarity = similarity.masked_fill(self_mask, float("-inf"))
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(similarity, positives)


@register_component("contrastive")
class Contrastive(Component):
    name = "contrastive"
    default_weight = 0.1
    needs = ("threshold",)
    params = {"temperature": Param(0.07, "NT-Xent temperature", low=0.0, open_low=True)}

    def loss(self, batch: StepBatch):
        below = batch.mask < 0.5
        loss = nt_xent(batch.feat_w1[below], batch.feat_w2[below], self.hp["temperature"])
        return loss, {"contrastive_samples": float(below.sum().item())}
