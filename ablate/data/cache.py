"""The decoded-image disk cache: decode a real data source once, load the uint8 tensors on every later run.

An entry is one ``torch.save`` file under the cache folder (``cache_dir``, else ``$ABLATE_CACHE``, else
``~/.cache/ablate``; never inside the repository). Its name hashes the loader, the source's absolute path and the
options that change the pixels (``image_size``), then the listing of the source's files with their sizes and
modification times: editing, adding or removing a file gives a new name, so a stale entry is never read. Entries
are written to a temporary name and renamed, so a crash or a concurrent trial never sees half a file.

Every new entry or extraction would otherwise stay forever (a clone at a new path, an edited file), and a full
disk stops far more than this cache: after each write, the least recently used items are removed until the cache
holds at most ``$ABLATE_CACHE_LIMIT_GB`` (default 8). A hit marks its item as used by touching it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ablate.config.params import Param
from ablate.data.base import FaceSet
from ablate.data.decode import faceset_from_files, report_skipped
from ablate.errors import DataError
from ablate.io import atomic_torch_save

log = logging.getLogger("ablate.data")

DEFAULT_LIMIT_GB = 8.0
# The names entry_path and extract_archive give; nothing else in the folder is ever pruned.
ENTRY_NAME = re.compile(r"[\w.]+-[0-9a-f]{20}-[0-9a-f]{20}\.pt")
EXTRACTED_NAME = re.compile(r"[^.]+-[0-9a-f]{20}")

# Bump when the entry format or the decoding changes, so that old entries are no longer matched.
CACHE_VERSION = 1

# The options of every source that decodes image files (rafdb, fer2013, folder): how to decode, and the cache.
FILE_OPTIONS = {
    "image_size": Param(
        None,
        "resize every image to N x N pixels (bilinear); null keeps the native size, which must then be one size",
        kind=int,
        low=1,
        nullable=True,
    ),
    "skip_corrupt": Param(False, "skip and count the images that cannot be decoded, instead of stopping at the first"),
    "cache_dir": Param(None, "the decoded-image cache folder (null: $ABLATE_CACHE, else ~/.cache/ablate)", kind=str),
    "use_cache": Param(True, "read and write the decoded-image cache (decode once, load in milliseconds after)"),
}


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where entries live: the option, else $ABLATE_CACHE, else ~/.cache/ablate."""
    chosen = cache_dir if cache_dir is not None else os.environ.get("ABLATE_CACHE") or Path.home() / ".cache" / "ablate"
    return Path(chosen).expanduser().resolve()


def cache_limit_bytes() -> int:
    """$ABLATE_CACHE_LIMIT_GB in bytes (default 8 GB); a clear error for a value that is not a number >= 0."""
    text = os.environ.get("ABLATE_CACHE_LIMIT_GB", "")
    try:
        limit = float(text) if text.strip() else DEFAULT_LIMIT_GB
    except ValueError:
        limit = -1.0
    if not limit >= 0:  # also catches nan
        raise DataError(f"ABLATE_CACHE_LIMIT_GB={text!r}: give the cache's size limit in GB, a number >= 0")
    return int(limit * 1e9)


def _size(item: Path) -> int:
    if item.is_file():
        return item.stat().st_size
    return sum(path.stat().st_size for path in item.rglob("*") if path.is_file())


def mark_used(item: Path) -> None:
    """Record a hit (the modification time is the last use), so that pruning removes what nobody reads."""
    with contextlib.suppress(OSError):  # a read-only cache still serves hits
        os.utime(item)


def prune(root: Path, keep: Path, limit: int) -> list[Path]:
    """Remove the least recently used entries and extractions until ``root`` holds at most ``limit`` bytes.

    Only names this module writes are candidates (a cache folder shared with other files loses none of them);
    ``keep`` (what was just written) is never removed. A trial that has an entry memory-mapped keeps reading it:
    removing a file only unlinks its name. Returns what was removed, oldest first.
    """
    entries = (path for path in root.glob("*.pt") if ENTRY_NAME.fullmatch(path.name))
    archives = (root / "archives").glob("*")
    extracted = (path for path in archives if path.is_dir() and EXTRACTED_NAME.fullmatch(path.name))
    items = [*entries, *extracted]
    sized = []
    for item in items:
        try:
            sized.append((item.stat().st_mtime, item, _size(item)))
        except OSError:  # removed meanwhile by another process
            continue
    total = sum(size for _, _, size in sized)
    removed = []
    for _, item, size in sorted(sized, key=lambda entry: entry[0]):
        if total <= limit:
            break
        if item == keep:
            continue
        if item.is_dir():
            shutil.rmtree(item, ignore_errors=True)
        else:
            item.unlink(missing_ok=True)
        total -= size
        removed.append(item)
    if removed:
        log.info(
            "cache %s: removed %d least recently used item(s) to stay under %.2f GB", root, len(removed), limit / 1e9
        )
    return removed


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def listing_digest(files: Sequence[str | Path]) -> str:
    """Hash of (path, size, mtime) of every file: changes whenever a file is edited, added or removed."""
    hasher = hashlib.sha256()
    for path in files:
        try:
            stat = os.stat(path)
        except OSError as error:
            raise DataError(f"cannot read {path}: {error}") from error
        hasher.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return hasher.hexdigest()[:20]


def entry_path(root: Path, loader: str, source: Path, options: dict, files: Sequence[str | Path]) -> Path:
    """``<loader>-<hash of source and options>-<hash of the listing>.pt``; the first two parts name the slot."""
    slot = _digest(json.dumps([CACHE_VERSION, loader, str(source), options], sort_keys=True))
    return root / f"{loader}-{slot}-{listing_digest(files)}.pt"


def _slot_prefix(entry: Path) -> str:
    return entry.name.rsplit("-", 1)[0] + "-"


def save_entry(entry: Path, faceset: FaceSet, limit: int) -> None:
    """Write atomically (temporary name + rename), drop older entries of the same slot (stale listings), then
    prune the cache to ``limit`` bytes."""
    payload = {
        "version": CACHE_VERSION,
        "images": faceset.images,
        "labels": faceset.labels,
        "split": faceset.split,
        "split_names": list(faceset.split_names),
        "class_names": list(faceset.class_names),
        "skipped": list(faceset.skipped),
    }
    atomic_torch_save(entry, payload)
    for old in entry.parent.glob(_slot_prefix(entry) + "*.pt"):
        if old != entry:
            old.unlink(missing_ok=True)
    prune(entry.parent, entry, limit)


def load_entry(entry: Path) -> FaceSet | None:
    """The cached FaceSet, or None when there is no entry or it cannot be read (it is then rebuilt).

    The pixels are memory-mapped copy-on-write: a load costs milliseconds, pages are read on first use, and the
    trials on one machine share the page cache instead of each holding a private copy. Entries are only ever
    replaced by rename, never rewritten in place, so a mapping never sees a file change under it.
    """
    if not entry.is_file():
        return None
    try:
        payload = torch.load(entry, weights_only=True, mmap=True)
        if payload.get("version") != CACHE_VERSION:
            return None
        mark_used(entry)
        return FaceSet(
            images=payload["images"],
            labels=payload["labels"],
            split=payload["split"],
            split_names=tuple(payload["split_names"]),
            class_names=tuple(payload["class_names"]),
            skipped=tuple(payload["skipped"]),
        )
    except Exception as error:  # a damaged entry must never stop a run: decode again
        log.warning("ignoring unreadable cache entry %s (%s); decoding again", entry, error)
        return None


def load_or_build(
    loader: str,
    source: Path,
    files: Sequence[str | Path],
    options: dict,
    build: Callable[[], FaceSet],
    *,
    skip_corrupt: bool,
    cache_dir: str | os.PathLike | None,
    use_cache: bool,
) -> FaceSet:
    """Return the cached FaceSet of (loader, source, options, files), or ``build()`` it and cache it.

    ``files`` are all the files the source reads (images and label files); ``options`` are those that change the
    decoded pixels. ``skip_corrupt`` is not part of the key: an entry that skipped files is an error again when
    the caller did not ask for skipping, exactly as a fresh decode would be.
    """
    if not use_cache:
        return build()
    limit = cache_limit_bytes()  # a bad setting fails before the decode, not after
    entry = entry_path(cache_root(cache_dir), loader, source, options, files)
    cached = load_entry(entry)
    if cached is not None:
        if cached.skipped and not skip_corrupt:
            more = f" (and {len(cached.skipped) - 1} more)" if len(cached.skipped) > 1 else ""
            raise DataError(
                f"cannot decode image {cached.skipped[0]}{more}; pass skip_corrupt=True to skip unreadable images"
            )
        report_skipped(loader, cached.skipped)
        log.info("%s: %d images from cache %s", loader, len(cached.images), entry)
        return cached
    start = time.perf_counter()
    faceset = build()
    log.info("%s: decoded %d images in %.1f s", loader, len(faceset.images), time.perf_counter() - start)
    try:
        save_entry(entry, faceset, limit)
    except OSError as error:  # a read-only or full disk costs speed next time, not this run
        log.warning("%s: could not write the cache entry %s (%s)", loader, entry, error)
    return faceset


def load_files(
    loader: str,
    source: Path,
    files: Sequence[str | Path],
    labels: Sequence[int],
    split: Sequence[int],
    split_names: Sequence[str],
    class_names: Sequence[str],
    *,
    extra_files: Sequence[str | Path] = (),
    image_size: int | None,
    skip_corrupt: bool,
    cache_dir: str | os.PathLike | None,
    use_cache: bool,
) -> FaceSet:
    """The whole load of a source made of labeled image files: cache hit, or decode and cache.

    ``extra_files`` (label files) are part of the cache key but are not decoded.
    """
    return load_or_build(
        loader,
        source,
        [*extra_files, *files],
        {"image_size": image_size},
        lambda: faceset_from_files(loader, files, labels, split, split_names, class_names, image_size, skip_corrupt),
        skip_corrupt=skip_corrupt,
        cache_dir=cache_dir,
        use_cache=use_cache,
    )


def extract_archive(archive: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """Extract a tar archive once into the cache folder and return that folder (reused while the archive is unchanged).

    For tests and benchmarks that need real data outside the repository. Extraction goes to a temporary folder
    that is renamed into place, so an interrupted extraction is never mistaken for a finished one.
    """
    archive = Path(archive).resolve()
    limit = cache_limit_bytes()
    stat = archive.stat()
    version = _digest(f"{archive}\0{stat.st_size}\0{stat.st_mtime_ns}")
    root = cache_root(cache_dir)
    dest = root / "archives" / f"{archive.name.split('.')[0]}-{version}"
    if dest.is_dir():
        mark_used(dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".", suffix=".tmp", dir=dest.parent))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        os.replace(tmp, dest)
    except OSError:
        if not dest.is_dir():  # not a lost race with another process: a real failure
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    prune(root, dest, limit)
    return dest
