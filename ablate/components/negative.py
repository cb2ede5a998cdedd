"""``negative``: LION's subset II, negative learning with label disambiguation for the samples below the margin.

What follows the paper (Du et al., IJCAI 2023): the unlabeled samples below the threshold are not discarded;
each gets a candidate set S of plausible classes from its prediction, the classes outside S are complementary
("not this class") labels learnt with the negative-learning loss -log(1 - p_k), the number of complementary
labels a sample receives grows as training goes on, and the labels inside S are disambiguated.

What is this project's reconstruction (the paper has no public code), each a switch or a hyper-parameter:
- S = the fewest top classes whose summed probability (mean of the two weak views' softmax) reaches ``rho``,
  capped at K-1 so that at least one complementary label remains.
- Of the complement, a sample receives its ``n(t)`` least probable classes; ``n(t)`` follows ``schedule``:
  ``linear`` from ``start`` at the first step to K-1 at the last, ``step`` adding one every ``step_epochs``
  epochs, ``none`` the whole complement from the start.
- The complementary loss is the mean of -log(1 - p_k) over the (sample, class) pairs received, on the strong
  view, computed as logsumexp over the other classes minus logsumexp over all, so it never takes log(0).
- Disambiguation (``disambiguation: true``) is PiCO-style: a per-sample confidence table q over the classes,
  restricted to S and renormalised each time the sample is seen, then moved with momentum m toward the one-hot
  of the argmax within S; m goes linearly from ``momentum_start`` to ``momentum_end``. Its loss is
  -sum over S of q_j log p_j on the strong view, averaged over the samples below the threshold, weighted by
  ``disambiguation_weight`` inside this component.
"""

from __future__ import annotations

import math

import torch

from ablate.components.base import Component, StepBatch, register_component
from ablate.params import Param


def candidate_sets(probs: torch.Tensor, rho: float) -> torch.Tensor:
    """Boolean [N, K]: the fewest top classes whose summed probability reaches rho, at most K-1 of them."""
    k = probs.shape[1]
    sorted_probs, order = probs.sort(dim=1, descending=True)
    mass_before = sorted_probs.cumsum(dim=1) - sorted_probs
    # A class is in S when the classes ranked above it have not yet reached rho.
    in_set_sorted = mass_before < rho - 1e-12
    in_set_sorted[:, 0] = True
    in_set_sorted[:, k - 1] = False
    return torch.zeros_like(in_set_sorted).scatter(1, order, in_set_sorted)


def complementary_count(
    schedule: str, progress: float, epoch: float, num_classes: int, start: int, step_epochs: float
) -> int:
    """How many complementary labels a sample may receive at this point of training."""
    most = num_classes - 1
    if schedule == "none":
        return most
    if schedule == "linear":
        return min(most, start + math.floor((most - start) * progress + 1e-9))
    return min(most, start + math.floor(epoch / step_epochs + 1e-9))


def select_complementary(probs: torch.Tensor, candidates: torch.Tensor, count: int) -> torch.Tensor:
    """Boolean [N, K]: of the classes outside the candidate set, the ``count`` least probable."""
    outside = ~candidates
    # Rank the outside classes from the least probable; inside classes go last.
    score = probs.masked_fill(candidates, float("inf"))
    rank = score.argsort(dim=1).argsort(dim=1)
    return outside & (rank < count)


def complementary_loss(logits: torch.Tensor, complementary: torch.Tensor) -> torch.Tensor:
    """Mean over the chosen (sample, class) pairs of -log(1 - p_k), without ever taking log(0)."""
    if not complementary.any():
        return logits.new_zeros(())
    logits = logits.float()
    k = logits.shape[1]
    eye = torch.eye(k, dtype=torch.bool, device=logits.device)
    # log(1 - p_k) = logsumexp_{j != k} z_j - logsumexp_j z_j
    others = logits.unsqueeze(1).expand(-1, k, -1).masked_fill(eye, float("-inf"))
    log_not_k = torch.logsumexp(others, dim=2) - torch.logsumexp(logits, dim=1, keepdim=True)
    return -(log_not_k[complementary]).mean()


def update_confidence(
    table: torch.Tensor, probs: torch.Tensor, candidates: torch.Tensor, momentum: float
) -> torch.Tensor:
    """PiCO-style: restrict q to S and renormalise, then q <- m q + (1 - m) onehot(argmax of p within S)."""
    restricted = table * candidates
    total = restricted.sum(dim=1, keepdim=True)
    uniform = candidates.float() / candidates.sum(dim=1, keepdim=True)
    restricted = torch.where(total > 0, restricted / total.clamp(min=1e-12), uniform)
    best = probs.masked_fill(~candidates, float("-inf")).argmax(dim=1)
    onehot = torch.nn.functional.one_hot(best, probs.shape[1]).to(table.dtype)
    return momentum * restricted + (1.0 - momentum) * onehot


def partial_label_loss(logits: torch.Tensor, confidence: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """-sum over S of q_j log p_j, averaged over the samples."""
    if len(logits) == 0:
        return logits.new_zeros(())
    log_probs = torch.log_softmax(logits.float(), dim=1)
    return -(confidence * candidates * log_probs).sum(dim=1).mean()


@register_component("negative")
class Negative(Component):
    name = "negative"
    default_weight = 1.0
    needs = ("threshold",)
    params = {
        "rho": Param(
            0.9,
            "candidate set: the fewest top classes whose probability mass reaches rho",
            low=0.0,
            high=1.0,
            open_low=True,
        ),
        "schedule": Param("linear", "how the number of complementary labels grows", choices=("linear", "step", "none")),
        "start": Param(1, "complementary labels a sample may receive at the start", low=1),
        "step_epochs": Param(
            1.0, "schedule=step: epochs between increments", low=0.0, open_low=True, when=("schedule", "step")
        ),
        "disambiguation": Param(True, "the confidence table over the candidate set and its partial-label loss"),
        "disambiguation_weight": Param(
            1.0, "weight of the partial-label loss inside this component", low=0.0, when=("disambiguation", True)
        ),
        "momentum_start": Param(
            0.95, "confidence-table momentum at the start", low=0.0, high=1.0, when=("disambiguation", True)
        ),
        "momentum_end": Param(
            0.8, "confidence-table momentum at the end", low=0.0, high=1.0, when=("disambiguation", True)
        ),
    }

    def __init__(self, hp, ctx):
        super().__init__(hp, ctx)
        k = ctx.num_classes
        self.table = torch.full((ctx.num_unlabeled, k), 1.0 / k, device=ctx.device)

    def momentum(self, progress: float) -> float:
        return self.hp["momentum_start"] + (self.hp["momentum_end"] - self.hp["momentum_start"]) * progress

    def label_sets(self, probs: torch.Tensor, progress: float, epoch: float) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The candidate sets, the complementary labels received at this point of training, and their count."""
        candidates = candidate_sets(probs, self.hp["rho"])
        count = complementary_count(
            self.hp["schedule"], progress, epoch, self.ctx.num_classes, self.hp["start"], self.hp["step_epochs"]
        )
        return candidates, select_complementary(probs, candidates, count), count

    def loss(self, batch: StepBatch):
        below = batch.mask < 0.5
        probs = batch.probs_u[below]
        candidates, complementary, count = self.label_sets(probs, batch.progress, batch.epoch)
        logits = batch.logits_s[below]
        loss = complementary_loss(logits, complementary)
        metrics = {"neg_count": float(count), "neg_samples": float(below.sum().item())}
        if self.hp["disambiguation"] and len(probs):
            index = batch.u_index[below]
            self.table[index] = update_confidence(self.table[index], probs, candidates, self.momentum(batch.progress))
            pl = partial_label_loss(logits, self.table[index], candidates)
            loss = loss + self.hp["disambiguation_weight"] * pl
            metrics["partial_label_loss"] = pl.item()
        if batch.u_true is not None and len(probs):
            metrics.update(
                negative_correctness(
                    candidates,
                    complementary,
                    batch.u_true[below],
                    None if batch.u_soft is None else batch.u_soft[below],
                )
            )
        return loss, metrics

    def state_dict(self):
        return {"table": self.table}

    def load_state_dict(self, state):
        self.table = state["table"].to(self.ctx.device)


def negative_correctness(
    candidates: torch.Tensor, complementary: torch.Tensor, true: torch.Tensor, soft: torch.Tensor | None
) -> dict[str, float]:
    """Against the hidden labels: the share of candidate sets that hold the true class, of complementary labels
    that are truly wrong, and (with soft labels) the soft-label mass inside S and on complementary labels."""
    metrics = {"candidate_holds_true": candidates.gather(1, true[:, None]).float().mean().item()}
    if complementary.any():
        is_true = torch.nn.functional.one_hot(true, candidates.shape[1]).bool()
        metrics["complementary_truly_wrong"] = 1.0 - (complementary & is_true).sum().item() / complementary.sum().item()
    if soft is not None:
        metrics["candidate_soft_mass"] = (soft * candidates).sum(dim=1).mean().item()
        if complementary.any():
            metrics["complementary_soft_mass"] = (soft[complementary]).mean().item()
    return metrics
