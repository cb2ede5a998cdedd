"""``contrastive``: Ada-CM's subset II. NT-Xent (SupCon without labels, temperature 0.07) between the two weak
views' normalised features of the samples below the threshold; zero when there are none (weight 0.1).

A sample belongs to subset II with weight 1 - w (w: the policy's weight), so a hard mask gives Ada-CM's subset
exactly; a soft policy (SoftMatch) lets each sample take part in proportion. The loss is computed over the whole
batch with the other samples masked out, so its cost and shape never depend on how many are below.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ablate.components.base import Component, StepBatch, register_component
from ablate.config.params import Param


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float, member: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over the anchors of -log(exp(s_pos / t) / sum over the other members of exp(s / t)).

    z1[i] and z2[i] are the two views of sample i, both L2-normalised; s is the cosine similarity. ``member``
    [n] in [0, 1] weighs each sample as an anchor (both its views) and keeps the samples with member > 0 as
    contrast; None: every sample, weight 1 (the plain NT-Xent of 2n anchors).
    """
    n = len(z1)
    if member is None:
        member = torch.ones(n, device=z1.device)
    z = torch.cat([z1, z2]).float()
    m = torch.cat([member, member]).float()
    similarity = z @ z.T / temperature
    excluded = torch.eye(2 * n, dtype=torch.bool, device=z.device) | (m <= 0).unsqueeze(0)
    similarity = similarity.masked_fill(excluded, float("-inf"))
    # An anchor that is no member has no valid row: give it a harmless one, its weight is zero anyway.
    similarity = torch.where((m > 0).unsqueeze(1), similarity, torch.zeros_like(similarity))
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    per_anchor = F.cross_entropy(similarity, positives, reduction="none")
    return (per_anchor * m).sum() / m.sum().clamp(min=1e-12)


@register_component("contrastive")
class Contrastive(Component):
    default_weight = 0.1
    needs = ("policy",)
    grad_views = frozenset({"weak"})  # the features of both weak views learn (Ada-CM main.py:216-233)
    weak_views = 2  # the positive pair is the two weak views
    params = {"temperature": Param(0.07, "NT-Xent temperature", low=0.0, open_low=True)}
    reports = ("contrastive_samples",)

    def loss(self, batch: StepBatch):
        member = 1.0 - batch.weight
        loss = nt_xent(batch.feat_w1, batch.feat_w2, self.hp["temperature"], member)
        return loss, {"contrastive_samples": member.sum()}
