"""Any folder of images sorted by class: ``<root>/<split>/<class>/<image>`` or the flat ``<root>/<class>/<image>``.

Split folders named ``training`` / ``testing`` and ``val`` / ``valid`` / ``validation`` (any case) are the splits
``train``, ``test`` and ``validation``; other split folders keep their names (training ignores them). The flat
layout has no test split, so one is carved out of it: a seeded, stratified ``test_fraction`` of every class
(options ``test_fraction``, default 0.2, and ``test_seed``, default 0), each class keeping at least one training
and one test image. Class names are the sorted union of the class folder names over all splits, so that a class
missing from one split keeps its index. An empty class folder is an error naming it. Images of different sizes
need ``image_size``. The listing helpers here are shared by the other real sources (rafdb, fer2013).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Collection, Sequence
from pathlib import Path

import torch

from ablate.config.params import Param
from ablate.data.base import FaceSet
from ablate.data.cache import FILE_OPTIONS, load_files
from ablate.data.decode import is_image_name
from ablate.data.registry import register_dataset
from ablate.errors import DataError

# split name -> class name -> image files, in sorted order (so the same tree always gives the same FaceSet)
Tree = dict[str, dict[str, list[str]]]

# Known splits come first in this order; any other split folder follows, alphabetically.
SPLIT_ORDER = ("train", "validation", "test")
# Split folder names (lower-cased) -> the split they are.
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "test": "test",
    "testing": "test",
}


def subdirs(path: Path) -> list[Path]:
    """Sub-folders by name; hidden ones and archive debris (.git, __MACOSX) are never data."""
    with os.scandir(path) as entries:
        names = sorted(e.name for e in entries if e.is_dir() and not e.name.startswith((".", "__")))
    return [path / name for name in names]


def image_files(path: Path) -> list[str]:
    """Image files by name, as strings: a cached load lists every file, and 36k Path objects alone cost 0.1-0.5 s."""
    with os.scandir(path) as entries:
        names = sorted(e.name for e in entries if is_image_name(e.name) and e.is_file())
    return [os.path.join(path, name) for name in names]


def describe(path: Path, limit: int = 12) -> str:
    """The top-level entries of a folder (folders end with /), for "expected ...; found: ..." messages."""
    if not path.exists():
        return f"{path} does not exist"
    if not path.is_dir():
        return f"{path} is a file"
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    if not names:
        return f"{path} is empty"
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return f"{path} holds " + ", ".join(names[:limit]) + more


def require_path(source: str, path: str | None, expected: str) -> Path:
    """The source's path, absolute; a missing one names the layout that was expected."""
    if path is None:
        raise DataError(f"{source}: needs a path (--data {source}:PATH); expected {expected}")
    resolved = Path(path).expanduser().resolve()
    if not resolved.exists():
        raise DataError(f"{source}: path {path} does not exist; expected {expected}")
    return resolved


def check_allowed(source: str, kind: str, folder: Path, allowed: Collection[str] | None) -> None:
    if allowed is not None and folder.name not in allowed:
        raise DataError(f"{source}: unknown {kind} folder {folder}; allowed {kind} names: {', '.join(allowed)}")


def read_class_folders(
    source: str, split_dir: Path, allowed_classes: Collection[str] | None = None
) -> dict[str, list[str]]:
    """``<split_dir>/<class>/<image>`` as class name -> image files."""
    classes = {}
    for class_dir in subdirs(split_dir):
        check_allowed(source, "class", class_dir, allowed_classes)
        classes[class_dir.name] = image_files(class_dir)
    return classes


def read_split_tree(
    source: str,
    root: Path,
    allowed_splits: Collection[str] | None = None,
    allowed_classes: Collection[str] | None = None,
) -> Tree:
    """``<root>/<split>/<class>/<image>`` as a Tree."""
    tree = {}
    for split_dir in subdirs(root):
        check_allowed(source, "split", split_dir, allowed_splits)
        tree[split_dir.name] = read_class_folders(source, split_dir, allowed_classes)
    return tree


def split_rank(name: str) -> tuple[int, str]:
    return (SPLIT_ORDER.index(name) if name in SPLIT_ORDER else len(SPLIT_ORDER), name)


def flatten_tree(tree: Tree, class_names: Sequence[str]) -> tuple[list[str], list[int], list[int], list[str]]:
    """A Tree as parallel lists (files, labels, split indices) plus the split names, splits in SPLIT_ORDER.

    A split folder with no image is left out: an empty split would only fail later, far from its cause.
    """
    split_names = sorted((s for s, classes in tree.items() if any(classes.values())), key=split_rank)
    files: list[str] = []
    labels: list[int] = []
    split: list[int] = []
    for s, split_name in enumerate(split_names):
        for class_name, class_files in sorted(tree[split_name].items()):
            files += class_files
            labels += [class_names.index(class_name)] * len(class_files)
            split += [s] * len(class_files)
    return files, labels, split, split_names


def load_tree(
    source: str,
    root: Path,
    tree: Tree,
    class_names: Sequence[str],
    *,
    image_size: int | None,
    skip_corrupt: bool,
    cache_dir: str | None,
    use_cache: bool,
) -> FaceSet:
    """Decode (or load from the cache) every image of a Tree."""
    files, labels, split, split_names = flatten_tree(tree, class_names)
    if not files:
        raise DataError(f"{source}: found no image files under {root}")
    return load_files(
        source,
        root,
        files,
        labels,
        split,
        split_names,
        class_names,
        image_size=image_size,
        skip_corrupt=skip_corrupt,
        cache_dir=cache_dir,
        use_cache=use_cache,
    )


FOLDER_LAYOUT = "<root>/<split>/<class>/<image> (for example train/happy/001.jpg) or <root>/<class>/<image>"
FOLDER_OPTIONS = {
    **FILE_OPTIONS,
    "test_fraction": Param(
        0.2,
        "flat <root>/<class>/<image> layout only: the fraction of each class carved out as the test split "
        "(stratified, rounded, at least one image on each side)",
        low=0.0,
        high=1.0,
        open_low=True,
        open_high=True,
    ),
    "test_seed": Param(0, "flat layout only: the seed of the carved test split (not the labeled split's seed)"),
}


def no_images(folder: Path, class_name: str) -> DataError:
    return DataError(f"folder: class folder {folder} holds no images; add images of class {class_name!r} or remove it")


def canonical_splits(root: Path, tree: Tree) -> Tree:
    """Split folders renamed to the splits they are (training/ -> train); two folders of one split are an error."""
    renamed: Tree = {}
    folder_of: dict[str, str] = {}
    for folder, classes in tree.items():
        name = SPLIT_ALIASES.get(folder.lower(), folder)
        if name in renamed:
            raise DataError(
                f"folder: {root / folder_of[name]}/ and {root / folder}/ are both the split {name!r}; keep one"
            )
        renamed[name], folder_of[name] = classes, folder
    return renamed


def read_folder_tree(root: Path) -> tuple[Tree, bool]:
    """The tree under ``root`` with its splits named canonically, and whether it is the flat layout (one split,
    "train"). The layout is told by what the top folders hold: images (classes) or folders (splits)."""
    top = subdirs(root)
    holds_images = [d for d in top if image_files(d)]
    holds_folders = [d for d in top if subdirs(d)]
    if holds_images and holds_folders:
        raise DataError(
            f"folder: expected {FOLDER_LAYOUT}, not a mix; {holds_images[0].name}/ holds images "
            f"but {holds_folders[0].name}/ holds folders"
        )
    if holds_images:
        for class_dir in top:
            if class_dir not in holds_images:
                raise no_images(class_dir, class_dir.name)
        return {"train": read_class_folders("folder", root)}, True
    if holds_folders:
        tree = read_split_tree("folder", root)
        for split, classes in tree.items():
            for class_name, files in classes.items():
                if not files:
                    raise no_images(root / split / class_name, class_name)
        return canonical_splits(root, tree), False
    raise DataError(f"folder: expected {FOLDER_LAYOUT}; found: {describe(root)}")


def carve_test_split(faces: FaceSet, root: Path, test_fraction: float, test_seed: int) -> FaceSet:
    """A seeded, stratified test split out of a one-split FaceSet: round(test_fraction * n) images of each class,
    at least one, leaving at least one to train; a class with fewer than 2 images is a DataError naming it."""
    generator = torch.Generator().manual_seed(test_seed)
    split = torch.zeros_like(faces.labels)
    for c, name in enumerate(faces.class_names):
        members = torch.nonzero(faces.labels == c).flatten()
        n = len(members)
        if n < 2:
            raise DataError(
                f"folder: class {name!r} has {n} image(s) in {root / name}; the flat layout carves a test split out "
                f"of every class, so each needs at least 2 (one to train, one to test)"
            )
        n_test = min(n - 1, max(1, round(test_fraction * n)))
        split[members[torch.randperm(n, generator=generator)[:n_test]]] = 1
    return dataclasses.replace(faces, split=split, split_names=("train", "test"))


@register_dataset("folder", options=FOLDER_OPTIONS)
def load_folder(
    path: str | None,
    *,
    image_size: int | None,
    skip_corrupt: bool,
    cache_dir: str | None,
    use_cache: bool,
    test_fraction: float,
    test_seed: int,
) -> FaceSet:
    """Every image under ``path``, labeled by its class folder, in the split of its split folder (or, in the flat
    layout, in train or a carved-out test split)."""
    root = require_path("folder", path, FOLDER_LAYOUT)
    if not root.is_dir():
        raise DataError(f"folder: expected {FOLDER_LAYOUT}; found: {describe(root)}")
    tree, flat = read_folder_tree(root)
    class_names = sorted({c for classes in tree.values() for c in classes})
    faces = load_tree(
        "folder",
        root,
        tree,
        class_names,
        image_size=image_size,
        skip_corrupt=skip_corrupt,
        cache_dir=cache_dir,
        use_cache=use_cache,
    )
    return carve_test_split(faces, root, test_fraction, test_seed) if flat else faces
