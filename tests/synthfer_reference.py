"""synthfer's reference renderings, pinned so that a change of the data set is caught on any x86 CPU.

The rendering is float32 arithmetic through MKL and torch's vectorised kernels, whose rounding depends on the CPU
(and on ``ATEN_CPU_CAPABILITY`` and ``MKL_CBWR``): a pixel whose value lies within rounding of a grey level's
boundary can come out one level apart (measured: 4 to 14 pixels in a million, never more than one level). No
arithmetic that keeps today's images can be exact, so the images are pinned by a fingerprint that tolerates
this, while the labels, the split and the soft labels (drawn, not computed by those kernels) are pinned exactly:

- per image, the sum of its pixels and the sum of its pixels with pseudo-random signs (one sign per pixel
  position, from numpy's PCG64, the same on every platform). A pixel one level off moves each sum of its image by
  exactly one, so images within one level of the reference on k pixels differ from it by at most k in total over
  all sums; any real change of the renderer moves these sums by thousands.

    python tests/synthfer_reference.py            # print this machine's fingerprints
    python tests/synthfer_reference.py --write    # rewrite tests/fixtures/synthfer_reference.json (a data change)
    python tests/synthfer_reference.py --json 0 1 # the fingerprints of CONFIGS[0] and [1], as JSON (the tests)
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "synthfer_reference.json"
# The renderings pinned: small, and one per image size class (1, 2 and 3 blur taps).
CONFIGS = [
    dict(seed=0, scale=0.02, image_size=32),
    dict(seed=3, scale=0.01, image_size=64),
    dict(seed=1, scale=0.005, image_size=96),
]
# Tolerated: pixels off by one grey level, at most this share of all pixels (measured at most 6.5e-6).
MAX_SHARE_OFF_BY_ONE = 1e-4


def digest(*tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def signs(pixels: int) -> np.ndarray:
    """One sign per pixel position, the same on every platform."""
    return np.random.default_rng(0).integers(0, 2, pixels) * 2 - 1


def fingerprint(options: dict[str, Any]) -> dict[str, Any]:
    from ablate.data import load_dataset

    return {"options": options, **fingerprint_of(load_dataset("synthfer", **options))}


def fingerprint_of(faces, images=None) -> dict[str, Any]:
    """What is pinned of one rendering (``faces``, or its labels with ``images`` instead of its own): exact digests
    of the labels, split and soft labels (and, for a quick exact match, of everything), and the two sums per
    image."""
    images = faces.images if images is None else images
    flat = images.numpy().reshape(len(images), -1).astype(np.int64)
    return {
        "digest": digest(images, faces.labels, faces.split, faces.soft_labels),
        "labels_split_soft_labels": digest(faces.labels, faces.split, faces.soft_labels),
        "pixels": int(flat.size),
        "sums": flat.sum(1).tolist(),
        "signed_sums": (flat * signs(flat.shape[1])).sum(1).tolist(),
    }


def differences(got: dict[str, Any], reference: dict[str, Any]) -> list[str]:
    """What makes ``got`` another data set than ``reference`` (empty: the same, up to the rounding tolerated)."""
    if got["digest"] == reference["digest"]:
        return []
    if got["labels_split_soft_labels"] != reference["labels_split_soft_labels"]:
        return ["the labels, split or soft labels differ (they must be identical on every machine)"]
    if len(got["sums"]) != len(reference["sums"]) or got["pixels"] != reference["pixels"]:
        return [f"{len(got['sums'])} images of {got['pixels']} pixels, the reference has {len(reference['sums'])}"]
    # Each pixel one level off moves each sum of its image by one: the larger of the two changes per image is at
    # most the number of its pixels that are off.
    off = [
        max(abs(a - b), abs(c - d))
        for a, b, c, d in zip(got["sums"], reference["sums"], got["signed_sums"], reference["signed_sums"])
    ]
    allowed = MAX_SHARE_OFF_BY_ONE * reference["pixels"]
    if sum(off) > allowed:
        worst = int(np.argmax(off))
        return [
            f"the images differ from the reference by more than {MAX_SHARE_OFF_BY_ONE:.0e} of their pixels one grey "
            f"level off can explain ({sum(off)} > {allowed:.0f}; image {worst} alone: {off[worst]})"
        ]
    return []


def load_reference() -> list[dict[str, Any]]:
    return json.loads(FIXTURE.read_text())


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    if sys.argv[1:2] == ["--json"]:
        print(json.dumps([fingerprint(CONFIGS[int(i)]) for i in sys.argv[2:]]))
    elif sys.argv[1:] == ["--write"]:
        FIXTURE.write_text(json.dumps([fingerprint(options) for options in CONFIGS], separators=(",", ":")) + "\n")
        print(f"wrote {FIXTURE}")
    else:
        for options in CONFIGS:
            print(json.dumps(options), fingerprint(options)["digest"])
