"""What a threshold policy is: the rule that weighs each unlabeled sample in [0, 1] from its weak-view
probabilities, with its own hyper-parameters and state. The ``threshold`` component runs the one its config names
(``components.threshold.policy``); adding a policy is one module in this package with a ``@register_policy`` class.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from ablate.components.base import Context, EpochView, StepBatch
from ablate.config.params import Param
from ablate.registry import Registry

POLICIES: Registry = Registry("threshold policy")
register_policy = POLICIES.register


def hard_mask(probs: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """1.0 where a sample's max probability reaches the threshold of its predicted class, else 0.0."""
    confidence, predicted = probs.max(dim=1)
    return (confidence >= thresholds[predicted]).float()


class Policy:
    """A rule weighing unlabeled samples. ``weights`` reads the current state; ``step_weights`` may also update
    it from the step (override it when the paper updates before or after weighing); ``thresholds`` are the
    per-class thresholds reported each epoch (None for a policy without them)."""

    name: ClassVar[str]
    params: ClassVar[dict[str, Param]] = {}
    reports: ClassVar[tuple[str, ...]] = ()  # metrics its end_epoch adds, beside the per-class thresholds

    def __init__(self, hp: dict[str, Any], ctx: Context):
        self.hp = hp
        self.ctx = ctx

    def weights(self, probs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def step_weights(self, batch: StepBatch) -> torch.Tensor:
        return self.weights(batch.probs_u)

    def after_step(self, batch: StepBatch) -> None:
        """After the optimiser step."""

    def end_epoch(self, epoch: int, view: EpochView) -> dict[str, Any]:
        return {}

    def thresholds(self) -> torch.Tensor | None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
