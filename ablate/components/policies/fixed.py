"""``fixed``: FixMatch's one confidence threshold (Sohn et al., NeurIPS 2020, eq. 4: a sample learns from its
pseudo-label when max p >= tau)."""

from __future__ import annotations

import torch

from ablate.components.policies.base import Policy, hard_mask, register_policy
from ablate.config.params import Param


@register_policy("fixed")
class Fixed(Policy):
    params = {
        "tau": Param(
            0.95,
            "the confidence threshold (fixed: of every class; flexmatch: the highest one, and what a "
            "prediction must reach to be recorded)",
            low=0.0,
            high=1.0,
        )
    }

    def __init__(self, hp, ctx):
        super().__init__(hp, ctx)
        self._thresholds = torch.full((ctx.num_classes,), float(hp["tau"]), device=ctx.device)

    def weights(self, probs: torch.Tensor) -> torch.Tensor:
        return hard_mask(probs, self._thresholds)

    def thresholds(self) -> torch.Tensor:
        return self._thresholds
