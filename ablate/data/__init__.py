"""Data sources (one module each), the labeled/unlabeled split protocol and the decoded-image cache."""

from __future__ import annotations

import inspect

# Importing the source modules registers them.
from ablate.data import fer2013, folder, rafdb, synthfer  # noqa: F401
from ablate.data.base import FaceSet
from ablate.data.registry import DATASETS, register_dataset
from ablate.errors import ConfigError
from ablate.params import Param


def load_dataset(name: str, path: str | None = None, **options) -> FaceSet:
    """Load the data source registered as ``name`` (``synthfer``, ``rafdb``, ``fer2013``, ``folder``)."""
    return DATASETS.get(name)(path, **options)


__all__ = ["DATASETS", "FaceSet", "load_dataset", "register_dataset"]


# The data section of a config: which source, and how its training set is split.
DATA_PARAMS = {
    "name": Param("synthfer", "the data source: synthfer, rafdb, fer2013 or folder"),
    "path": Param(None, "where a real source lies (synthfer needs none)", kind=str),
    "options": Param({}, "the source's own options, e.g. image_size, scale, seed (synthfer), skip_corrupt"),
    "labels": Param(
        100,
        "a labeled budget of the RAF-DB protocol: 100, 400, 1000, 2000 or 4000",
        choices=(100, 400, 1000, 2000, 4000),
        nullable=True,
    ),
    "labels_per_class": Param(None, "labeled images per class (instead of labels)", kind=int, low=1),
    "label_fraction": Param(
        None, "fraction of each class labeled (instead of labels)", kind=float, low=0.0, high=1.0, open_low=True
    ),
    "split_seed": Param(0, "seed of the labeled/unlabeled split, separate from the training seed"),
    "val_per_class": Param(0, "images per class held out of train for validation", low=0),
}


def check_source_options(name: str, options: dict) -> None:
    """Refuse options the source's loader does not take, before anything is loaded."""
    loader = DATASETS.get(name)
    accepted = [
        p
        for p in inspect.signature(loader).parameters.values()
        if p.kind == p.KEYWORD_ONLY or (p.kind == p.POSITIONAL_OR_KEYWORD and p.name != "path")
    ]
    names = [p.name for p in accepted]
    for key in options:
        if key not in names:
            raise ConfigError(f"data.options: {name} has no option {key!r}; allowed: {', '.join(names)}")


def load_data(section: dict) -> FaceSet:
    """Load the data a resolved config's ``data`` section names."""
    return load_dataset(section["name"], section["path"], **section["options"])
