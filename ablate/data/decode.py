"""Image decoding shared by the real data sources: files (or csv pixel rows) in, one uint8 [N, 3, H, W] array out.

Every source goes through these functions so that grey-to-RGB conversion, resizing, the "sizes differ" rule and
corrupt-file handling behave the same whatever the layout. Images are written straight into one preallocated array
(no per-image tensors, no final stack) because decoding is the slow part of a first load.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ablate.data.base import FaceSet
from ablate.errors import DataError

log = logging.getLogger("ablate.data")

# Files with these suffixes are images; anything else in a data folder (README, .DS_Store, label files) is ignored.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES and not name.startswith(".")


def decode_image(path: str | Path) -> Image.Image:
    """Open and fully decode one image file; a file PIL cannot read raises DataError naming it."""
    try:
        with Image.open(path) as image:
            image.load()
            return image
    except Exception as error:  # PIL raises OSError, SyntaxError, ValueError... for broken files
        raise DataError(
            f"cannot decode image {path}: {error} (pass skip_corrupt=True to skip unreadable images)"
        ) from error


def to_chw(image: Image.Image, image_size: int | None) -> np.ndarray:
    """A PIL image as uint8 [3, H, W] RGB; grey images are repeated over the three channels."""
    if image_size is not None and image.size != (image_size, image_size):
        if image.mode not in ("L", "RGB"):
            image = image.convert("RGB")
        image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
    if image.mode == "L":  # the common FER case: skip PIL's RGB conversion, broadcast instead
        grey = np.asarray(image)
        return np.broadcast_to(grey, (3, *grey.shape))
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image).transpose(2, 0, 1)


class _Stack:
    """Fills one [N, 3, H, W] array image by image; the first image fixes H and W (all equal after a resize)."""

    def __init__(self, source: str, count: int):
        self.source = source
        self.count = count
        self.array: np.ndarray | None = None
        self.first_name = ""

    def put(self, index: int, chw: np.ndarray, name: str) -> None:
        if self.array is None:
            self.array = np.empty((self.count, *chw.shape), dtype=np.uint8)
            self.first_name = name
        elif chw.shape != self.array.shape[1:]:
            raise DataError(
                f"{self.source}: images have different sizes ({self.first_name} is {_hw(self.array.shape[1:])}, "
                f"{name} is {_hw(chw.shape)}); pass the option image_size=N to resize them all to N x N"
            )
        self.array[index] = chw

    def result(self, keep: np.ndarray) -> np.ndarray:
        if self.array is None:
            raise DataError(f"{self.source}: no image could be decoded")
        return self.array if keep.all() else self.array[keep]


def _hw(chw_shape: Sequence[int]) -> str:
    return f"{chw_shape[2]}x{chw_shape[1]}"


def _decode_each(
    source: str, names: Sequence[str], decode_one: Callable[[int], np.ndarray], skip_corrupt: bool
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode items 0..N-1 with ``decode_one`` into one array; a DataError skips the item when ``skip_corrupt``.

    Returns (images [M, 3, H, W], keep mask [N] of the items decoded, names of the skipped items).
    """
    stack = _Stack(source, len(names))
    keep = np.ones(len(names), dtype=bool)
    skipped: list[str] = []
    for i, name in enumerate(names):
        try:
            chw = decode_one(i)
        except DataError:
            if not skip_corrupt:
                raise
            keep[i] = False
            skipped.append(name)
            continue
        stack.put(i, chw, name)
    return stack.result(keep), keep, skipped


def decode_files(
    source: str, files: Sequence[str | Path], image_size: int | None, skip_corrupt: bool
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode image files (see ``_decode_each`` for what comes back)."""
    # decode_image is looked up at call time so that tests can replace it to prove a cache hit decodes nothing.
    return _decode_each(
        source, [str(f) for f in files], lambda i: to_chw(decode_image(files[i]), image_size), skip_corrupt
    )


def decode_pixel_string(pixels: str, where: str) -> np.ndarray:
    """FER2013's csv cell (space-separated grey values of a square image) as uint8 [S, S].

    A malformed cell raises a DataError naming ``where``."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy only warns when it stops at a non-number
        try:
            values = np.fromstring(pixels, dtype=np.int32, sep=" ")
        except (ValueError, DeprecationWarning) as error:
            raise DataError(f"{where}: pixels must be space-separated integers 0..255; {error}") from error
    side = round(len(values) ** 0.5)
    if side == 0 or side * side != len(values):
        raise DataError(f"{where}: expected a square image's pixels (48x48 = 2304 values), found {len(values)} values")
    if values.min() < 0 or values.max() > 255:
        raise DataError(f"{where}: pixel values must be 0..255, found {values.min()}..{values.max()}")
    return values.astype(np.uint8).reshape(side, side)


def decode_pixel_rows(
    source: str, rows: Sequence[tuple[str, str]], image_size: int | None, skip_corrupt: bool
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The csv counterpart of ``decode_files``: rows are (pixels, where), ``where`` like ``fer2013.csv:12``."""
    names = [where for _, where in rows]
    return _decode_each(
        source, names, lambda i: to_chw(Image.fromarray(decode_pixel_string(*rows[i])), image_size), skip_corrupt
    )


def report_skipped(source: str, skipped: Sequence[str]) -> None:
    """One warning line per load that skipped files, so that a silently shrinking data set is noticed."""
    if skipped:
        log.warning(
            "%s: skipped %d unreadable image(s) (skip_corrupt=True), first: %s", source, len(skipped), skipped[0]
        )


def make_faceset(
    images: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    split: Sequence[int] | np.ndarray,
    split_names: Sequence[str],
    class_names: Sequence[str],
    skipped: Sequence[str] = (),
) -> FaceSet:
    """Wrap decoded arrays as the FaceSet every source returns."""
    return FaceSet(
        images=torch.from_numpy(np.ascontiguousarray(images)),
        labels=torch.as_tensor(np.asarray(labels, dtype=np.int64)),
        split=torch.as_tensor(np.asarray(split, dtype=np.int64)),
        split_names=tuple(split_names),
        class_names=tuple(class_names),
        skipped=tuple(skipped),
    )


def faceset_from_files(
    source: str,
    files: Sequence[str | Path],
    labels: Sequence[int],
    split: Sequence[int],
    split_names: Sequence[str],
    class_names: Sequence[str],
    image_size: int | None,
    skip_corrupt: bool,
) -> FaceSet:
    """Decode a listing of labeled files into a FaceSet, dropping (and reporting) the skipped ones."""
    if not files:
        raise DataError(f"{source}: found no image files")
    images, keep, skipped = decode_files(source, files, image_size, skip_corrupt)
    report_skipped(source, skipped)
    return make_faceset(images, np.asarray(labels)[keep], np.asarray(split)[keep], split_names, class_names, skipped)
