"""Data sources (one module each, registered with their options), the labeled/unlabeled/validation split protocol,
the ``data`` section of a config, and the decoded-image cache."""

from __future__ import annotations

from ablate.config.budget import set_budget

# Importing the source modules registers them.
from ablate.data import fer2013, folder, rafdb, synthfer
from ablate.data.base import FaceSet
from ablate.data.registry import DATASETS, load_dataset, register_dataset, source_options
from ablate.data.section import DATA_PARAMS, load_data, resolve_data_section, source_label
from ablate.data.split import check_split

__all__ = [
    "DATASETS",
    "DATA_PARAMS",
    "FaceSet",
    "check_split",
    "fer2013",
    "folder",
    "load_data",
    "load_dataset",
    "rafdb",
    "register_dataset",
    "resolve_data_section",
    "set_budget",
    "source_label",
    "source_options",
    "synthfer",
]
