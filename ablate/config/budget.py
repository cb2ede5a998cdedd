"""The label budget's rules, in one place and without torch: the RAF-DB budgets, the three ways to ask for labeled
images (a config gives exactly one), and the split keys' Params.

``ablate.data.split`` applies them to a data set; the study schema, the composed trial configs and the results
tables read the same names from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ablate.config.params import Param

# budget -> (images of the class named "fear", images of each other class)
LABEL_BUDGETS: dict[int, tuple[int, int]] = {
    100: (10, 15),
    400: (40, 60),
    1000: (100, 150),
    2000: (200, 300),
    4000: (250, 625),
}
# The three ways to ask for labeled images; a config gives exactly one.
BUDGET_KEYS = ("labels", "labels_per_class", "label_fraction")
# Validation images per class unless a config says otherwise: the most every RAF-DB budget leaves room for,
# rounded down (fear: 281 training images, 250 labeled at 4000), and enough to rank trials on.
DEFAULT_VAL_PER_CLASS = 20

SPLIT_PARAMS = {
    "labels": Param(
        100,
        "a labeled budget of the RAF-DB protocol (fear takes 10/40/100/200/250, every other class "
        "15/60/150/300/625); for other data use labels_per_class or label_fraction",
        choices=tuple(LABEL_BUDGETS),
        nullable=True,
    ),
    "labels_per_class": Param(None, "labeled images per class (instead of labels)", kind=int, low=1),
    "label_fraction": Param(
        None,
        "fraction of each class's training images labeled, rounded, at least 1 (instead of labels)",
        kind=float,
        low=0.0,
        high=1.0,
        open_low=True,
    ),
    "split_seed": Param(0, "seed of the labeled/unlabeled/validation split, separate from the training seed"),
    "labeled_in_unlabeled": Param(
        False,
        "the unlabeled pool holds the labeled images too (true: USB's include_lb_to_ulb, its default, train.py:151-156 "
        "and semilearn/datasets/utils.py:49-50; FixMatch-pytorch's too) or only the images not labeled (false)",
    ),
    "val_per_class": Param(
        DEFAULT_VAL_PER_CLASS,
        "training images per class held out as a balanced validation split (disjoint from the labeled and "
        "unlabeled sets) that selects epochs and hyper-parameters; 20 fits every RAF-DB budget; 0: none",
        low=0,
    ),
}
# The same keys as dotted config keys (the columns of the results tables).
BUDGET_COLUMNS = tuple(f"data.{key}" for key in BUDGET_KEYS)
# The data keys that say which split a trial trained on: its budget, its seed and the validation size.
SPLIT_COLUMNS = (*BUDGET_COLUMNS, "data.split_seed", "data.val_per_class")


def set_budget(data_section: dict[str, Any], key: str, value: Any) -> None:
    """Set one budget key of a data section; a value (not null) clears the other two, so the section still asks
    for one budget. Null clears nothing: it only says that this way of asking is not used.

    For a study that searches or overlays one budget key (``data.labels_per_class: {choice: [5, 10]}``) on a base
    that gives another (the default ``labels: 100``). The value is checked when the section is resolved.
    """
    if key not in BUDGET_KEYS:
        raise ValueError(f"set_budget: {key!r} is not a budget key; allowed: {', '.join(BUDGET_KEYS)}")
    if value is not None:
        for other in BUDGET_KEYS:
            data_section[other] = None
    data_section[key] = value


def budget_text(split: Mapping[str, Any]) -> str:
    """The budget a resolved section asks for, as the user wrote it: ``data.labels=100``."""
    return ", ".join(f"data.{key}={split[key]!r}" for key in BUDGET_KEYS if split.get(key) is not None)
