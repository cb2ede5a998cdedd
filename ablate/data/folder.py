"""Any folder of images sorted by class: ``<root>/<split>/<class>/<image>`` (or ``<root>/<class>/<image>``).

Class names are the sorted union of the class folder names over all splits, so that a class missing from one split
keeps its index; split names are the split folder names. Images of different sizes need ``image_size``.
The listing helpers here are shared by the other real sources (rafdb, fer2013).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from pathlib import Path

from ablate.data.base import FaceSet
from ablate.data.cache import load_files
from ablate.data.decode import check_image_size, is_image_name
from ablate.data.registry import register_dataset
from ablate.errors import DataError

# split name -> class name -> image files, in sorted order (so the same tree always gives the same FaceSet)
Tree = dict[str, dict[str, list[str]]]

# Known split folders come first in this order; any other split folder follows, alphabetically.
SPLIT_ORDER = ("train", "training", "val", "valid", "validation", "test", "testing")


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


def read_folder_tree(root: Path) -> Tree:
    """Tell ``<root>/<split>/<class>/`` from ``<root>/<class>/`` (one split, "train") by what the top folders hold."""
    top = subdirs(root)
    holds_images = [d for d in top if image_files(d)]
    holds_folders = [d for d in top if subdirs(d)]
    if holds_images and holds_folders:
        raise DataError(
            f"folder: expected {FOLDER_LAYOUT}, not a mix; {holds_images[0].name}/ holds images "
            f"but {holds_folders[0].name}/ holds folders"
        )
    if holds_images:
        return {"train": read_class_folders("folder", root)}
    if holds_folders:
        return read_split_tree("folder", root)
    raise DataError(f"folder: expected {FOLDER_LAYOUT}; found: {describe(root)}")


@register_dataset("folder")
def load_folder(
    path: str | None,
    *,
    image_size: int | None = None,
    skip_corrupt: bool = False,
    cache_dir: str | None = None,
    use_cache: bool = True,
) -> FaceSet:
    """Every image under ``path``, labeled by its class folder, in the split of its split folder."""
    check_image_size("folder", image_size)
    root = require_path("folder", path, FOLDER_LAYOUT)
    if not root.is_dir():
        raise DataError(f"folder: expected {FOLDER_LAYOUT}; found: {describe(root)}")
    tree = read_folder_tree(root)
    class_names = sorted({c for classes in tree.values() for c in classes})
    return load_tree(
        "folder",
        root,
        tree,
        class_names,
        image_size=image_size,
        skip_corrupt=skip_corrupt,
        cache_dir=cache_dir,
        use_cache=use_cache,
    )
