"""RAF-DB (basic) in its official layout.

    <root>/basic/EmoLabel/list_patition_label.txt     lines "train_00001.jpg 5", labels 1..7
    <root>/basic/Image/aligned/train_00001_aligned.jpg  100x100 aligned faces

Labels become 0..6 in RAF-DB's order; the split (train / test) comes from the file name's prefix, as the official
partition does. The path may be ``<root>`` or ``<root>/basic``.
"""

from __future__ import annotations

import os
from pathlib import Path

from ablate.data.base import FaceSet
from ablate.data.cache import FILE_OPTIONS, load_files
from ablate.data.folder import describe, require_path
from ablate.data.registry import register_dataset
from ablate.errors import DataError

CLASS_NAMES = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
SPLIT_NAMES = ("train", "test")
LABEL_FILE = Path("EmoLabel/list_patition_label.txt")  # sic: the official name is misspelt
ALIGNED_DIR = Path("Image/aligned")
LAYOUT = (
    "<root>/basic/EmoLabel/list_patition_label.txt and <root>/basic/Image/aligned/ (the path may also be <root>/basic)"
)


def find_basic(root: Path) -> Path:
    """The ``basic`` folder, whether the path names it or its parent."""
    for base in (root / "basic", root):
        if (base / LABEL_FILE).is_file():
            return base
    raise DataError(f"rafdb: expected {LAYOUT}; found: {describe(root)}")


def parse_label_line(line: str, where: str) -> tuple[str, int, int]:
    """``train_00001.jpg 5`` -> (file name, label 0..6, split index); DataError naming ``where`` (file:line)."""
    fields = line.split()
    if len(fields) != 2:
        raise DataError(f"{where}: expected '<name>.jpg <label 1..7>', found {line.strip()!r}")
    name, label = fields
    if not label.isdigit() or not 1 <= int(label) <= len(CLASS_NAMES):
        raise DataError(f"{where}: label must be an integer 1..7, found {label!r}")
    prefix = name.split("_", 1)[0]
    if prefix not in SPLIT_NAMES:
        raise DataError(f"{where}: file name must start with train_ or test_, found {name!r}")
    return name, int(label) - 1, SPLIT_NAMES.index(prefix)


def read_label_file(label_file: Path) -> list[tuple[str, int, int]]:
    """Every entry of the partition file, in file order (blank lines are allowed)."""
    lines = label_file.read_text(encoding="utf-8", errors="replace").splitlines()
    return [parse_label_line(line, f"{label_file}:{number}") for number, line in enumerate(lines, 1) if line.strip()]


def aligned_files(base: Path, names: list[str]) -> list[str]:
    """The aligned image of each entry (``train_00001.jpg`` -> ``train_00001_aligned.jpg``); all must exist."""
    aligned = base / ALIGNED_DIR
    if not aligned.is_dir():
        raise DataError(f"rafdb: expected the aligned faces in {aligned}; found: {describe(aligned.parent)}")
    files = [os.path.join(aligned, os.path.splitext(name)[0] + "_aligned.jpg") for name in names]
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise DataError(
            f"rafdb: {len(missing)} image(s) listed in {base / LABEL_FILE} are missing, first: {missing[0]}"
        )
    return files


@register_dataset("rafdb", options=FILE_OPTIONS)
def load_rafdb(
    path: str | None,
    *,
    image_size: int | None,
    skip_corrupt: bool,
    cache_dir: str | None,
    use_cache: bool,
) -> FaceSet:
    """RAF-DB's aligned faces with the official labels and train/test partition."""
    base = find_basic(require_path("rafdb", path, LAYOUT))
    entries = read_label_file(base / LABEL_FILE)
    if not entries:
        raise DataError(f"rafdb: {base / LABEL_FILE} lists no images")
    names, labels, split = zip(*entries)
    return load_files(
        "rafdb",
        base,
        aligned_files(base, list(names)),
        labels,
        split,
        SPLIT_NAMES,
        CLASS_NAMES,
        extra_files=[base / LABEL_FILE],
        image_size=image_size,
        skip_corrupt=skip_corrupt,
        cache_dir=cache_dir,
        use_cache=use_cache,
    )
