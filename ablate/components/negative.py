"""``negative``: LION's subset II, negative learning with label disambiguation for the samples below the margin.

What follows the paper (Du et al., IJCAI 2023): the unlabeled samples below the threshold are not discarded;
each gets a candidate set S of plausible classes from its prediction, the classes outside S are complementary
("not this class") labels learnt with the negative-learning loss -log(1 - p_k), the number of complementary
labels a sample receives grows as training goes on, and the labels inside S are disambiguated.

Why there is a reconstruction at all: no official code could be found. A search of public GitHub code, issues,
web pages and docs for the title, the authors, the citation key (du2023lion) and the method's vocabulary found
only the README of an official repository (its location not given by the index): "the official PyTorch
implementation of our IJCAI 2023 paper", with Ada-CM's environment (Python 3.6.9, PyTorch 1.3.0, torchvision
0.4.1), Ada-CM's label-budget table and ``python main.py``, but no training code. The same group's later code
(SIT-FER) is derived from Ada-CM's and keeps one unused helper that builds a one-hot candidate mask
(``utils/generate_labelset.py``), which does not reveal LION's algorithm. So LION's code was most likely built on
Ada-CM's (its data split, augmentation, optimiser and EMA: see presets/adacm.yaml), an inference only. The
formulas below are this project's choices, made to fit the paper's description above; the paper (IJCAI 2023,
pp. 699-707, doi 10.24963/ijcai.2023/78) is what to check them against.

What is this project's reconstruction, each a switch or a hyper-parameter:
- S = the fewest top classes whose summed probability (the trainer's ``probs_u``: the weak views' softmax)
  reaches ``rho``, capped at K-1 so that at least one complementary label remains.
- Of the complement, a sample receives its ``n(t)`` least probable classes; ``n(t)`` follows ``schedule``:
  ``linear`` from ``start`` at the first step to K-1 at the last (``start + floor((K-1-start) s / (N-1))`` at
  step s of N, counted from 0), ``step`` adding one every ``step_epochs`` epochs, ``none`` the whole complement
  from the start.
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
from typing import Any

import torch

from ablate.components.base import Component, Ratio, StepBatch, register_component
from ablate.config.params import Param


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


def complementary_loss(logits: torch.Tensor, complementary: torch.Tensor, member: torch.Tensor) -> torch.Tensor:
    """Mean of -log(1 - p_k) over the chosen (sample, class) pairs, each pair weighted by its sample's membership
    of subset II; never takes log(0)."""
    logits = logits.float()
    k = logits.shape[1]
    eye = torch.eye(k, dtype=torch.bool, device=logits.device)
    # log(1 - p_k) = logsumexp_{j != k} z_j - logsumexp_j z_j
    others = logits.unsqueeze(1).expand(-1, k, -1).masked_fill(eye, float("-inf"))
    log_not_k = torch.logsumexp(others, dim=2) - torch.logsumexp(logits, dim=1, keepdim=True)
    pair_weight = complementary.float() * member.unsqueeze(1)
    return -(log_not_k * pair_weight).sum() / pair_weight.sum().clamp(min=1e-12)


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


def partial_label_loss(logits: torch.Tensor, confidence: torch.Tensor, candidates: torch.Tensor,
                       member: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """-sum over S of q_j log p_j, averaged over the samples weighted by their membership of subset II."""
    log_probs = torch.log_softmax(logits.float(), dim=1)
    per_sample = -(confidence * candidates * log_probs).sum(dim=1)
    return (per_sample * member).sum() / member.sum().clamp(min=1e-12)


@register_component("negative")
class Negative(Component):
    default_weight = 1.0
    needs = ("policy",)
    grad_views = frozenset({"strong"})
    reports = ("neg_count", "neg_samples", "partial_label_loss", "candidate_holds_true", "complementary_truly_wrong")
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

    def schedule_progress(self, progress: float) -> float:
        """Training progress on the step grid's own scale: 0 at the first step, 1 at the last (``progress`` is
        s / N at step s of N, so it never reaches 1 during training and the linear schedule would stop short)."""
        total = self.ctx.steps_per_epoch * self.ctx.epochs
        return 1.0 if total <= 1 else min(1.0, progress * total / (total - 1))

    def label_sets(self, probs: torch.Tensor, progress: float, epoch: float) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The candidate sets, the complementary labels received at this point of training, and their count."""
        candidates = candidate_sets(probs, self.hp["rho"])
        count = complementary_count(
            self.hp["schedule"], self.schedule_progress(progress), epoch, self.ctx.num_classes, self.hp["start"],
            self.hp["step_epochs"],
        )  # fmt: skip
        return candidates, select_complementary(probs, candidates, count), count

    def loss(self, batch: StepBatch):
        member = 1.0 - batch.weight  # subset II: the samples below the threshold
        probs = batch.probs_u
        candidates, complementary, count = self.label_sets(probs, batch.progress, batch.epoch)
        loss = complementary_loss(batch.logits_s, complementary, member)
        metrics: dict[str, Any] = {"neg_count": float(count), "neg_samples": member.sum()}
        if self.hp["disambiguation"]:
            index = batch.u_index
            updated = update_confidence(self.table[index], probs, candidates, self.momentum(batch.progress))
            self.table[index] = torch.where(member.unsqueeze(1) > 0, updated, self.table[index])
            partial = partial_label_loss(batch.logits_s, self.table[index], candidates, member)
            loss = loss + self.hp["disambiguation_weight"] * partial
            metrics["partial_label_loss"] = partial.detach()
        if batch.u_true is not None:
            metrics.update(negative_correctness(candidates, complementary, batch.u_true, batch.u_soft, member))
        return loss, metrics

    def diagnose(self, probs, weight, true, soft, progress, epoch):
        candidates, complementary, _ = self.label_sets(probs, progress, epoch)
        ratios = negative_correctness(candidates, complementary, true, soft, 1.0 - weight)
        return {key: (r.num / r.den).item() for key, r in ratios.items() if r.den.item() > 0}

    def state_dict(self):
        return {"table": self.table}

    def load_state_dict(self, state):
        self.table = state["table"].to(self.ctx.device)


def negative_correctness(candidates: torch.Tensor, complementary: torch.Tensor, true: torch.Tensor,
                         soft: torch.Tensor | None, member: torch.Tensor) -> dict[str, Ratio]:  # fmt: skip
    """Against the hidden labels, over the members of subset II (weighted by membership): the share of candidate
    sets that hold the true class, of complementary labels that are truly wrong, and (with soft labels) the
    soft-label mass inside S and on complementary labels."""
    is_true = torch.nn.functional.one_hot(true, candidates.shape[1]).bool()
    pair_weight = complementary.float() * member.unsqueeze(1)
    pairs = pair_weight.sum()
    metrics = {
        "candidate_holds_true": Ratio((candidates & is_true).any(dim=1).float().mul(member).sum(), member.sum()),
        "complementary_truly_wrong": Ratio(pairs - (pair_weight * is_true).sum(), pairs),
    }
    if soft is not None:
        metrics["candidate_soft_mass"] = Ratio(((soft * candidates).sum(dim=1) * member).sum(), member.sum())
        metrics["complementary_soft_mass"] = Ratio((soft * pair_weight).sum(), pairs)
    return metrics
