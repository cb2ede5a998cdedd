"""``freematch``: FreeMatch's self-adaptive thresholds (Wang et al., ICLR 2023, arXiv 2205.07246, Sec. 3.2;
Algorithm 1, lines 3-5). With q_b the weak-view probabilities of the unlabeled batch and lambda the EMA decay,

    tau_t   = lambda * tau_{t-1}   + (1 - lambda) * mean_b max q_b            (eq. 5, the global threshold)
    p~_t(c) = lambda * p~_{t-1}(c) + (1 - lambda) * mean_b q_b(c)             (eq. 6, the local class estimate)
    h~_t    = lambda * h~_{t-1}    + (1 - lambda) * Hist(argmax q_b)         (eq. 10, for the fairness loss)
    T_t(c)  = MaxNorm(p~_t)(c) * tau_t,  MaxNorm(x)_c = x_c / max_c' x_c'     (eqs. 7-8)

starting from tau_0 = p~_0(c) = h~_0(c) = 1/C, and a sample learns from its pseudo-label when max q >= T(argmax q).
So the largest class threshold always equals tau_t. (The equation numbers were not re-checked
against the PDF; the order of the updates is Algorithm 1's.)

It follows USB's ``FreeMatchThresholingHook`` (microsoft/Semi-supervised-learning at 1ef4cbe,
``semilearn/algorithms/freematch/utils.py``: initial state lines 19-21, ``update`` lines 27-39, ``masking``
lines 61-65): the estimates are updated with the current batch first, and that batch's mask uses the updated
thresholds (``utils.py:61-65``), compared with ``>=``. USB's off-by-default options (``use_quantile``,
``clip_thresh``) are left out.
The self-adaptive fairness loss (eq. 11) is its own component, ``fairness``, which reads p~ and h~ from here.

q is the one weak view's softmax with ``augment.weak_views: 1`` (USB's, set by presets/freematch.yaml), the mean
of the two weak views' with 2.
"""

from __future__ import annotations

import torch

from ablate.components.policies.base import Policy, hard_mask, register_policy
from ablate.config.params import Param


def ema(old: torch.Tensor, new: torch.Tensor, decay: float) -> torch.Tensor:
    return decay * old + (1.0 - decay) * new


def freematch_thresholds(tau: torch.Tensor, p_model: torch.Tensor) -> torch.Tensor:
    """T(c) = MaxNorm(p~)(c) * tau."""
    return tau * p_model / p_model.max()


def class_histogram(predicted: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The share of the batch predicted as each class (Hist in eq. 10)."""
    counts = torch.zeros(num_classes, device=predicted.device).index_add_(
        0, predicted, torch.ones_like(predicted, dtype=torch.float32)
    )
    return counts / max(len(predicted), 1)


@register_policy("freematch")
class FreeMatch(Policy):
    params = {
        "freematch_ema": Param(
            0.999,
            "freematch: EMA decay lambda of the global threshold and the class estimates (the paper's and USB's 0.999)",
            low=0.0,
            high=1.0,
            open_high=True,
        ),
    }

    def __init__(self, hp, ctx):
        super().__init__(hp, ctx)
        k = ctx.num_classes
        self.tau = torch.tensor(1.0 / k, device=ctx.device)
        self.p_model = torch.full((k,), 1.0 / k, device=ctx.device)
        self.label_hist = torch.full((k,), 1.0 / k, device=ctx.device)

    def thresholds(self) -> torch.Tensor:
        return freematch_thresholds(self.tau, self.p_model)

    def weights(self, probs: torch.Tensor) -> torch.Tensor:
        return hard_mask(probs, self.thresholds())

    def step_weights(self, batch) -> torch.Tensor:
        self.update(batch.probs_u)  # the current batch first (USB's order)
        return self.weights(batch.probs_u)

    def update(self, probs: torch.Tensor) -> None:
        probs = probs.detach().float()
        decay = self.hp["freematch_ema"]
        confidence, predicted = probs.max(dim=1)
        self.tau = ema(self.tau, confidence.mean(), decay)
        self.p_model = ema(self.p_model, probs.mean(dim=0), decay)
        self.label_hist = ema(self.label_hist, class_histogram(predicted, self.ctx.num_classes), decay)

    def state_dict(self):
        return {"tau": self.tau, "p_model": self.p_model, "label_hist": self.label_hist}

    def load_state_dict(self, state):
        device = self.ctx.device
        self.tau = state["tau"].to(device)
        self.p_model = state["p_model"].to(device)
        self.label_hist = state["label_hist"].to(device)
