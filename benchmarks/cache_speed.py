"""How much the decoded-image cache saves on FER2013 in full (35,887 JPEGs): first load vs. cached load.

    python benchmarks/cache_speed.py [ARCHIVE]

ARCHIVE defaults to $ABLATE_FER2013, else ../shared/data/fer2013.tar.gz next to the repository. It is extracted
once into the ablate cache folder (outside the repository). Each run decodes into a fresh temporary cache, so
the first load is always a real decode (including writing the entry); the second load is a cache hit, timed
both as returned (pixels memory-mapped) and after reading every pixel page, so the ratio does not hide I/O.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from ablate.data import load_dataset
from ablate.data.cache import extract_archive

DEFAULT_ARCHIVE = Path(__file__).resolve().parents[1].parent / "shared/data/fer2013.tar.gz"


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def touch_every_page(images) -> int:
    """Read one byte per 4 KiB page, which makes a memory-mapped tensor read all of its file."""
    return int(images.view(-1)[::4096].sum())


def main() -> int:
    archive = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ABLATE_FER2013") or DEFAULT_ARCHIVE)
    if not archive.is_file():
        print(f"skipped: FER2013 archive not found at {archive} (pass its path or set ABLATE_FER2013)")
        return 0
    root, extract_s = timed(lambda: extract_archive(archive))
    print(f"source: {root} (extract or reuse: {extract_s:.1f} s)")
    cache_dir = tempfile.mkdtemp(prefix="ablate-cache-bench-")
    try:

        def load():
            return load_dataset("fer2013", str(root), cache_dir=cache_dir)

        first, first_s = timed(load)
        del first
        second, second_s = timed(load)
        _, touch_s = timed(lambda: touch_every_page(second.images))
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    n, shape = len(second.images), tuple(second.images.shape[1:])
    print(f"images: {n} x {shape}")
    print(f"first load (decode + write cache): {first_s:8.2f} s")
    print(f"second load (cache hit):           {second_s:8.2f} s   ratio {first_s / second_s:6.1f}x")
    print(
        f"second load + read every pixel:    {second_s + touch_s:8.2f} s   ratio {first_s / (second_s + touch_s):6.1f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
