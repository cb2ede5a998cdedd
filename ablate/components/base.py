"""What every component shares: the per-step batch it reads, its base class, and the registry.

A trial's loss is the weighted sum of the losses of the components its config enables. Components run in a
fixed order (``ORDER``) so that ``threshold`` can mark the confident samples before the losses that use the
mark (``pseudo_label``, ``contrastive``, ``negative``) read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from ablate.params import Param
from ablate.registry import Registry

COMPONENTS: Registry = Registry("component")
register_component = COMPONENTS.register

# The order components see a step in; threshold first, since the others read its mask.
ORDER = ("threshold", "supervised", "pseudo_label", "contrastive", "negative", "ema")


@dataclass
class StepBatch:
    """One training step's outputs, shared by the components.

    Labeled: logits ``logits_l`` [B, K] of the weak view, ``labels`` [B]. Unlabeled (mu*B samples): logits and
    L2-normalised features of the two weak views and the strong view; ``u_index`` [Bu] their positions in the
    unlabeled set (for per-sample tables). ``probs_u`` is the detached mean of the two weak views' softmax
    (the teacher's, when the EMA teacher gives pseudo-labels); ``mask`` [Bu] marks the confident samples, set
    by ``threshold``. ``u_true`` / ``u_soft`` are hidden labels for metrics only: no loss may read them.
    """

    logits_l: torch.Tensor
    labels: torch.Tensor
    logits_w1: torch.Tensor
    logits_w2: torch.Tensor
    logits_s: torch.Tensor
    feat_w1: torch.Tensor
    feat_w2: torch.Tensor
    u_index: torch.Tensor
    probs_u: torch.Tensor
    progress: float  # fraction of training done, 0 at the first step, towards 1 at the last
    epoch: float  # epochs done, fractional within an epoch
    mask: torch.Tensor | None = None
    u_true: torch.Tensor | None = None
    u_soft: torch.Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pseudo_labels(self) -> torch.Tensor:
        return self.probs_u.argmax(dim=1)

    @property
    def confidence(self) -> torch.Tensor:
        return self.probs_u.max(dim=1).values


@dataclass(frozen=True)
class Context:
    """What a component may know of the run when it is built."""

    num_classes: int
    num_unlabeled: int
    steps_per_epoch: int
    epochs: int
    device: torch.device


class Component:
    """A switchable part of the method: a loss term with its own hyper-parameters and state.

    Subclasses declare ``params`` (name -> Param; ``enabled`` and ``weight`` are added for every component),
    and override ``loss`` and the hooks they need. ``loss`` returns (loss tensor, metrics of floats).
    """

    name: ClassVar[str]
    params: ClassVar[dict[str, Param]] = {}
    default_weight: ClassVar[float] = 1.0
    needs: ClassVar[tuple[str, ...]] = ()  # components that must be enabled with this one

    def __init__(self, hp: dict[str, Any], ctx: Context):
        self.hp = hp
        self.ctx = ctx

    @classmethod
    def all_params(cls) -> dict[str, Param]:
        common = {
            "enabled": Param(False, "switch the component on"),
            "weight": Param(cls.default_weight, "the loss term's weight", low=0.0),
        }
        return {**common, **cls.params}

    def prepare(self, batch: StepBatch) -> None:
        """Annotate the batch before any loss is computed (the threshold's mask)."""

    def loss(self, batch: StepBatch) -> tuple[torch.Tensor | None, dict[str, float]]:
        return None, {}

    def after_step(self, batch: StepBatch, model: torch.nn.Module) -> None:
        """After the optimiser step."""

    def end_epoch(self, epoch: int) -> dict[str, float]:
        """After each epoch (epoch counts from 1); returns metrics to log."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
