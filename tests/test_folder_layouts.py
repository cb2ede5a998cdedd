"""The folder source's layouts (issue 12), on small trees of real PNG and JPEG files: split folder aliases, the flat
layout with its carved test split, empty class folders, and trees that cannot train refused by load_data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ablate.data import load_data, load_dataset, resolve_data_section
from ablate.errors import DataError


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    """Every test caches under its own tmp folder, never in ~/.cache."""
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / ".cache"))  # hidden: not a class folder


def write(path: Path, value: int) -> None:
    """An 8x8 image whose pixels all hold ``value`` (PNG, or JPEG for a .jpg name), so each file is recognisable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((8, 8, 3), value, dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG" if path.suffix == ".jpg" else "PNG", quality=98)


def flat_tree(root: Path, counts: dict[str, int]) -> dict[int, str]:
    """``<root>/<class>/<i>.png`` with ``counts[class]`` images; returns pixel value -> class (values unique)."""
    owner = {}
    value = 10
    for name, n in counts.items():
        for i in range(n):
            write(root / name / f"{i:03d}.{'jpg' if i % 2 else 'png'}", value)
            owner[value] = name
            value += 3
    return owner


def pixel_values(faces) -> list[int]:
    return [int(v) for v in faces.images[:, 0, 0, 0]]


# ---- (a) split folder aliases --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "train_dir,test_dir,val_dir",
    [("training", "testing", "val"), ("Train", "Test", "valid"), ("train", "test", "validation")],
)
def test_split_folder_aliases_become_train_test_validation(tmp_path, train_dir, test_dir, val_dir):
    for split, value in ((train_dir, 50), (test_dir, 100), (val_dir, 150)):
        write(tmp_path / split / "happy" / "a.png", value)
        write(tmp_path / split / "sad" / "b.jpg", value + 20)
    faces = load_dataset("folder", str(tmp_path))
    assert faces.split_names == ("train", "validation", "test")
    assert sorted(pixel_values(faces)) == [50, 70, 100, 120, 150, 170]
    train = faces.indices("train")
    assert sorted(int(v) for v in faces.images[train, 0, 0, 0]) == [50, 70]  # training/ became train
    test = faces.indices("test")
    assert sorted(int(v) for v in faces.images[test, 0, 0, 0]) == [100, 120]


def test_two_folders_of_one_split_are_refused(tmp_path):
    write(tmp_path / "train" / "happy" / "a.png", 1)
    write(tmp_path / "training" / "happy" / "b.png", 2)
    with pytest.raises(DataError, match=r"train/ and .*training/ are both the split 'train'; keep one"):
        load_dataset("folder", str(tmp_path))


def test_aliased_tree_trains_through_load_data(tmp_path):
    for split in ("training", "testing"):
        for c, name in enumerate(("happy", "sad")):
            for i in range(3):
                write(tmp_path / split / name / f"{i}.png", 30 * c + i)
    section = resolve_data_section({"name": "folder", "path": str(tmp_path), "labels_per_class": 1, "val_per_class": 1})
    faces = load_data(section)
    assert faces.class_counts("train") == [3, 3] and faces.class_counts("test") == [3, 3]


# ---- (b) the flat layout carves a test split -----------------------------------------------------------------


def test_flat_layout_carves_a_stratified_test_split(tmp_path):
    owner = flat_tree(tmp_path, {"happy": 10, "sad": 5, "angry": 3})
    faces = load_dataset("folder", str(tmp_path))
    assert faces.split_names == ("train", "test")
    assert faces.class_names == ("angry", "happy", "sad")
    # round(0.2 n), at least one on each side: angry 3 -> 1 (0.6 rounds to 1), happy 10 -> 2, sad 5 -> 1
    assert faces.class_counts("test") == [1, 2, 1]
    assert faces.class_counts("train") == [2, 8, 4]
    for i, value in enumerate(pixel_values(faces)):  # every image keeps its class
        assert faces.class_names[int(faces.labels[i])] == owner[value]


def test_flat_layout_test_fraction_and_seed(tmp_path):
    flat_tree(tmp_path, {"happy": 20, "sad": 20})
    a = load_dataset("folder", str(tmp_path))
    b = load_dataset("folder", str(tmp_path))
    assert torch.equal(a.split, b.split)  # seeded: the same carve every time
    c = load_dataset("folder", str(tmp_path), test_seed=1)
    assert not torch.equal(a.split, c.split)
    assert c.class_counts("test") == a.class_counts("test") == [4, 4]
    half = load_dataset("folder", str(tmp_path), test_fraction=0.5)
    assert half.class_counts("test") == [10, 10]
    tiny = load_dataset("folder", str(tmp_path), test_fraction=0.01)
    assert tiny.class_counts("test") == [1, 1]  # at least one test image per class
    most = load_dataset("folder", str(tmp_path), test_fraction=0.99)
    assert most.class_counts("train") == [1, 1]  # at least one training image per class


def test_flat_layout_class_too_small_to_carve_is_named(tmp_path):
    flat_tree(tmp_path, {"happy": 4, "sad": 1})
    with pytest.raises(DataError, match=r"folder: class 'sad' has 1 image\(s\) in .*sad; the flat layout carves"):
        load_dataset("folder", str(tmp_path))


def test_flat_layout_trains_through_load_data(tmp_path):
    flat_tree(tmp_path, {"happy": 10, "sad": 10})
    section = resolve_data_section(
        {
            "name": "folder",
            "path": str(tmp_path),
            "labels_per_class": 2,
            "val_per_class": 1,
            "options": {"test_seed": 3},
        }
    )
    assert section["options"]["test_fraction"] == 0.2 and section["options"]["test_seed"] == 3
    faces = load_data(section)
    assert faces.class_counts("test") == [2, 2] and faces.class_counts("train") == [8, 8]


# ---- (c) empty class folders, trees that cannot train --------------------------------------------------------


def test_empty_class_folder_in_a_split_tree_is_named(tmp_path):
    write(tmp_path / "train" / "happy" / "a.png", 1)
    write(tmp_path / "test" / "happy" / "b.png", 2)
    (tmp_path / "train" / "fear").mkdir()
    with pytest.raises(
        DataError, match=r"folder: class folder .*train/fear holds no images; add images of class 'fear'"
    ):
        load_dataset("folder", str(tmp_path))


def test_empty_class_folder_in_a_flat_tree_is_named(tmp_path):
    flat_tree(tmp_path, {"happy": 3})
    (tmp_path / "fear").mkdir()
    (tmp_path / "fear" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"folder: class folder .*/fear holds no images; add images of class 'fear'"):
        load_dataset("folder", str(tmp_path))


def test_a_tree_without_test_split_is_refused_by_load_data(tmp_path):
    for split in ("train", "val"):
        for name in ("happy", "sad"):
            write(tmp_path / split / name / "a.png", 5)
            write(tmp_path / split / name / "b.png", 6)
    section = resolve_data_section({"name": "folder", "path": str(tmp_path), "labels_per_class": 1, "val_per_class": 0})
    with pytest.raises(DataError, match=rf"^{tmp_path}: the data has no 'test' split \(it has: train, validation\)"):
        load_data(section)


def test_a_class_only_in_test_is_refused_by_load_data(tmp_path):
    write(tmp_path / "train" / "happy" / "a.png", 5)
    write(tmp_path / "train" / "happy" / "b.png", 6)
    write(tmp_path / "test" / "happy" / "c.png", 7)
    write(tmp_path / "test" / "fear" / "d.png", 8)
    section = resolve_data_section({"name": "folder", "path": str(tmp_path), "labels_per_class": 1, "val_per_class": 0})
    with pytest.raises(DataError, match=rf"^{tmp_path}: class 'fear' has 0 training images"):
        load_data(section)
