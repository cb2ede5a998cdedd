"""``synthfer``: the embedded default data set, procedurally rendered faces in the seven RAF-DB classes.

Why it exists: every study, test and benchmark must run without a download. The faces are drawn from implicit
shapes (ellipses, segments, lip curves given by signed distances) on a face-aligned canvas shared by a batch,
then warped by each face's pose with ``grid_sample``: a batch renders in a few hundred vectorised tensor
operations, with no per-image Python loop (about 3,500 images/s at 64x64 on one CPU core).

What makes it a *face expression* set rather than a toy:

* identity: face shape, jaw, skin tone, hair (colour, style, hairline), feature spacing and size, iris colour;
* pose: in-plane rotation, scale, shift (one affine warp per face) and a small yaw (features slide sideways);
* scene: background colour, gradient and low-frequency texture, clothes, directional lighting,
  brightness/contrast/colour cast, blur and sensor noise;
* occluders: a hand, sunglasses, a hair fringe over the brows, a random patch, a face mask;
* expressions: one vector of geometric facial parameters per class (brows, eyes, mouth, nose wrinkle, cheeks);
* ambiguity: each face is a convex blend of its class, one usual confusion of it and neutral, plus a personal
  "resting face" offset. The blend weights are returned as ``soft_labels``; the hard label (the class the face
  was sampled as) always keeps more than half of the weight, so it is the soft label's argmax.

The modules, one job each: ``sampling`` (what each image is: every per-image parameter, drawn up front),
``canvas`` (the drawing surface and its shapes), ``face`` (the face parts), ``occluders``, ``render`` (warp,
composition, lighting, blur, noise; a split in chunks). This module holds the loader and its options.

Determinism: every per-image parameter of a split is drawn up front from one ``torch.Generator`` whose seed mixes
``seed`` and the split's name, and so is a bank of pixel-noise fields (from a second stream); rendering itself
draws nothing, so chunk boundaries cannot change a pixel. The same seed gives byte-identical images whatever else
runs in the process, and train and test are independent streams (different faces). No global RNG is touched;
the intra-op thread count is set to one while rendering and restored after (see ``render._one_thread``).
"""

from __future__ import annotations

import torch

from ablate.config.params import Param
from ablate.data.base import FaceSet
from ablate.data.registry import register_dataset
from ablate.data.synthfer.render import render_split
from ablate.data.synthfer.sampling import CLASS_NAMES, SPLIT_NAMES, synthfer_counts

SYNTHFER_OPTIONS = {
    "seed": Param(0, "seed of the rendered faces (every image's parameters and noise); not the split or training seed"),
    "image_size": Param(64, "side of the square images, in pixels", low=32, high=224),
    "scale": Param(
        1.0,
        "size of the set relative to RAF-DB's (train 12,271, test 3,068 images), per class, rounded, at least 1",
        low=0.0,
        open_low=True,
    ),
}


@register_dataset("synthfer", options=SYNTHFER_OPTIONS, reads_files=False)
def load_synthfer(path: str | None, *, seed: int, image_size: int, scale: float) -> FaceSet:
    """The synthetic set: RAF-DB's classes, sizes (times ``scale``) and imbalance, train then test.

    Call it through ``ablate.data.load_dataset("synthfer", **options)``, which checks the options and fills
    their defaults."""
    counts = synthfer_counts(scale)
    images, labels, split, soft = [], [], [], []
    for s, name in enumerate(SPLIT_NAMES):
        imgs, params = render_split(seed, name, counts[name], image_size)
        images.append(imgs)
        labels.append(params["labels"])
        soft.append(params["soft"])
        split.append(torch.full((len(imgs),), s, dtype=torch.int64))
    return FaceSet(
        images=torch.cat(images),
        labels=torch.cat(labels).to(torch.int64),
        split=torch.cat(split),
        split_names=SPLIT_NAMES,
        class_names=CLASS_NAMES,
        soft_labels=torch.cat(soft).to(torch.float32),
    )


__all__ = ["CLASS_NAMES", "SPLIT_NAMES", "SYNTHFER_OPTIONS", "load_synthfer", "render_split", "synthfer_counts"]
