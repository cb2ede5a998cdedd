"""FER2013 in full (../shared/data/fer2013.tar.gz): every class and split count against its README's table.

The archive is extracted once into the ablate cache folder and decoded once into the decoded-image cache, so
only the first run pays for decoding 35,887 JPEGs; later runs take about a second.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from ablate.data import load_dataset
from ablate.data.cache import extract_archive

ARCHIVE = Path(
    os.environ.get("ABLATE_FER2013") or Path(__file__).resolve().parents[1].parent / "shared/data/fer2013.tar.gz"
)

pytestmark = pytest.mark.skipif(
    not ARCHIVE.is_file(), reason=f"FER2013 archive not found at {ARCHIVE} (set ABLATE_FER2013 to its path)"
)

# ../shared/data/README.md: class -> (train, validation, test)
COUNTS = {
    "angry": (3995, 467, 491),
    "disgust": (436, 56, 55),
    "fear": (4097, 496, 528),
    "happy": (7215, 895, 879),
    "sad": (4830, 653, 594),
    "surprise": (3171, 415, 416),
    "neutral": (4965, 607, 626),
}
SPLITS = ("train", "validation", "test")


@pytest.fixture(scope="module")
def fer():
    return load_dataset("fer2013", str(extract_archive(ARCHIVE)))


def test_names_and_shape(fer):
    assert fer.class_names == tuple(COUNTS)
    assert fer.split_names == SPLITS
    assert fer.images.shape == (35887, 3, 48, 48) and fer.images.dtype == torch.uint8
    assert fer.skipped == ()


@pytest.mark.parametrize("split", SPLITS)
def test_class_counts_match_the_readme(fer, split):
    expected = [counts[SPLITS.index(split)] for counts in COUNTS.values()]
    assert fer.class_counts(split) == expected


def test_grey_images_become_three_equal_channels(fer):
    sample = fer.images[::997]
    assert torch.equal(sample[:, 0], sample[:, 1]) and torch.equal(sample[:, 1], sample[:, 2])


def test_thirteen_blank_images(fer):
    """The README: 13 images are blank (pixel std < 1), as in the original release."""
    blank = sum(int((chunk[:, 0].flatten(1).float().std(dim=1) < 1).sum()) for chunk in fer.images.split(4096))
    assert blank == 13
