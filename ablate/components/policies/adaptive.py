"""``adaptive``: Ada-CM's per-class adaptive confidence margins (Li et al., CVPR 2022, eq. 3-4; official code
``main.py:367-382``). After epoch t, for each class c, over the labeled samples of class c predicted correctly,

    T_c = max(floor, scale * mean max-softmax / (1 + e^(-t)))

starting at the floor; a class with no correct sample stays at the floor. A sample is confident when its
confidence reaches the threshold of its predicted class.

Where the statistics come from (``stats``): ``labeled_eval_ema``, the default, is the official code's: after each
epoch the evaluated model (the EMA teacher when ``ema`` is on) scores the whole labeled set in eval mode, its
images weakly augmented as in the official training loader (``stats_augment``). ``train_steps`` sums the student's
train-mode predictions of the labeled batches during the epoch's steps instead (no extra forward pass).
``update: step`` (with ``train_steps``) recomputes the margins every step over a running window of the latest
labeled predictions, with t the fractional epoch (the journal extension of Ada-CM moved the update to every
iteration).
"""

from __future__ import annotations

import math

import torch

from ablate.components.policies.base import Policy, hard_mask, register_policy
from ablate.config.params import Param


def adaptive_thresholds(conf_sum: torch.Tensor, count: torch.Tensor, epoch: float, floor: float, scale: float):
    """Ada-CM's margins from per-class sums and counts of the correct labeled samples' max-softmax."""
    mean = conf_sum / count.clamp(min=1)
    raw = scale * mean / (1.0 + math.exp(-epoch))
    margins = torch.clamp(raw, min=floor)
    return torch.where(count > 0, margins, torch.full_like(margins, floor))


def correct_confidence_stats(probs: torch.Tensor, labels: torch.Tensor, num_classes: int):
    """Per-class sum of max-probability and count over the correctly predicted labeled samples."""
    confidence, predicted = probs.detach().float().max(dim=1)
    correct = (predicted == labels).float()
    conf_sum = torch.zeros(num_classes, device=probs.device).index_add_(0, labels, confidence * correct)
    count = torch.zeros(num_classes, device=probs.device).index_add_(0, labels, correct)
    return conf_sum, count


@register_policy("adaptive")
class Adaptive(Policy):
    params = {
        "floor": Param(0.8, "adaptive: the lowest margin", low=0.0, high=1.0),
        "scale": Param(0.97, "adaptive: factor on the mean confidence", low=0.0, high=2.0, open_low=True),
        "stats": Param(
            "labeled_eval_ema",
            "adaptive: where the margins' statistics come from: the evaluated model on the whole labeled set after "
            "each epoch (labeled_eval_ema, Ada-CM's code, main.py:148) or the student's labeled batches during the "
            "epoch (train_steps, no extra forward)",
            choices=("train_steps", "labeled_eval_ema"),
        ),
        "stats_augment": Param(
            "weak",
            "adaptive, stats=labeled_eval_ema: the labeled images weakly augmented (Ada-CM scores its training "
            "loader) or plain",
            choices=("weak", "none"),
            when=("stats", "labeled_eval_ema"),
        ),
        "update": Param(
            "epoch",
            "adaptive, stats=train_steps: recompute the margins after each epoch or each step",
            choices=("epoch", "step"),
            when=("stats", "train_steps"),
        ),
        "window": Param(
            1024, "adaptive, update=step: labeled predictions in the running window", low=1, when=("update", "step")
        ),
    }

    def __init__(self, hp, ctx):
        super().__init__(hp, ctx)
        k = ctx.num_classes
        self._thresholds = torch.full((k,), float(hp["floor"]), device=ctx.device)
        self.conf_sum = torch.zeros(k, device=ctx.device)
        self.count = torch.zeros(k, device=ctx.device)
        self.window: list[tuple[torch.Tensor, torch.Tensor, int]] = []  # (conf_sum, count, size) of recent batches

    def weights(self, probs: torch.Tensor) -> torch.Tensor:
        return hard_mask(probs, self._thresholds)

    def thresholds(self) -> torch.Tensor:
        return self._thresholds

    def _margins(self, conf_sum: torch.Tensor, count: torch.Tensor, epoch: float) -> torch.Tensor:
        return adaptive_thresholds(conf_sum, count, epoch, self.hp["floor"], self.hp["scale"])

    def after_step(self, batch) -> None:
        if self.hp["stats"] != "train_steps":
            return
        probs = torch.softmax(batch.logits_l.detach().float(), dim=1)
        conf_sum, count = correct_confidence_stats(probs, batch.labels, self.ctx.num_classes)
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
        self._thresholds = self._margins(total_sum, total_count, batch.epoch)

    def end_epoch(self, epoch, view):
        if self.hp["stats"] == "labeled_eval_ema":
            probs, labels = view.predict("teacher", "labeled", self.hp["stats_augment"])
            self._thresholds = self._margins(*correct_confidence_stats(probs, labels, self.ctx.num_classes), epoch)
        elif self.hp["update"] == "epoch":
            self._thresholds = self._margins(self.conf_sum, self.count, epoch)
            self.conf_sum.zero_()
            self.count.zero_()
        return {}

    def state_dict(self):
        return {"thresholds": self._thresholds, "conf_sum": self.conf_sum, "count": self.count, "window": self.window}

    def load_state_dict(self, state):
        device = self.ctx.device
        self._thresholds = state["thresholds"].to(device)
        self.conf_sum = state["conf_sum"].to(device)
        self.count = state["count"].to(device)
        self.window = [(s.to(device), c.to(device), n) for s, c, n in state["window"]]
