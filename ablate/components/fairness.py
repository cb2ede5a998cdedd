"""``fairness``: FreeMatch's self-adaptive fairness loss (Wang et al., ICLR 2023, arXiv 2205.07246, eqs. 11-12).

Over the unlabeled samples that pass the FreeMatch threshold, on the strong view (the only view that learns here):

    L_f = sum_c SumNorm(p~ / h~)_c * log(SumNorm(p_bar / h_bar)_c + 1e-12)
        = -H(SumNorm(p~ / h~), SumNorm(p_bar / h_bar))      (H: cross-entropy)

p~ and h~ are the ``freematch`` policy's EMAs of the class probabilities and of the prediction histogram (updated
with this step's batch before the loss, as in USB), p_bar is the mean strong-view probability of the passing
samples and h_bar the normalised histogram of their strong-view argmax. A class absent from a histogram gets
1/0 -> 0 (USB's ``replace_inf_to_zero``), so the loss can be large and negative: only its gradient matters. The
sign is the paper's and USB's (minimising -H pushes the batch's average prediction towards diversity; see
microsoft/Semi-supervised-learning issue #182). With no passing sample the loss is 0 (USB: ``freematch.py:113-116``).

It follows USB's ``entropy_loss`` (microsoft/Semi-supervised-learning at 1ef4cbe,
``semilearn/algorithms/freematch/freematch.py:16-44``) with the boolean selection replaced by the mask as a weight,
so that no step reads the device's data back; for a 0/1 mask the two are equal.

Its weight (w_f in eq. 13) defaults to 0.001, the value of every one of USB's 42 shipped FreeMatch configs
(``ent_loss_ratio: 0.001``, e.g. ``config/classic_cv/freematch/freematch_cifar10_40_0.yaml``); USB's argument
default is 0.01 (``freematch.py:150``), which no shipped config uses.

It needs ``components.threshold`` with ``policy: freematch`` (it reads that policy's estimates); any other policy
is refused with a ConfigError when the trainer is built, before any step.
"""

from __future__ import annotations

import torch

from ablate.components.base import Component, StepBatch, register_component
from ablate.components.policies.freematch import FreeMatch
from ablate.errors import ConfigError

TINY = 1e-12


def inverse_or_zero(x: torch.Tensor) -> torch.Tensor:
    """1 / x, with 0 where x is 0 (USB's replace_inf_to_zero(1 / x))."""
    return torch.where(x > 0, 1.0 / x.clamp(min=TINY), torch.zeros_like(x))


def sum_norm(x: torch.Tensor) -> torch.Tensor:
    return x / x.sum().clamp(min=TINY)


def fairness_loss(logits_strong: torch.Tensor, mask: torch.Tensor, p_model: torch.Tensor, label_hist: torch.Tensor):
    """-H(SumNorm(p~ / h~), SumNorm(p_bar / h_bar)) over the samples weighted by ``mask``; 0 when none passes."""
    probs = torch.softmax(logits_strong.float(), dim=1)
    m = mask.detach().float()
    passing = m.sum()
    hist = torch.zeros_like(p_model, dtype=torch.float32).index_add_(0, probs.argmax(dim=1), m)
    hist = hist / passing.clamp(min=TINY)
    mean_probs = (probs * m.unsqueeze(1)).sum(dim=0) / passing.clamp(min=TINY)
    target = sum_norm(p_model.float() * inverse_or_zero(label_hist.float()))
    prediction = sum_norm(mean_probs * inverse_or_zero(hist))
    loss = (target * torch.log(prediction + TINY)).sum()
    return torch.where(passing > 0, loss, torch.zeros_like(loss))


@register_component("fairness")
class Fairness(Component):
    default_weight = 0.001
    needs = ("threshold",)
    grad_views = frozenset({"strong"})

    def __init__(self, hp, ctx):
        super().__init__(hp, ctx)
        self.policy: FreeMatch | None = None

    @classmethod
    def check_config(cls, components):
        policy = components["threshold"]["policy"]
        if policy != "freematch":
            raise ConfigError(
                f"components.fairness needs components.threshold.policy: freematch (it reads FreeMatch's class "
                f"estimates); got {policy!r}. Set the policy to freematch or disable fairness"
            )

    def bind(self, peers):
        self.policy = peers["threshold"].policy  # a FreeMatch: check_config made sure when the config was resolved

    def loss(self, batch: StepBatch):
        return fairness_loss(batch.logits_s, batch.weight, self.policy.p_model, self.policy.label_hist), {}
