"""The metrics of an epoch, named in one place: classification metrics of a split, and the bookkeeping of
validation selection.

Selection follows DomainBed: a number is only as honest as the split it was selected on. Each epoch reports,
beside its own metrics:

- ``best_val_acc`` / ``best_val_mean_class_acc``: the best validation value so far (what a search optimises, fair
  to a trial that ASHA stopped early);
- ``best_val_epoch``: the epoch with the best validation accuracy so far (the latest one among ties: with a
  cosine schedule a later epoch of equal validation accuracy is the more settled model);
- ``test_acc_at_best_val`` / ``test_mean_class_acc_at_best_val``: the test metrics of that epoch, the numbers
  tables and figures show;
- ``best_test_acc`` / ``best_test_mean_class_acc``: the best test value so far, an *oracle* (selected on test),
  kept only so that a study can show how much test selection flatters a method.

The validation split holds the same number of faces per class, so its accuracy is its mean class accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

CLASSIFICATION = ("acc", "mean_class_acc")  # per split: {split}_{name}
SPLITS = ("val", "test")
SELECT_ON = "val_acc"  # the metric that picks an epoch
VAL_METRICS = tuple(f"val_{name}" for name in CLASSIFICATION)
TEST_METRICS = tuple(f"test_{name}" for name in CLASSIFICATION)
AT_BEST_VAL = tuple(f"{metric}_at_best_val" for metric in TEST_METRICS)
ORACLE = tuple(f"best_{metric}" for metric in TEST_METRICS)
# What a search may optimise without saying that it selects on test; the rest needs search.select_on_test.
SEARCH_METRICS = (*VAL_METRICS, *(f"best_{m}" for m in VAL_METRICS))
TEST_SELECTED_METRICS = (*TEST_METRICS, *ORACLE)


def classification_metrics(probs: torch.Tensor, labels: torch.Tensor, class_names, prefix: str) -> dict[str, Any]:
    """Accuracy, mean class accuracy, per-class accuracy and the confusion matrix (rows: true class)."""
    import torch  # here, so that reading results (analysis, reports) never imports torch

    k = len(class_names)
    predicted = probs.argmax(dim=1)
    confusion = torch.bincount(labels * k + predicted, minlength=k * k).reshape(k, k)
    per_class = confusion.diag().float() / confusion.sum(dim=1).clamp(min=1).float()
    present = confusion.sum(dim=1) > 0
    metrics: dict[str, Any] = {
        f"{prefix}_acc": (predicted == labels).float().mean().item() if len(labels) else 0.0,
        f"{prefix}_mean_class_acc": per_class[present].mean().item() if present.any() else 0.0,
        f"{prefix}_confusion": confusion.tolist(),
    }
    metrics.update({f"{prefix}_acc_{name}": per_class[c].item() for c, name in enumerate(class_names)})
    return metrics


CORRECT = "val_correct"  # which validation faces an epoch got right, packed (for resampling the faces)


HEX = "hex:"  # so that no packed value reads as a number (MLflow logs whatever float() accepts: "1e10")


def pack_correct(correct: Sequence[bool]) -> str:
    """Right (1) or wrong (0) per face, in the split's order: ``hex:N:DIGITS`` with N the number of faces and 4
    faces a hex digit (the first face the highest bit, the last digit padded with 0s)."""
    bits = "".join("1" if c else "0" for c in correct)
    n = len(bits)
    bits += "0" * (-n % 4)
    return f"{HEX}{n}:" + "".join(f"{int(bits[i : i + 4], 2):x}" for i in range(0, len(bits), 4))


def unpack_correct(packed: str) -> list[bool]:
    """The inverse of ``pack_correct``; ValueError when ``packed`` is not of its form."""
    try:
        head, count, digits = packed.split(":")
        n = int(count)
        bits = "".join(f"{int(d, 16):04b}" for d in digits)
    except ValueError:
        raise ValueError(f"{packed[:20]!r}: not a packed hex:N:DIGITS value") from None
    if f"{head}:" != HEX or len(digits) != -(-n // 4):
        raise ValueError(f"{packed[:20]!r}: not a packed hex:N:DIGITS value of {n} faces")
    return [b == "1" for b in bits[:n]]


def selection_metrics(history: Sequence[dict[str, Any]], current: dict[str, Any]) -> dict[str, Any]:
    """The selection bookkeeping of ``current``, the epoch after ``history`` (see the module docstring)."""
    epochs = [*history, current]
    out: dict[str, Any] = {}
    for metric in (*VAL_METRICS, *TEST_METRICS):
        values = [e[metric] for e in epochs if e.get(metric) is not None]
        if values:
            out[f"best_{metric}"] = max(values)
    scored = [e for e in epochs if e.get(SELECT_ON) is not None]
    if scored:
        best = max(reversed(scored), key=lambda e: e[SELECT_ON])  # reversed: the latest epoch wins a tie
        out["best_val_epoch"] = best["epoch"]
        for metric in TEST_METRICS:
            if metric in best:
                out[f"{metric}_at_best_val"] = best[metric]
    return out
