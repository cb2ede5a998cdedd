"""The real data sources (rafdb, fer2013, folder) and the decoded-image cache, on tiny fixtures in each layout."""

from __future__ import annotations

import csv
import logging
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ablate.data import cache, decode, load_dataset
from ablate.errors import ConfigError, DataError

RAF = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
FER = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    """Every test caches under its own tmp folder, never in ~/.cache."""
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def solid(color, size=(12, 10)) -> np.ndarray:
    """A solid image (H, W, C) or (H, W) for grey; solid colours survive JPEG almost exactly."""
    w, h = size
    return np.broadcast_to(np.asarray(color, dtype=np.uint8), (h, w, 3) if isinstance(color, tuple) else (h, w)).copy()


def write_image(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "JPEG" if path.suffix == ".jpg" else "PNG"
    Image.fromarray(pixels).save(path, format=fmt, **({"quality": 98} if fmt == "JPEG" else {}))
    return path


def as_chw(pixels: np.ndarray) -> torch.Tensor:
    """What a loader should return for these pixels: RGB, channels first (grey repeated)."""
    rgb = np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels
    return torch.from_numpy(rgb).permute(2, 0, 1)


def close(a: torch.Tensor, b: torch.Tensor, tol: int = 4) -> bool:
    return a.shape == b.shape and int((a.int() - b.int()).abs().max()) <= tol


class Counter:
    """Wraps a decode function to count its calls, or to fail if it is called at all."""

    def __init__(self, fn, fail=False):
        self.fn, self.fail, self.calls = fn, fail, 0

    def __call__(self, *args):
        if self.fail:
            raise AssertionError("decoded although the cache should have been used")
        self.calls += 1
        return self.fn(*args)


# ---------------------------------------------------------------- fixtures in the official layouts

RAF_ENTRIES = [("train_00001.jpg", 1, (250, 20, 20)), ("train_00002.jpg", 7, 128), ("test_0001.jpg", 4, (20, 200, 40))]


def make_rafdb(root: Path, extra_lines: str = "") -> dict[str, np.ndarray]:
    basic = root / "basic"
    pixels = {}
    for name, _, color in RAF_ENTRIES:
        stem = name[: -len(".jpg")]
        pixels[name] = solid(color, (100, 100))
        write_image(basic / "Image" / "aligned" / f"{stem}_aligned.jpg", pixels[name])
    label_file = basic / "EmoLabel" / "list_patition_label.txt"
    label_file.parent.mkdir(parents=True)
    label_file.write_text("".join(f"{name} {label}\n" for name, label, _ in RAF_ENTRIES) + extra_lines)
    return pixels


def make_fer_csv(path: Path, bad_row: list[str] | None = None) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    rows = [(3, "Training"), (0, "Training"), (6, "PublicTest"), (5, "PrivateTest")]
    images = [rng.integers(0, 256, (48, 48), dtype=np.uint8) for _ in rows]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["emotion", "pixels", "Usage"])
        for (label, usage), image in zip(rows, images):
            writer.writerow([label, " ".join(map(str, image.flatten())), usage])
        if bad_row:
            writer.writerow(bad_row)
    return images


def make_fer_folder(root: Path) -> dict[str, np.ndarray]:
    """fer2013/<split>/<class>/ under ``root``, as the archive extracts; grey PNGs."""
    files = {
        "train/happy/Training_1.png": 200,
        "train/angry/Training_2.png": 10,
        "validation/neutral/PublicTest_1.png": 90,
        "test/sad/PrivateTest_1.png": 60,
    }
    pixels = {}
    for rel, value in files.items():
        pixels[rel] = (np.arange(48 * 48).reshape(48, 48) % 7 + value).astype(np.uint8)
        write_image(root / "fer2013" / rel, pixels[rel])
    return pixels


def make_folder(root: Path) -> None:
    """train/ and val/ with classes cat, dog, eel; mixed sizes and modes."""
    write_image(root / "train" / "dog" / "a.png", solid((10, 20, 30), (20, 12)))
    write_image(root / "train" / "cat" / "b.png", solid(77, (10, 10)))
    write_image(root / "val" / "eel" / "c.jpg", solid((200, 100, 50), (8, 8)))
    (root / "train" / "cat" / "notes.txt").write_text("not an image")


# ---------------------------------------------------------------- rafdb


def test_rafdb_labels_splits_pixels(tmp_path):
    pixels = make_rafdb(tmp_path)
    fs = load_dataset("rafdb", str(tmp_path))
    assert fs.class_names == RAF and fs.split_names == ("train", "test")
    assert fs.images.shape == (3, 3, 100, 100) and fs.images.dtype == torch.uint8
    assert fs.labels.tolist() == [0, 6, 3]
    assert fs.split.tolist() == [0, 0, 1]
    for i, (name, _, _) in enumerate(RAF_ENTRIES):
        assert close(fs.images[i], as_chw(pixels[name]))
    grey = fs.images[1]
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])


def test_rafdb_accepts_basic_folder_and_shares_its_cache(tmp_path, cache_in_tmp):
    make_rafdb(tmp_path)
    a = load_dataset("rafdb", str(tmp_path))
    b = load_dataset("rafdb", str(tmp_path / "basic"))
    assert torch.equal(a.images, b.images)
    assert len(list(cache_in_tmp.glob("*.pt"))) == 1


def test_rafdb_image_size_resizes(tmp_path):
    make_rafdb(tmp_path)
    fs = load_dataset("rafdb", str(tmp_path), image_size=32)
    assert fs.images.shape == (3, 3, 32, 32)
    assert close(fs.images[0], as_chw(solid((250, 20, 20), (32, 32))))


def test_rafdb_wrong_layout_names_expected_and_found(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels.csv").write_text("x")
    with pytest.raises(
        DataError, match=r"expected <root>/basic/EmoLabel/list_patition_label.txt.*found.*images/, labels.csv"
    ):
        load_dataset("rafdb", str(tmp_path))


@pytest.mark.parametrize(
    "line,problem",
    [
        ("train_00009.jpg\n", "expected '<name>.jpg <label 1..7>'"),
        ("train_00009.jpg 8\n", "label must be an integer 1..7"),
        ("val_1.jpg 2\n", "file name must start with train_ or test_"),
    ],
)
def test_rafdb_malformed_label_line_names_file_and_line(tmp_path, line, problem):
    make_rafdb(tmp_path, extra_lines="\n" + line)
    with pytest.raises(DataError, match=rf"list_patition_label.txt:5: {problem}"):
        load_dataset("rafdb", str(tmp_path))


def test_rafdb_missing_image_is_named(tmp_path):
    make_rafdb(tmp_path, extra_lines="test_0002.jpg 3\n")
    with pytest.raises(DataError, match=r"1 image\(s\) listed .* missing, first: .*test_0002_aligned.jpg"):
        load_dataset("rafdb", str(tmp_path))


# ---------------------------------------------------------------- fer2013


def test_fer2013_csv(tmp_path):
    images = make_fer_csv(tmp_path / "fer2013.csv")
    fs = load_dataset("fer2013", str(tmp_path / "fer2013.csv"))
    assert fs.class_names == FER
    assert fs.split_names == ("train", "validation", "test")
    assert fs.labels.tolist() == [3, 0, 6, 5]
    assert [fs.split_names[s] for s in fs.split] == ["train", "train", "validation", "test"]
    assert fs.images.shape == (4, 3, 48, 48)
    for i, image in enumerate(images):
        assert torch.equal(fs.images[i], as_chw(image))


@pytest.mark.parametrize("where", ["csv", "dir", "parent"])
def test_fer2013_csv_paths(tmp_path, where):
    make_fer_csv((tmp_path / "fer2013").mkdir() or tmp_path / "fer2013" / "fer2013.csv")
    path = {"csv": tmp_path / "fer2013" / "fer2013.csv", "dir": tmp_path / "fer2013", "parent": tmp_path}[where]
    assert len(load_dataset("fer2013", str(path)).images) == 4


def test_fer2013_csv_icml_header_with_spaces(tmp_path):
    make_fer_csv(tmp_path / "icml_face_data.csv")
    text = (tmp_path / "icml_face_data.csv").read_text().replace("emotion,pixels,Usage", "emotion, pixels, Usage", 1)
    (tmp_path / "icml_face_data.csv").write_text(text)
    assert len(load_dataset("fer2013", str(tmp_path / "icml_face_data.csv")).images) == 4


@pytest.mark.parametrize(
    "row,problem",
    [
        (["9", "1 2 3 4", "Training"], "emotion must be an integer 0..6"),
        (["1", "1 2 3 4", "Train"], "Usage must be one of"),
        (["1"], "expected 3 columns"),
    ],
)
def test_fer2013_csv_malformed_row_names_file_and_line(tmp_path, row, problem):
    make_fer_csv(tmp_path / "fer2013.csv", bad_row=row)
    with pytest.raises(DataError, match=rf"fer2013.csv:6: {problem}"):
        load_dataset("fer2013", str(tmp_path / "fer2013.csv"))


def test_fer2013_csv_bad_header(tmp_path):
    (tmp_path / "train.csv").write_text("emotion,pixels\n0,1 2 3 4\n")
    with pytest.raises(DataError, match=r"train.csv:1: expected a header with columns emotion,pixels,Usage"):
        load_dataset("fer2013", str(tmp_path / "train.csv"))


def test_fer2013_csv_corrupt_pixels_skipped_and_counted(tmp_path, caplog):
    make_fer_csv(tmp_path / "fer2013.csv", bad_row=["2", "1 2 x", "Training"])
    with pytest.raises(DataError, match=r"fer2013.csv:6: pixels must be space-separated integers"):
        load_dataset("fer2013", str(tmp_path / "fer2013.csv"))
    with caplog.at_level(logging.WARNING, logger="ablate.data"):
        fs = load_dataset("fer2013", str(tmp_path / "fer2013.csv"), skip_corrupt=True)
    assert len(fs.images) == 4 and fs.skipped == (f"{tmp_path / 'fer2013.csv'}:6",)
    assert "skipped 1 unreadable image" in caplog.text


def test_fer2013_folder(tmp_path):
    pixels = make_fer_folder(tmp_path)
    fs = load_dataset("fer2013", str(tmp_path))  # the parent of fer2013/, as the tar extracts
    assert fs.class_names == FER
    assert fs.split_names == ("train", "validation", "test")
    # splits in train, validation, test order; classes in sorted folder order within a split
    order = [
        "train/angry/Training_2.png",
        "train/happy/Training_1.png",
        "validation/neutral/PublicTest_1.png",
        "test/sad/PrivateTest_1.png",
    ]
    assert fs.labels.tolist() == [FER.index(rel.split("/")[1]) for rel in order]
    assert fs.split.tolist() == [0, 0, 1, 2]
    for i, rel in enumerate(order):
        assert torch.equal(fs.images[i], as_chw(pixels[rel]))
    assert fs.class_counts("train") == [1, 0, 0, 1, 0, 0, 0]


def test_fer2013_folder_without_validation(tmp_path):
    make_fer_folder(tmp_path)
    for f in (tmp_path / "fer2013" / "validation" / "neutral").iterdir():
        f.unlink()
    fs = load_dataset("fer2013", str(tmp_path / "fer2013"))
    assert fs.split_names == ("train", "test")


def test_fer2013_unknown_class_folder(tmp_path):
    make_fer_folder(tmp_path)
    write_image(tmp_path / "fer2013" / "train" / "contempt" / "x.png", solid(3))
    with pytest.raises(
        DataError,
        match=r"unknown class folder .*train/contempt; allowed class names: angry, disgust, fear, happy, sad, "
        r"surprise, neutral",
    ):
        load_dataset("fer2013", str(tmp_path))


def test_fer2013_wrong_layout(tmp_path):
    (tmp_path / "faces").mkdir()
    with pytest.raises(DataError, match=r"fer2013: expected the Kaggle csv .*found: .*faces/"):
        load_dataset("fer2013", str(tmp_path))


# ---------------------------------------------------------------- folder


def test_folder_mixed_sizes_need_image_size(tmp_path):
    make_folder(tmp_path)
    with pytest.raises(DataError, match=r"images have different sizes .* pass the option image_size"):
        load_dataset("folder", str(tmp_path))


def test_folder_classes_splits_and_resize(tmp_path):
    make_folder(tmp_path)
    fs = load_dataset("folder", str(tmp_path), image_size=16)
    assert fs.class_names == ("cat", "dog", "eel")
    assert fs.split_names == ("train", "validation")  # val/ is the validation split
    assert fs.images.shape == (3, 3, 16, 16)
    assert fs.labels.tolist() == [0, 1, 2] and fs.split.tolist() == [0, 0, 1]
    assert close(fs.images[0], as_chw(solid(77, (16, 16))))
    assert close(fs.images[1], as_chw(solid((10, 20, 30), (16, 16))))
    assert close(fs.images[2], as_chw(solid((200, 100, 50), (16, 16))), tol=6)


def test_folder_empty_is_wrong_layout(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(DataError, match=r"folder: expected <root>/<split>/<class>/<image>.*found: .*readme.txt"):
        load_dataset("folder", str(tmp_path))


def test_folder_corrupt_image_named_or_skipped(tmp_path, caplog, cache_in_tmp):
    make_folder(tmp_path)
    bad = tmp_path / "train" / "dog" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    with pytest.raises(DataError, match=rf"cannot decode image {bad}"):
        load_dataset("folder", str(tmp_path), image_size=8)
    with caplog.at_level(logging.WARNING, logger="ablate.data"):
        fs = load_dataset("folder", str(tmp_path), image_size=8, skip_corrupt=True)
    assert fs.skipped == (str(bad),) and len(fs.images) == 3
    assert fs.labels.tolist() == [0, 1, 2]
    assert "skipped 1 unreadable image(s)" in caplog.text
    # the cached entry remembers the skip: without skip_corrupt it is an error again
    with pytest.raises(DataError, match=rf"cannot decode image {bad}"):
        load_dataset("folder", str(tmp_path), image_size=8)


# ---------------------------------------------------------------- errors shared by every source


@pytest.mark.parametrize("name", ["rafdb", "fer2013", "folder"])
def test_missing_path(tmp_path, name):
    with pytest.raises(DataError, match=rf"{name}: path .*nowhere does not exist; expected "):
        load_dataset(name, str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match=rf"{name}: needs a path"):
        load_dataset(name, None)


@pytest.mark.parametrize("name", ["rafdb", "fer2013", "folder"])
@pytest.mark.parametrize("size", [0, -3, 2.5, True, "48"])
def test_bad_image_size(tmp_path, name, size):
    # "( or null)?": the nullable option may or may not be spelled out in Param.allowed()
    with pytest.raises(
        ConfigError, match=r"data.options.image_size: .*allowed: a int in \[1, inf\)( or null)? \(image_size: resize"
    ):
        load_dataset(name, str(tmp_path), image_size=size)


# ---------------------------------------------------------------- the cache


def test_cache_hit_does_not_decode(tmp_path, monkeypatch, cache_in_tmp):
    make_rafdb(tmp_path)
    first = load_dataset("rafdb", str(tmp_path))
    monkeypatch.setattr(decode, "decode_image", Counter(decode.decode_image, fail=True))
    second = load_dataset("rafdb", str(tmp_path))
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)
    assert (first.split_names, first.class_names) == (second.split_names, second.class_names)
    assert [p.name for p in cache_in_tmp.iterdir()] == [
        p.name for p in cache_in_tmp.glob("rafdb-*.pt")
    ]  # no temp files left


def test_cache_hit_csv_does_not_parse(tmp_path, monkeypatch):
    make_fer_csv(tmp_path / "fer2013.csv")
    first = load_dataset("fer2013", str(tmp_path / "fer2013.csv"))
    monkeypatch.setattr(decode, "decode_pixel_string", Counter(decode.decode_pixel_string, fail=True))
    assert torch.equal(load_dataset("fer2013", str(tmp_path / "fer2013.csv")).images, first.images)


def test_cache_invalidated_when_a_file_changes(tmp_path, monkeypatch, cache_in_tmp):
    make_fer_folder(tmp_path)
    load_dataset("fer2013", str(tmp_path))
    counter = Counter(decode.decode_image)
    monkeypatch.setattr(decode, "decode_image", counter)
    changed = tmp_path / "fer2013" / "train" / "happy" / "Training_1.png"
    write_image(changed, np.full((48, 48), 33, dtype=np.uint8))
    stat = changed.stat()
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a new mtime even on coarse clocks
    fs = load_dataset("fer2013", str(tmp_path))
    assert counter.calls == 4
    assert int(fs.images[1].float().mean()) == 33
    assert len(list(cache_in_tmp.glob("fer2013-*.pt"))) == 1  # the stale entry was dropped
    # and a new file is noticed too
    write_image(tmp_path / "fer2013" / "test" / "fear" / "PrivateTest_2.png", np.zeros((48, 48), np.uint8))
    assert len(load_dataset("fer2013", str(tmp_path)).images) == 5


def test_cache_keyed_by_options(tmp_path, cache_in_tmp):
    make_rafdb(tmp_path)
    load_dataset("rafdb", str(tmp_path))
    load_dataset("rafdb", str(tmp_path), image_size=20)
    assert len(list(cache_in_tmp.glob("rafdb-*.pt"))) == 2


def test_use_cache_false_and_cache_dir_option(tmp_path, cache_in_tmp):
    make_rafdb(tmp_path)
    load_dataset("rafdb", str(tmp_path), use_cache=False)
    assert not cache_in_tmp.exists()
    load_dataset("rafdb", str(tmp_path), cache_dir=str(tmp_path / "elsewhere"))
    assert len(list((tmp_path / "elsewhere").glob("rafdb-*.pt"))) == 1


def test_damaged_cache_entry_is_rebuilt(tmp_path, cache_in_tmp, caplog):
    make_rafdb(tmp_path)
    first = load_dataset("rafdb", str(tmp_path))
    (entry,) = cache_in_tmp.glob("rafdb-*.pt")
    entry.write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING, logger="ablate.data"):
        again = load_dataset("rafdb", str(tmp_path))
    assert torch.equal(first.images, again.images) and "ignoring unreadable cache entry" in caplog.text


def test_extract_archive_once(tmp_path, cache_in_tmp):
    write_image(tmp_path / "src" / "fer2013" / "train" / "sad" / "1.png", solid(5))
    with tarfile.open(tmp_path / "small.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src" / "fer2013", arcname="fer2013")
    dest = cache.extract_archive(tmp_path / "small.tar.gz")
    assert dest.parent == cache_in_tmp / "archives" and (dest / "fer2013" / "train" / "sad" / "1.png").is_file()
    assert cache.extract_archive(tmp_path / "small.tar.gz") == dest
    assert [p.name for p in dest.parent.iterdir()] == [dest.name]  # no temporary folder left


def sized_file(path: Path, size: int, mtime: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    os.utime(path, (mtime, mtime))
    return path


def test_prune_removes_least_recently_used_first(tmp_path):
    root = tmp_path / "cache"
    a, b, c = (sized_file(root / f"rafdb-{str(i) * 20}-{'f' * 20}.pt", 100, mtime=i) for i in (1, 2, 3))
    extracted = root / "archives" / f"fer2013-{'e' * 20}"
    sized_file(extracted / "x" / "1.png", 60, mtime=4)
    sized_file(extracted / "2.png", 40, mtime=4)
    os.utime(extracted, (4, 4))
    own = sized_file(root / "weights.pt", 1000, mtime=0)  # not a name the cache writes: never touched
    kept = sized_file(root / f"fer2013-{'a' * 20}-{'b' * 20}.pt", 100, mtime=0)  # just written, though oldest
    # 500 bytes of cache items; the limit 300 takes the two oldest, a then b, and leaves c, the archive, kept
    assert cache.prune(root, kept, limit=300) == [a, b]
    assert c.is_file() and extracted.is_dir() and own.is_file() and kept.is_file()
    # limit 0: everything but what was just written, oldest first (the archive folder counts its files: 100)
    assert cache.prune(root, kept, limit=0) == [c, extracted]
    assert sorted(p.name for p in root.iterdir()) == sorted(["archives", own.name, kept.name])


def test_cache_limit_keeps_the_newest_and_a_hit_marks_use(tmp_path, monkeypatch, cache_in_tmp):
    make_rafdb(tmp_path)
    load_dataset("rafdb", str(tmp_path))
    (first,) = cache_in_tmp.glob("rafdb-*.pt")
    os.utime(first, (1, 1))
    load_dataset("rafdb", str(tmp_path))  # a hit: marked as used now
    assert first.stat().st_mtime > 1
    monkeypatch.setenv("ABLATE_CACHE_LIMIT_GB", "0")
    load_dataset("rafdb", str(tmp_path), image_size=20)
    (only,) = cache_in_tmp.glob("rafdb-*.pt")
    assert only != first  # over the limit: the older entry went, the one just written stayed


@pytest.mark.parametrize("value", ["lots", "-1", "nan"])
def test_bad_cache_limit_is_named_before_decoding(tmp_path, monkeypatch, value):
    make_rafdb(tmp_path)
    monkeypatch.setenv("ABLATE_CACHE_LIMIT_GB", value)
    monkeypatch.setattr(decode, "decode_image", Counter(decode.decode_image, fail=True))
    with pytest.raises(DataError, match=r"ABLATE_CACHE_LIMIT_GB.*a number >= 0"):
        load_dataset("rafdb", str(tmp_path))
