"""``softmatch``: SoftMatch's truncated-Gaussian sample weights (Chen et al., ICLR 2023, arXiv 2301.10921).

No hard mask: with p the (aligned, see below) weak-view probabilities of an unlabeled sample,

    w(p) = exp(-(max p - mu_t)^2 / (2 (sigma_t / n_sigma)^2))   if max p < mu_t,   else 1

    mu_t      = m * mu_{t-1}      + (1 - m) * mean_b max p_b          mu_0 = 1/C
    sigma_t^2 = m * sigma_{t-1}^2 + (1 - m) * var_b max p_b           sigma_0^2 = 1   (unbiased batch variance)

The paper writes the weight as lambda_max * exp(-(max p - mu_t)^2 / (2 sigma_t^2)): ``softmatch_n_sigma: 1`` is
that formula. The default, 2, is USB's (``n_sigma`` in all 42 shipped SoftMatch configs; USB is the authors' code
base): the Gaussian is twice as narrow. lambda_max is not here: a policy's weight lies in [0, 1]
(the samples below it, 1 - w, are the contrastive and negative losses' subset), so lambda_max is the
``pseudo_label`` component's weight (USB's ``ulb_loss_ratio``, 1.0).

Uniform alignment (``softmatch_alignment``, on by default as in USB), UA(p) = Normalize(p * u(C) / E[p]): the
probabilities are multiplied by (1/C + 1e-6) / (p_model + 1e-6) and renormalised, where p_model is the first
batch's mean probability and then its EMA with decay m, updated with the current batch before aligning. The aligned
probabilities feed only the weight (its mu, sigma and max p); the pseudo-labels stay the argmax of the raw ones.

It follows USB (microsoft/Semi-supervised-learning at 1ef4cbe): ``SoftMatchWeightingHook``
(``semilearn/algorithms/softmatch/utils.py``: initial state lines 25-26, ``update`` lines 35-40 before the weight,
the weight line 76), ``DistAlignEMAHook`` with a uniform target (``semilearn/algorithms/hooks/dist_align.py``:
lines 26-33 and 47-51), and the order of ``softmatch.py:84-98`` (align, weigh, pseudo-label from the raw logits).
USB's ``per_class`` variant (off by default, and it reads an attribute the hook lacks) is left out.

p is the one weak view's softmax with ``augment.weak_views: 1`` (USB's, set by presets/softmatch.yaml), the mean
of the two weak views' with 2. The EMAs stay on the device (USB reads the batch statistics back with ``.item()``).
"""

from __future__ import annotations

import torch

from ablate.components.policies.base import Policy, register_policy
from ablate.config.params import Param

ALIGN_EPS = 1e-6  # USB's dist_align.py:31


def truncated_gaussian_weight(confidence: torch.Tensor, mu: torch.Tensor, var: torch.Tensor, n_sigma: float):
    """1 at or above mu; below it a Gaussian in the confidence with mean mu and standard deviation
    sqrt(var) / n_sigma (USB's utils.py:76)."""
    below = torch.clamp(confidence - mu, max=0.0)
    return torch.exp(-(below**2) / (2.0 * var / n_sigma**2))


def uniform_alignment(probs: torch.Tensor, p_model: torch.Tensor) -> torch.Tensor:
    """Normalize(p * u(C) / p_model), with USB's 1e-6 on both sides of the ratio."""
    uniform = 1.0 / probs.shape[1]
    aligned = probs * (uniform + ALIGN_EPS) / (p_model + ALIGN_EPS)
    return aligned / aligned.sum(dim=1, keepdim=True)


def batch_variance(values: torch.Tensor) -> torch.Tensor:
    """The unbiased variance (USB's), or the biased one for a batch of one sample (the unbiased is undefined)."""
    return torch.var(values, correction=1 if len(values) > 1 else 0)


@register_policy("softmatch")
class SoftMatch(Policy):
    reports = ("softmatch_mu", "softmatch_sigma")
    params = {
        "softmatch_ema": Param(
            0.999,
            "softmatch: EMA decay m of the confidence mean and variance and of the class distribution (USB's 0.999)",
            low=0.0,
            high=1.0,
            open_high=True,
        ),
        "softmatch_n_sigma": Param(
            2.0,
            "softmatch: the Gaussian's standard deviation is sigma_t / n_sigma; 2 is USB's, 1 the paper's formula",
            low=0.0,
            open_low=True,
        ),
        "softmatch_alignment": Param(
            True, "softmatch: uniform alignment of the probabilities that give the weight (the pseudo-labels stay raw)"
        ),
    }

    def __init__(self, hp, ctx):
        super().__init__(hp, ctx)
        k = ctx.num_classes
        self.mu = torch.tensor(1.0 / k, device=ctx.device)
        self.var = torch.tensor(1.0, device=ctx.device)
        # Uniform until the first batch sets it (then aligning is the identity up to rounding).
        self.p_model = torch.full((k,), 1.0 / k, device=ctx.device)
        self.p_model_set = False  # host-side: the first batch replaces p_model instead of averaging into it

    def aligned(self, probs: torch.Tensor) -> torch.Tensor:
        return uniform_alignment(probs, self.p_model) if self.hp["softmatch_alignment"] else probs

    def weights(self, probs: torch.Tensor) -> torch.Tensor:
        confidence = self.aligned(probs.float()).max(dim=1).values
        return truncated_gaussian_weight(confidence, self.mu, self.var, self.hp["softmatch_n_sigma"])

    def step_weights(self, batch) -> torch.Tensor:
        probs = batch.probs_u.detach().float()
        decay = self.hp["softmatch_ema"]
        if self.hp["softmatch_alignment"]:
            mean = probs.mean(dim=0)
            self.p_model = decay * self.p_model + (1.0 - decay) * mean if self.p_model_set else mean
            self.p_model_set = True
        confidence = self.aligned(probs).max(dim=1).values
        self.mu = decay * self.mu + (1.0 - decay) * confidence.mean()
        self.var = decay * self.var + (1.0 - decay) * batch_variance(confidence)
        return truncated_gaussian_weight(confidence, self.mu, self.var, self.hp["softmatch_n_sigma"])

    def end_epoch(self, epoch, view):
        return {"softmatch_mu": self.mu.item(), "softmatch_sigma": self.var.sqrt().item()}

    def state_dict(self):
        return {"mu": self.mu, "var": self.var, "p_model": self.p_model, "p_model_set": self.p_model_set}

    def load_state_dict(self, state):
        device = self.ctx.device
        self.mu = state["mu"].to(device)
        self.var = state["var"].to(device)
        self.p_model = state["p_model"].to(device)
        self.p_model_set = state["p_model_set"]
