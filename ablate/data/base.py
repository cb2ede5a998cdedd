"""The one kind of object every data source returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ablate.errors import DataError


@dataclass(frozen=True)
class FaceSet:
    """Decoded images of one data source, every split together.

    images:      uint8 [N, C, H, W] (C = 3, RGB; BGR after load_dataset when data.options.channel_order is bgr)
    labels:      int64 [N], 0..K-1, indexing class_names
    split:       int64 [N], indexing split_names ("train", "test", and "validation" where a source has one)
    soft_labels: float32 [N, K] or None; the blend each image was made from (synthetic data only)
    skipped:     files that could not be decoded and were skipped because the caller asked for that
    """

    images: torch.Tensor
    labels: torch.Tensor
    split: torch.Tensor
    split_names: tuple[str, ...]
    class_names: tuple[str, ...]
    soft_labels: torch.Tensor | None = None
    skipped: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {self.images.dtype} {tuple(self.images.shape)}")
        for name, t in (("labels", self.labels), ("split", self.split)):
            if t.shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {tuple(t.shape)}")
        if self.soft_labels is not None and self.soft_labels.shape != (n, len(self.class_names)):
            raise ValueError(f"soft_labels must be [{n}, {len(self.class_names)}], got {tuple(self.soft_labels.shape)}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def indices(self, split_name: str) -> torch.Tensor:
        """Indices of the images of one split, in order."""
        if split_name not in self.split_names:
            raise DataError(f"this data has no split {split_name!r}; it has: {', '.join(self.split_names)}")
        return torch.nonzero(self.split == self.split_names.index(split_name)).flatten()

    def class_counts(self, split_name: str) -> list[int]:
        labels = self.labels[self.indices(split_name)]
        return torch.bincount(labels, minlength=self.num_classes).tolist()
