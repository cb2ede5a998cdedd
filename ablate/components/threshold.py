"""``threshold``: which unlabeled samples are confident enough to learn from their pseudo-label.

``fixed`` is FixMatch's one number. ``adaptive`` is Ada-CM's per-class margin: after epoch t, for each class c,
over the labeled samples correctly predicted with true class c,

    T_c = max(floor, scale * mean max-softmax / (1 + e^(-t)))

starting at the floor; a class with no correct sample stays at the floor. ``update: step`` recomputes the
margins every step over a running window of the latest labeled predictions, with t the fractional epoch (the
journal extension of Ada-CM moved the update to every iteration). An unlabeled sample is confident when its
confidence (the max of the mean of the two weak views' softmax) reaches the threshold of its predicted class.
"""

from __future__ import annotations

import math

import torch

from ablate.components.base import Component, StepBatch, register_component
from ablate.params import Param


def adaptive_thresholds(
    conf_sum: torch.Tensor, count: torch.Tensor, epoch: float, floor: float, scale: float
) -> torch.Tensor:
    """Ada-CM's margins from per-class sums and counts of the correct labeled samples' max-softmax."""
    mean = conf_sum / count.clamp(min=1)
    raw = scale * mean / (1.0 + math.exp(-epoch))
    margins = torch.clamp(raw, min=floor)
    return torch.where(count > 0, margins, torch.full_like(margins, floor))


def threshold_mask(probs: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """1.0 where a sample's max probability reaches the threshold of its predicted class, else 0.0."""
    confidence, predicted = probs.max(dim=1)
    return (confidence >= thresholds[predicted]).float()


def correct_confidence_stats(
    logits: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class sum of max-softmax and count over the correctly predicted labeled samples."""
    confidence, predicted = torch.softmax(logits.detach().float(), dim=1).max(dim=1)
    correct = (predicted == labels).float()
    conf_sum = torch.zeros(num_classes, device=logits.device).index_add_(0, labels, confidence * correct)
    count = torch.zeros(num_classes, device=logits.device).index_add_(0, labels, correct)
    return conf_sum, count


@register_component("threshold")
class Threshold(Component):
    name = "threshold"
    params = {
        "mode": Param("adaptive", "fixed (FixMatch) or adaptive (Ada-CM)", choices=("fixed", "adaptive")),
        "fixed": Param(0.95, "the fixed threshold", low=0.0, high=1.0, when=("mode", "fixed")),
        "floor": Param(0.8, "adaptive: the lowest margin", low=0.0, high=1.0, when=("mode", "adaptive")),
        "scale": Param(
            0.97, "adaptive: factor on the mean confidence", low=0.0, high=2.0, open_low=True, when=("mode", "adaptive")
        ),
        "update": Param(
            "epoch",
            "adaptive: recompute margins after each epoch or each step",
            choices=("epoch", "step"),
            when=("mode", "adaptive"),
        ),
        "window": Param(
            1024, "adaptive, update=step: labeled predictions in the running window", low=1, when=("update", "step")
        ),
    }

    def __init__(self, hp, ctx):
        super().__init__(hp, ctx)
        k = ctx.num_classes
        start = hp["fixed"] if hp["mode"] == "fixed" else hp["floor"]
        self.thresholds = torch.full((k,), float(start), device=ctx.device)
        self.conf_sum = torch.zeros(k, device=ctx.device)
        self.count = torch.zeros(k, device=ctx.device)
        self.window: list[tuple[torch.Tensor, torch.Tensor, int]] = []  # (conf_sum, count, size) of recent batches

    def prepare(self, batch: StepBatch) -> None:
        batch.mask = threshold_mask(batch.probs_u, self.thresholds)

    def loss(self, batch: StepBatch):
        metrics = {"mask_rate": batch.mask.mean().item()}
        if batch.u_true is not None and batch.mask.sum() > 0:
            right = (batch.pseudo_labels == batch.u_true).float()
            metrics["pseudo_acc"] = ((right * batch.mask).sum() / batch.mask.sum()).item()
        return None, metrics

    def after_step(self, batch: StepBatch, model) -> None:
        if self.hp["mode"] != "adaptive":
            return
        conf_sum, count = correct_confidence_stats(batch.logits_l, batch.labels, self.ctx.num_classes)
        if self.hp["update"] == "epoch":
            self.conf_sum += conf_sum
            self.count += count
            return
        self.window.append((conf_sum, count, len(batch.labels)))
        # Keep the fewest latest batches that still hold `window` labeled predictions.
        while len(self.window) > 1 and sum(n for _, _, n in self.window[1:]) >= self.hp["window"]:
            self.window.pop(0)
        total_sum = torch.stack([s for s, _, _ in self.window]).sum(dim=0)
        total_count = torch.stack([c for _, c, _ in self.window]).sum(dim=0)
        self.thresholds = adaptive_thresholds(total_sum, total_count, batch.epoch, self.hp["floor"], self.hp["scale"])

    def end_epoch(self, epoch: int) -> dict[str, float]:
        if self.hp["mode"] == "adaptive" and self.hp["update"] == "epoch":
            self.thresholds = adaptive_thresholds(self.conf_sum, self.count, epoch, self.hp["floor"], self.hp["scale"])
            self.conf_sum.zero_()
            self.count.zero_()
        return {f"threshold_{c}": t for c, t in enumerate(self.thresholds.tolist())}

    def state_dict(self):
        return {"thresholds": self.thresholds, "conf_sum": self.conf_sum, "count": self.count, "window": self.window}

    def load_state_dict(self, state):
        self.thresholds = state["thresholds"].to(self.ctx.device)
        self.conf_sum = state["conf_sum"].to(self.ctx.device)
        self.count = state["count"].to(self.ctx.device)
        self.window = [(s.to(self.ctx.device), c.to(self.ctx.device), n) for s, c, n in state["window"]]
