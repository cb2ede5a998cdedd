"""The labeled/unlabeled split protocol of the SS-FER papers, seeded by ``split_seed`` alone.

``labels: 100 | 400 | 1000 | 2000 | 4000`` follows the seeds' RAF-DB table: the class named ``fear`` takes
10/40/100/200/250 images and every other class 15/60/150/300/625. ``labels_per_class`` and ``label_fraction``
work for any data set. The rest of the training set (less an optional validation hold-out) is unlabeled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ablate.errors import ConfigError, DataError

# budget -> (images of the class named "fear", images of each other class)
LABEL_BUDGETS: dict[int, tuple[int, int]] = {
    100: (10, 15),
    400: (40, 60),
    1000: (100, 150),
    2000: (200, 300),
    4000: (250, 625),
}


@dataclass(frozen=True)
class LabeledSplit:
    """Index tensors into the training set: disjoint, and together they cover it."""

    labeled: torch.Tensor
    unlabeled: torch.Tensor
    validation: torch.Tensor


def per_class_counts(
    class_names: Sequence[str],
    *,
    labels: int | None = None,
    labels_per_class: int | None = None,
    label_fraction: float | None = None,
    available: Sequence[int],
) -> list[int]:
    """How many labeled images each class gets under exactly one of the three ways to ask."""
    given = {
        k: v
        for k, v in (("labels", labels), ("labels_per_class", labels_per_class), ("label_fraction", label_fraction))
        if v is not None
    }
    if len(given) != 1:
        raise ConfigError(
            f"data: give exactly one of labels, labels_per_class, label_fraction; got {sorted(given) or 'none'}"
        )
    if labels is not None:
        if labels not in LABEL_BUDGETS:
            raise ConfigError(
                f"data.labels: {labels!r} is not a budget of the protocol; allowed: {sorted(LABEL_BUDGETS)} (or use labels_per_class / label_fraction)"
            )
        if len(class_names) != 7 or "fear" not in class_names:
            raise ConfigError(
                f"data.labels: the budget table is for 7 classes including 'fear'; this data has {list(class_names)}; use labels_per_class or label_fraction"
            )
        fear, other = LABEL_BUDGETS[labels]
        return [fear if name == "fear" else other for name in class_names]
    if labels_per_class is not None:
        if isinstance(labels_per_class, bool) or not isinstance(labels_per_class, int) or labels_per_class < 1:
            raise ConfigError(f"data.labels_per_class: must be an integer >= 1, got {labels_per_class!r}")
        return [labels_per_class] * len(class_names)
    if not 0.0 < label_fraction <= 1.0:  # type: ignore[operator]
        raise ConfigError(f"data.label_fraction: must be in (0, 1], got {label_fraction!r}")
    return [max(1, round(label_fraction * n)) for n in available]  # type: ignore[operator]


def make_split(
    train_labels: torch.Tensor,
    class_names: Sequence[str],
    *,
    labels: int | None = None,
    labels_per_class: int | None = None,
    label_fraction: float | None = None,
    split_seed: int = 0,
    val_per_class: int = 0,
) -> LabeledSplit:
    """Draw the labeled set (and a validation hold-out) per class with a generator seeded by ``split_seed``."""
    available = torch.bincount(train_labels, minlength=len(class_names)).tolist()
    wanted = per_class_counts(
        class_names,
        labels=labels,
        labels_per_class=labels_per_class,
        label_fraction=label_fraction,
        available=available,
    )
    if val_per_class < 0:
        raise ConfigError(f"data.val_per_class: must be >= 0, got {val_per_class}")
    generator = torch.Generator().manual_seed(split_seed)
    labeled, validation = [], []
    for c, name in enumerate(class_names):
        need = wanted[c] + val_per_class
        if need > available[c]:
            raise DataError(
                f"class {name!r} has {available[c]} training images; the split needs {wanted[c]} labeled"
                f"{f' + {val_per_class} validation' if val_per_class else ''}. Ask for fewer labels"
            )
        members = torch.nonzero(train_labels == c).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        labeled.append(members[: wanted[c]])
        validation.append(members[wanted[c] : need])
    labeled_idx = torch.sort(torch.cat(labeled)).values
    validation_idx = torch.sort(torch.cat(validation)).values
    taken = torch.zeros(len(train_labels), dtype=torch.bool)
    taken[labeled_idx] = True
    taken[validation_idx] = True
    return LabeledSplit(labeled_idx, torch.nonzero(~taken).flatten(), validation_idx)
