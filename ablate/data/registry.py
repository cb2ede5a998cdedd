"""The registry of data sources, looked up by the name a config or ``--data NAME:PATH`` uses."""

from __future__ import annotations

from ablate.registry import Registry

# Each entry is a loader: loader(path: str | None, **options) -> FaceSet.
DATASETS: Registry = Registry("dataset")
register_dataset = DATASETS.register
