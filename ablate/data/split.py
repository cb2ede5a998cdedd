"""The labeled / unlabeled / validation split of the SS-FER papers, and every rule of the label budget.

``labels: 100 | 400 | 1000 | 2000 | 4000`` follows the seeds' RAF-DB table: the class named ``fear`` takes
10/40/100/200/250 images and every other class 15/60/150/300/625. ``labels_per_class`` and ``label_fraction``
work for any data set; a config gives exactly one of the three (``labels: 100`` when it gives none). Each class
also gives ``val_per_class`` images to a balanced validation split (default 20, which every RAF-DB budget leaves
room for: at 4000 labels fear keeps 281 - 250 = 31 images), and the rest of the training set is unlabeled. The
three parts are disjoint and together cover the training split; the test split is never touched. Everything is
drawn with a generator seeded by ``split_seed`` alone, separate from the training seed. With
``labeled_in_unlabeled: true`` (USB's ``include_lb_to_ulb``) the unlabeled pool also holds the labeled images.

The budget's rules and the split keys' Params live in ``ablate.config.budget`` (no torch); this module applies
them: the one-budget check (``resolve_split``), the per-class counts, the checks against a data set
(``check_split``) and the split itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ablate.config.budget import BUDGET_KEYS, LABEL_BUDGETS, SPLIT_PARAMS, budget_text
from ablate.data.base import FaceSet
from ablate.data.registry import resolve_documented
from ablate.errors import ConfigError, DataError


@dataclass(frozen=True)
class LabeledSplit:
    """Index tensors into the training set: together they cover it; disjoint, except that the unlabeled pool holds
    the labeled images too with ``labeled_in_unlabeled``."""

    labeled: torch.Tensor
    unlabeled: torch.Tensor
    validation: torch.Tensor


# ---- the one-budget rule -----------------------------------------------------------------------------------


def resolve_split(given: Mapping[str, Any], where: str = "data") -> dict[str, Any]:
    """The split keys of a data section, checked by ``SPLIT_PARAMS``, defaults filled, with exactly one budget.

    ``labels`` takes its default (100) only when neither ``labels_per_class`` nor ``label_fraction`` is given:
    asking per class or by fraction replaces the default budget, while asking twice is an error.
    """
    given = dict(given)
    unknown = sorted(set(given) - set(SPLIT_PARAMS))
    if unknown:
        raise ConfigError(f"{where}: unknown split key {unknown[0]!r}; allowed: {', '.join(SPLIT_PARAMS)}")
    if "labels" not in given and any(given.get(key) is not None for key in BUDGET_KEYS[1:]):
        given["labels"] = None
    split = resolve_documented(where, given, SPLIT_PARAMS)
    asked = [f"{key}={split[key]!r}" for key in BUDGET_KEYS if split[key] is not None]
    if len(asked) != 1:
        raise ConfigError(
            f"{where}: give exactly one of labels, labels_per_class, label_fraction; got {', '.join(asked) or 'none'}"
        )
    return split


# ---- counts ------------------------------------------------------------------------------------------------


def per_class_counts(class_names: Sequence[str], split: Mapping[str, Any], available: Sequence[int]) -> list[int]:
    """How many labeled images each class gets under the budget of a resolved split section."""
    if split["labels"] is not None:
        if len(class_names) != 7 or "fear" not in class_names:
            raise DataError(
                f"data.labels: the budget table is for 7 classes including 'fear'; this data has "
                f"{list(class_names)}; use data.labels_per_class or data.label_fraction"
            )
        fear, other = LABEL_BUDGETS[split["labels"]]
        return [fear if name == "fear" else other for name in class_names]
    if split["labels_per_class"] is not None:
        return [split["labels_per_class"]] * len(class_names)
    return [max(1, round(split["label_fraction"] * n)) for n in available]


def check_counts(class_names: Sequence[str], available: Sequence[int], split: Mapping[str, Any]) -> list[int]:
    """The labeled count of each class; a DataError names the first class too small for labeled + validation,
    its numbers and the fix."""
    wanted = per_class_counts(class_names, split, available)
    val = split["val_per_class"]
    for c, name in enumerate(class_names):
        if available[c] == 0:
            raise DataError(
                f"class {name!r} has 0 training images; add training images of {name!r} or remove the class"
            )
        if wanted[c] + val > available[c]:
            room = min(a - w for a, w in zip(available, wanted))
            fix = "ask for fewer labels"
            if val and room >= 0:
                fix = f"set data.val_per_class to at most {room}, or {fix}"
            raise DataError(
                f"class {name!r} has {available[c]} training images; the split needs {wanted[c]} labeled "
                f"({budget_text(split)}) + {val} validation (data.val_per_class) = {wanted[c] + val}; {fix}"
            )
    return wanted


# ---- the split ---------------------------------------------------------------------------------------------


def make_split(train_labels: torch.Tensor, class_names: Sequence[str], **split_keys: Any) -> LabeledSplit:
    """Draw the labeled set and the validation hold-out per class with a generator seeded by ``split_seed``.

    ``split_keys`` are a data section's split keys (``SPLIT_PARAMS``: ``labels=400``, ``val_per_class=5``, ...);
    those left out take their defaults, and they are checked as a config's are.
    """
    split = resolve_split(split_keys)
    available = torch.bincount(train_labels, minlength=len(class_names)).tolist()
    wanted = check_counts(class_names, available, split)
    val = split["val_per_class"]
    generator = torch.Generator().manual_seed(split["split_seed"])
    labeled, validation = [], []
    for c in range(len(class_names)):
        members = torch.nonzero(train_labels == c).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        labeled.append(members[: wanted[c]])
        validation.append(members[wanted[c] : wanted[c] + val])
    labeled_idx = torch.sort(torch.cat(labeled)).values
    validation_idx = torch.sort(torch.cat(validation)).values
    taken = torch.zeros(len(train_labels), dtype=torch.bool)
    taken[labeled_idx] = True
    taken[validation_idx] = True
    unlabeled_idx = torch.nonzero(~taken).flatten()
    if split["labeled_in_unlabeled"]:
        unlabeled_idx = torch.sort(torch.cat([labeled_idx, unlabeled_idx])).values
    return LabeledSplit(labeled_idx, unlabeled_idx, validation_idx)


def split_keys(data_section: Mapping[str, Any]) -> dict[str, Any]:
    """The split keys of a data section (the rest names the source)."""
    return {key: data_section[key] for key in SPLIT_PARAMS if key in data_section}


def split_faces(faces: FaceSet, data_section: Mapping[str, Any]) -> LabeledSplit:
    """The split of a data section's training faces, as indices into the whole FaceSet (not into train)."""
    train = faces.indices("train")
    split = make_split(faces.labels[train], faces.class_names, **split_keys(data_section))
    return LabeledSplit(train[split.labeled], train[split.unlabeled], train[split.validation])


# ---- checks before training --------------------------------------------------------------------------------

REQUIRED_SPLITS = ("train", "test")


def check_split(faces: FaceSet, data_section: Mapping[str, Any], where: str) -> None:
    """Refuse, with one line naming ``where`` (the data's path), the class and the numbers, data that cannot train
    under this section: a missing or empty train or test split, a class with no training image, a class with
    fewer training images than its labeled budget plus the validation hold-out.

    Cheap (counts only): a driver calls it for every budget a study can sample, before any trial starts.
    """
    for name in REQUIRED_SPLITS:
        present = name in faces.split_names and len(faces.indices(name)) > 0
        if not present:
            has = [s for s in faces.split_names if len(faces.indices(s))]
            raise DataError(
                f"{where}: the data has no {name!r} split (it has: {', '.join(has) or 'nothing'}); training needs "
                f"'train' and 'test'. For the folder source name the split folders train/ and test/ (training/, "
                f"testing/ also work), or use the flat <root>/<class>/<image> layout, which carves a test split out"
            )
    split = resolve_split(split_keys(data_section))
    try:
        check_counts(faces.class_names, faces.class_counts("train"), split)
    except DataError as err:
        raise DataError(f"{where}: {err}") from None
