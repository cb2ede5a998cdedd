"""``leaf_pseudo_label``: LEAF's decoupled pseudo-label loss (``topk_ce_FPL``, zfkarl/LEAF ``Code_LEAF/main.py:
486-532``, used at ``main.py:302-311``), in place of Ada-CM's cross-entropy on the strong view (weight 1.0).

For each unlabeled face, from p = softmax of the *mean of the two weak views' logits* (detached; ``main.py:304,
488``) sorted p_1 >= p_2 >= ..., with c_j = p_1 + ... + p_j:

- positives: the top n classes, n the smallest of 1 .. max_k - 1 with c_(n+1) >= ``cumulative``, else max_k
  (``main.py:499-509``). The test reads the cumulative probability *one class further* than the positives: with
  p = (0.6, 0.35, ...) c_2 = 0.95 reaches 0.9, so only class 1 is positive. The rest are negatives.
- the loss: softplus(logsumexp over positives of -z + logsumexp over negatives of z), z the strong view's logits
  (``main.py:524-531``), i.e. log(1 + sum over positive P, negative N of exp(z_N - z_P)).
- a confidence weight from m = c_(n+1) / (n + 1) and q = p_(n+1), capped at 1 (``main.py:511-520,532``): concave
  log(1 + 50 (m - q)) / log(1 + 50 m) (the default, ``main.py:486``), linear (m - q) / m, convex (m - q) / (q + m).

Then (``main.py:303-311``) Lu = mean(loss * weight) over the batch, rescaled by Lu_base / Lu with Lu_base the plain
cross-entropy of the strong view against the argmax of the averaged weak *probabilities* (the pseudo-label), the
ratio taken with ``.item()``: a constant, so the term's value is Lu_base x the mask's mean while its gradient is
the decoupled loss's, scaled. The mask is Ada-CM's (the policy's weight). ``mask``:

- ``official``: Lu is a scalar before it meets the per-sample mask (``main.py:307,310-311``), so the mask scales
  the batch mean by the fraction of confident faces instead of selecting them: every face learns, the
  unconfident ones too.
- ``per_sample``: the reading the method describes: mean(loss * weight * mask) x the same ratio, so only the
  faces above the margins learn from their pseudo-labels.

Where mean(loss * weight) is exactly 0 (every face uniform) the official ratio divides by zero; the term is 0 here.
The top-k always comes from the student's weak views, as in the official code (no teacher gives pseudo-labels).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ablate.components.base import Component, StepBatch, register_component
from ablate.config.params import Param
from ablate.errors import ConfigError

CONCAVITY = 50.0  # the concave weight's constant (main.py:518-520)


def decoupled_targets(probs: torch.Tensor, max_k: int, cumulative: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The positive classes [B, C] (bool) of probabilities [B, C], and (m, q) [B, 2] for the weight."""
    top_p, top_i = probs.topk(max_k + 1, dim=1)
    cum = top_p.cumsum(dim=1)
    reached = cum[:, 1:max_k] >= cumulative  # column j: c_(j+2) reached, i.e. j + 1 positives suffice
    first = reached.float().argmax(dim=1) + 1  # argmax gives the first maximum
    count = torch.where(reached.any(dim=1), first, torch.full_like(first, max_k))
    ranks = torch.arange(max_k + 1, device=probs.device).unsqueeze(0) < count.unsqueeze(1)
    positive = torch.zeros_like(probs, dtype=torch.bool).scatter(1, top_i, ranks)
    mean = cum.gather(1, count.unsqueeze(1)).squeeze(1) / (count + 1)
    next_p = top_p.gather(1, count.unsqueeze(1)).squeeze(1)
    return positive, torch.stack([mean, next_p], dim=1)


def confidence_weight(mean_and_next: torch.Tensor, weighting: str) -> torch.Tensor:
    m, q = mean_and_next.unbind(dim=1)
    if weighting == "concave":
        w = torch.log1p(CONCAVITY * (m - q)) / torch.log1p(CONCAVITY * m)
    elif weighting == "linear":
        w = (m - q) / m
    elif weighting == "convex":
        w = (m - q) / (q + m)
    else:
        raise ConfigError(f"components.leaf_pseudo_label.weighting: {weighting!r}; allowed: concave, linear, convex")
    return w.clamp(max=1.0)


def decoupled_loss(logits_strong: torch.Tensor, logits_weak_mean: torch.Tensor, max_k: int = 3,
                   cumulative: float = 0.9, weighting: str = "concave") -> tuple[torch.Tensor, ...]:  # fmt: skip
    """Per face: the decoupled loss [B], its confidence weight [B] and the positive classes [B, C]."""
    probs = logits_weak_mean.detach().float().softmax(dim=1)
    positive, mean_and_next = decoupled_targets(probs, max_k, cumulative)
    z = logits_strong.float()
    pos = torch.logsumexp((-z).masked_fill(~positive, float("-inf")), dim=1)
    neg = torch.logsumexp(z.masked_fill(positive, float("-inf")), dim=1)
    return F.softplus(pos + neg), confidence_weight(mean_and_next, weighting), positive


def leaf_unlabeled_loss(
    logits_strong: torch.Tensor,
    logits_weak_mean: torch.Tensor,
    pseudo_labels: torch.Tensor,
    mask: torch.Tensor,
    reading: str = "official",
    **options: object,
) -> tuple[torch.Tensor, ...]:
    """LEAF's Lu (main.py:302-311): the weighted decoupled loss rescaled to the plain cross-entropy's value and
    masked as ``reading`` says; also returns the weights and positives for the metrics."""
    per_face, weight, positive = decoupled_loss(logits_strong, logits_weak_mean, **options)
    base = F.cross_entropy(logits_strong.float().detach(), pseudo_labels)
    weighted = per_face * weight
    scale = weighted.mean().detach()
    ratio = torch.where(scale > 0, base / scale, torch.zeros_like(scale))  # .item() in the official code: a constant
    if reading == "official":
        loss = weighted.mean() * ratio * mask.float().mean()
    elif reading == "per_sample":
        loss = (weighted * mask.float()).mean() * ratio
    else:
        raise ConfigError(f"components.leaf_pseudo_label.mask: {reading!r}; allowed: official, per_sample")
    return loss, weight, positive


@register_component("leaf_pseudo_label")
class LeafPseudoLabel(Component):
    default_weight = 1.0  # loss = Lx * 0.5 + Lu + Ls * 0.1 (main.py:314)
    needs = ("policy",)
    grad_views = frozenset({"strong"})
    params = {
        "max_k": Param(3, "most positive classes per face (LEAF: temp_k=3, zfkarl/LEAF Code_LEAF/main.py:486)", low=1),
        "cumulative": Param(
            0.9,
            "cumulative probability that ends the positives, read one class past them (LEAF: threshold=0.90, "
            "Code_LEAF/main.py:486,508)",
            low=0.0,
            high=1.0,
            open_low=True,
        ),
        "weighting": Param(
            "concave",
            "the confidence weight: concave (LEAF, Code_LEAF/main.py:486,517-520), linear or convex (main.py:511-516)",
            choices=("concave", "linear", "convex"),
        ),
        "mask": Param(
            "official",
            "official: the policy's mask scales the batch-mean loss (LEAF, Code_LEAF/main.py:307-311); "
            "per_sample: it weighs each face's loss (the loss is rescaled by CE / mean(loss x weight) in both)",
            choices=("official", "per_sample"),
        ),
    }
    reports = ("leaf_positives", "leaf_weight")

    def __init__(self, hp, ctx):
        super().__init__(hp, ctx)
        if ctx.num_classes < hp["max_k"] + 1:
            raise ConfigError(
                f"components.leaf_pseudo_label.max_k: {hp['max_k']} needs at least {hp['max_k'] + 1} classes "
                f"(the top max_k + 1), the data has {ctx.num_classes}"
            )

    def loss(self, batch: StepBatch):
        logits_weak_mean = (batch.logits_w1.detach() + batch.logits_w2.detach()) / 2  # main.py:304
        loss, weight, positive = leaf_unlabeled_loss(
            batch.logits_s, logits_weak_mean, batch.pseudo_labels, batch.weight, self.hp["mask"],
            max_k=self.hp["max_k"], cumulative=self.hp["cumulative"], weighting=self.hp["weighting"],
        )  # fmt: skip
        return loss, {"leaf_positives": positive.sum(dim=1).float().mean(), "leaf_weight": weight.mean()}
