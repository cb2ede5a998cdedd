"""Weak and strong views of uint8 image batches, on their own device: the views and their hyper-parameters
(``views``), the RandAugment pool (``ops``) and its per-sample, sync-free dispatch (``randaugment``)."""

from ablate.augment.ops import OP_NAMES, POOL, Op
from ablate.augment.views import (
    ADACM_CUTOUT_GREY,
    CUTOUT_FILLS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    INTERPOLATIONS,
    PAD_MODES,
    PARAMS,
    STRONG_ORDERS,
    Augmenter,
)

__all__ = [
    "ADACM_CUTOUT_GREY",
    "CUTOUT_FILLS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INTERPOLATIONS",
    "OP_NAMES",
    "PAD_MODES",
    "PARAMS",
    "POOL",
    "STRONG_ORDERS",
    "Augmenter",
    "Op",
]
