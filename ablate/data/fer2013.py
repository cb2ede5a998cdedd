"""FER2013, as the Kaggle csv or as the image-folder download.

    fer2013.csv                         emotion,pixels,Usage  (48x48 grey pixels as space-separated integers)
    <root>/train/<class>/*.jpg          and test/, and validation/ where present

The csv's Usage maps Training -> train, PublicTest -> validation, PrivateTest -> test, which is how the folder
download (and ../shared/data/fer2013.tar.gz) names them. The path may be the csv, the folder holding train/ (or
fer2013.csv), or a folder holding fer2013/ as the archives extract.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ablate.data.base import FaceSet
from ablate.data.cache import FILE_OPTIONS, load_or_build
from ablate.data.decode import decode_pixel_rows, make_faceset, report_skipped
from ablate.data.folder import describe, load_tree, read_split_tree, require_path
from ablate.data.registry import register_dataset
from ablate.errors import DataError

CLASS_NAMES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
SPLIT_NAMES = ("train", "validation", "test")
USAGE_SPLITS = {"Training": "train", "PublicTest": "validation", "PrivateTest": "test"}
CSV_COLUMNS = ("emotion", "pixels", "Usage")
LAYOUT = (
    "the Kaggle csv (columns emotion,pixels,Usage), a folder holding train/ and test/ (and validation/) "
    f"with class folders {', '.join(CLASS_NAMES)}, or a folder holding fer2013/"
)


def locate(path: Path) -> Path:
    """The csv file or the folder that holds train/, from any of the accepted paths."""
    if path.is_file():
        if path.suffix.lower() == ".csv":
            return path
        raise DataError(f"fer2013: expected {LAYOUT}; found: {describe(path)}")
    for candidate in (path, path / "fer2013"):
        if any((candidate / split).is_dir() for split in SPLIT_NAMES):
            return candidate
        if (candidate / "fer2013.csv").is_file():
            return candidate / "fer2013.csv"
    raise DataError(f"fer2013: expected {LAYOUT}; found: {describe(path)}")


def column_indices(header: list[str], csv_path: Path) -> dict[str, int]:
    """Where each needed column is; header names are stripped (the ICML release writes ' Usage', ' pixels')."""
    names = [name.strip() for name in header]
    missing = [c for c in CSV_COLUMNS if c not in names]
    if missing:
        raise DataError(
            f"{csv_path}:1: expected a header with columns {','.join(CSV_COLUMNS)}, found {','.join(header)!r}"
        )
    return {c: names.index(c) for c in CSV_COLUMNS}


def parse_csv_row(row: list[str], columns: dict[str, int], where: str) -> tuple[int, str, str]:
    """(label 0..6, split name, pixel string) of one data row; malformed rows name ``where`` (file:line)."""
    if len(row) <= max(columns.values()):
        raise DataError(f"{where}: expected {len(columns)} columns ({','.join(CSV_COLUMNS)}), found {len(row)}")
    emotion, usage = row[columns["emotion"]].strip(), row[columns["Usage"]].strip()
    if not emotion.isdigit() or int(emotion) >= len(CLASS_NAMES):
        raise DataError(f"{where}: emotion must be an integer 0..6, found {emotion!r}")
    if usage not in USAGE_SPLITS:
        raise DataError(f"{where}: Usage must be one of {', '.join(USAGE_SPLITS)}, found {usage!r}")
    return int(emotion), USAGE_SPLITS[usage], row[columns["pixels"]]


def read_csv(csv_path: Path) -> tuple[list[tuple[str, str]], list[int], list[str]]:
    """The csv as (pixels, where) rows for decoding, labels and split names, in file order."""
    rows, labels, splits = [], [], []
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        columns = column_indices(next(reader, []), csv_path)
        for row in reader:
            if not row:
                continue
            where = f"{csv_path}:{reader.line_num}"
            label, split, pixels = parse_csv_row(row, columns, where)
            rows.append((pixels, where))
            labels.append(label)
            splits.append(split)
    if not rows:
        raise DataError(f"{csv_path}: holds a header but no rows")
    return rows, labels, splits


def csv_faceset(csv_path: Path, image_size: int | None, skip_corrupt: bool) -> FaceSet:
    """Parse and decode the csv; split names are those present, in train, validation, test order."""
    rows, labels, splits = read_csv(csv_path)
    images, keep, skipped = decode_pixel_rows("fer2013", rows, image_size, skip_corrupt)
    report_skipped("fer2013", skipped)
    split_names = [s for s in SPLIT_NAMES if s in set(splits)]
    split = [split_names.index(s) for s in splits]
    return make_faceset(images, np.asarray(labels)[keep], np.asarray(split)[keep], split_names, CLASS_NAMES, skipped)


@register_dataset("fer2013", options=FILE_OPTIONS)
def load_fer2013(
    path: str | None,
    *,
    image_size: int | None,
    skip_corrupt: bool,
    cache_dir: str | None,
    use_cache: bool,
) -> FaceSet:
    """FER2013 in FER2013's class order, from the csv or the image folders."""
    source = locate(require_path("fer2013", path, LAYOUT))
    if source.is_file():
        return load_or_build(
            "fer2013",
            source,
            [source],
            {"image_size": image_size},
            lambda: csv_faceset(source, image_size, skip_corrupt),
            skip_corrupt=skip_corrupt,
            cache_dir=cache_dir,
            use_cache=use_cache,
        )
    tree = read_split_tree("fer2013", source, allowed_splits=SPLIT_NAMES, allowed_classes=CLASS_NAMES)
    return load_tree(
        "fer2013",
        source,
        tree,
        CLASS_NAMES,
        image_size=image_size,
        skip_corrupt=skip_corrupt,
        cache_dir=cache_dir,
        use_cache=use_cache,
    )
