"""Data sources (one module each), the labeled/unlabeled split protocol and the decoded-image cache."""

from __future__ import annotations

from ablate.data.base import FaceSet
from ablate.data.registry import DATASETS, register_dataset

# Importing the source modules registers them.  TEMPORARY guard while the modules are being written.
import importlib as _importlib

for _name in ("synthfer", "rafdb", "fer2013", "folder"):
    try:
        _importlib.import_module(f"ablate.data.{_name}")
    except ModuleNotFoundError as _err:
        if _err.name != f"ablate.data.{_name}":
            raise


def load_dataset(name: str, path: str | None = None, **options) -> FaceSet:
    """Load the data source registered as ``name`` (``synthfer``, ``rafdb``, ``fer2013``, ``folder``)."""
    return DATASETS.get(name)(path, **options)


__all__ = ["FaceSet", "DATASETS", "register_dataset", "load_dataset"]
