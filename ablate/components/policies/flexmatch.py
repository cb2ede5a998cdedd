"""``flexmatch``: FlexMatch's Curriculum Pseudo Labeling (Zhang et al., NeurIPS 2021, arXiv 2110.08263, Sec. 3).

Each unlabeled sample keeps a record: the class of its latest prediction whose max probability reached the fixed
threshold tau, or none. Then, with N the size of the unlabeled set,

    sigma_c = number of samples recorded as c                                  (eq. 4, the learning effect)
    beta_c  = sigma_c / max(max_c sigma_c, N - sum_c sigma_c)                  (eq. 8, with threshold warm-up)
    beta_c  = sigma_c / max_c sigma_c                                          (eq. 5, ``flexmatch_warmup: false``)
    T_c     = M(beta_c) * tau,  M(x) = x / (2 - x) (convex, eq. 9) or x (linear, eq. 6)

and a sample learns from its pseudo-label when max p >= T_{argmax p}. (The equation numbers were
not re-checked against the PDF.)

It follows USB's ``FlexMatchThresholdingHook`` (microsoft/Semi-supervised-learning at 1ef4cbe,
``semilearn/algorithms/flexmatch/utils.py``: ``masking`` lines 38-63, ``update`` lines 24-35):

- Order: a step's mask uses the thresholds from before the step; the step's confident predictions are recorded
  after it (``utils.py:53-61``). So the very first step has every T_c = 0 and every sample passes (warm-up).
- ``>=`` for both the mask and the record (``utils.py:53, 55``) where the paper writes ``>``.
- beta is recomputed after every step unless all N records hold one value (``utils.py:26``), which keeps it at 0
  until the first confident prediction (and avoids 0 / 0 without warm-up).
- A record is overwritten only by a later confident prediction and never reset.
- USB's commented-out "linear" (``tau * (beta + 1) / 2``, ``utils.py:51``) is not the paper's linear mapping
  and is not offered.

Differences: the prediction is the one weak view's softmax with ``augment.weak_views: 1`` (USB's, set by
presets/flexmatch.yaml), the mean of the two weak views' with 2. N is the unlabeled pool, which counts the
labeled images too with ``data.labeled_in_unlabeled: true`` (USB's ``include_lb_to_ulb``). The
trainer draws unlabeled samples with replacement, so a sample may appear twice in a batch; if both draws are
confident with different classes, which one is recorded is unspecified (USB's sampler has no repeats within an
epoch). Everything runs on the device: the records are scattered and counted with tensor ops, never read back.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ablate.components.policies.base import Policy, hard_mask, register_policy
from ablate.components.policies.fixed import Fixed
from ablate.config.params import Param

MAPPINGS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "convex": lambda beta: beta / (2.0 - beta),  # eq. 9, USB's shipped mapping
    "linear": lambda beta: beta,  # eq. 6
}
UNUSED = -1  # the record of a sample never predicted confidently


def record_counts(records: torch.Tensor, num_classes: int) -> torch.Tensor:
    """[K + 1]: the number of unused records (index 0), then sigma_c for each class c (index c + 1)."""
    counts = torch.zeros(num_classes + 1, device=records.device)
    return counts.scatter_add_(0, records + 1, torch.ones_like(records, dtype=counts.dtype))


def learning_effect(counts: torch.Tensor, warmup: bool) -> torch.Tensor:
    """beta_c from ``record_counts``: sigma_c over the largest sigma, or over the number of unused records when
    that is larger (the warm-up normaliser)."""
    unused, sigma = counts[0], counts[1:]
    largest = sigma.max()
    normaliser = torch.maximum(largest, unused) if warmup else largest
    return sigma / normaliser.clamp(min=1.0)


def flexmatch_thresholds(beta: torch.Tensor, tau: float, mapping: str) -> torch.Tensor:
    return MAPPINGS[mapping](beta) * tau


@register_policy("flexmatch")
class FlexMatch(Policy):
    reports = ("flexmatch_unused",)
    params = {
        # Shared with ``fixed``, declared there: the same default and meaning.
        "tau": Fixed.params["tau"],
        "flexmatch_mapping": Param(
            "convex",
            "flexmatch: M(beta) in T_c = M(beta_c) * tau: convex beta / (2 - beta) (the paper's eq. 9 and USB's) "
            "or linear beta (eq. 6)",
            choices=tuple(MAPPINGS),
        ),
        "flexmatch_warmup": Param(
            True,
            "flexmatch: normalise the learning effect by max(max_c sigma_c, unused samples) (threshold warm-up, "
            "eq. 8) instead of max_c sigma_c (eq. 5)",
        ),
    }

    def __init__(self, hp, ctx):
        super().__init__(hp, ctx)
        # One record per unlabeled sample, plus a last slot that swallows the writes of unconfident samples.
        self.records = torch.full((ctx.num_unlabeled + 1,), UNUSED, dtype=torch.long, device=ctx.device)
        self.beta = torch.zeros(ctx.num_classes, device=ctx.device)

    def thresholds(self) -> torch.Tensor:
        return flexmatch_thresholds(self.beta, self.hp["tau"], self.hp["flexmatch_mapping"])

    def weights(self, probs: torch.Tensor) -> torch.Tensor:
        return hard_mask(probs, self.thresholds())

    def step_weights(self, batch) -> torch.Tensor:
        weight = self.weights(batch.probs_u)  # the thresholds from before this step (USB's order)
        self.record(batch.probs_u, batch.u_index)
        return weight

    def record(self, probs: torch.Tensor, index: torch.Tensor) -> None:
        """Record the confident predictions of the samples at ``index``, then recompute beta."""
        n = self.ctx.num_unlabeled
        confidence, predicted = probs.max(dim=1)
        slot = torch.where(confidence >= self.hp["tau"], index, n)
        self.records.scatter_(0, slot, predicted)
        counts = record_counts(self.records[:n], self.ctx.num_classes)
        beta = learning_effect(counts, self.hp["flexmatch_warmup"])
        self.beta = torch.where(counts.max() < n, beta, self.beta)

    def end_epoch(self, epoch, view):
        return {"flexmatch_unused": (self.records[: self.ctx.num_unlabeled] == UNUSED).float().mean().item()}

    def state_dict(self):
        return {"records": self.records, "beta": self.beta}

    def load_state_dict(self, state):
        self.records = state["records"].to(self.ctx.device)
        self.beta = state["beta"].to(self.ctx.device)
