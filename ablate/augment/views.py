"""The views of a batch of uint8 images (normalised, weak, strong), made on the batch's own device, and every
hyper-parameter of them, declared once (``PARAMS``).

Why this module exists: FixMatch-pytorch and Ada-CM decode and augment every image with PIL in DataLoader
workers. ablate keeps the decoded uint8 images on the trial's device (docs/architecture.md, "Where the data lives") and
augments whole batches there with tensor maths, so no image is augmented in a Python loop and no step waits for
the host: ``weak`` and ``strong`` read no tensor on the host (a test watches every torch call they make).

Views (input uint8 [B, 3, H, W], output float32 [B, 3, H, W], normalised with ``mean``/``std``):

- ``weak``: horizontal flip (``flip_p``) and, with probability ``crop_p``, a random crop of the image padded by
  ``pad = max(1, round(pad_fraction * side))`` pixels (``pad_mode``).
- ``strong``: the weak flip and crop, ``strong_ops`` RandAugment operations drawn per sample
  (``randaugment.py``, the pool in ``ops.py``) and cutout, in the order ``strong_order`` says:
  ``geometry_first`` (FixMatch) flips and crops, then applies the operations and cutout; ``ops_first`` (Ada-CM)
  applies the operations and cutout to the image, then crops and flips it, so the crop's padding is never
  transformed and the cutout square moves with the crop. (Ada-CM also resizes its 100 px faces to 224 between
  the two; here the images already have their training size.)

Cutout (FixMatch's paper, Ada-CM's code): one square per sample, its side a fraction of the image side drawn
uniformly in [0, ``cutout``] (``cutout_side: fixed``: exactly ``cutout``, FixMatch's 16 px of 32), centred
uniformly over the image and clipped at its borders, filled with ``cutout_fill``. (Ada-CM's ``CutoutAbs``,
dataset/randaugment.py:122-140, like FixMatch's and USB's, clamps the top-left corner at 0 and keeps the full side
from there, so its squares at the top and left borders are not clipped; not reproduced.)

Randomness: every random number is drawn here with the optional ``torch.Generator`` (on the images' device),
so a seeded generator gives the same views run after run. Kornia's augmentation modules draw from the global
RNG, which is one reason they are not used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ablate.augment.ops import OP_NAMES, POOL, Op
from ablate.augment.randaugment import PerSampleRandAugment
from ablate.config.params import Param
from ablate.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ADACM_CUTOUT_GREY = (125, 123, 114)  # dataset/randaugment.py:136 of Ada-CM, 8-bit RGB

PAD_MODES = ("reflect", "zeros")
STRONG_ORDERS = ("geometry_first", "ops_first")
INTERPOLATIONS = ("bilinear", "nearest")
CUTOUT_FILLS = ("mean", "adacm")
CUTOUT_SIDES = ("uniform", "fixed")

# The references cited below: Ada-CM = hangyu94/Ada-CM at aca2b35 (main.py, dataset/raf.py,
# dataset/randaugment.py); FixMatch = kekmodel/FixMatch-pytorch at 040be3b (dataset/cifar.py,
# dataset/randaugment.py) and google-research/fixmatch at d4985a1.
PARAMS: dict[str, Param] = {
    "mean": Param(
        list(IMAGENET_MEAN),
        "per-channel mean m of the normalisation (x / 255 - m) / s, RGB; ImageNet's, as Ada-CM (main.py:87)",
        kind=Sequence,
    ),
    "std": Param(
        list(IMAGENET_STD),
        "per-channel std s of the normalisation, RGB, each > 0; ImageNet's, as Ada-CM (main.py:88)",
        kind=Sequence,
    ),
    "flip_p": Param(
        0.5,
        "probability of a horizontal flip, weak and strong views; Ada-CM and FixMatch: 0.5 "
        "(RandomHorizontalFlip, Ada-CM main.py:95, FixMatch dataset/cifar.py:111)",
        low=0.0,
        high=1.0,
    ),
    "crop_p": Param(
        0.5,
        "probability of the padded random crop; Ada-CM: 0.5 (RandomApply([RandomCrop(224, padding=8)], p=0.5), "
        "main.py:92-94); FixMatch: 1.0 (dataset/cifar.py:112-114)",
        low=0.0,
        high=1.0,
    ),
    "pad_fraction": Param(
        8 / 224,
        "padding of the crop as a fraction of the image side (rounded, at least 1 px unless 0); Ada-CM: 8 px at "
        "224 (main.py:93); FixMatch: 0.125 (4 px at 32, dataset/cifar.py:113)",
        low=0.0,
        high=0.5,
        open_high=True,
    ),
    "pad_mode": Param(
        "reflect",
        "what the crop's padding holds: reflect (FixMatch: padding_mode='reflect', dataset/cifar.py:114, and "
        "google-research's augment_shift) or zeros, black (Ada-CM: torchvision RandomCrop's fill 0, main.py:93)",
        choices=PAD_MODES,
    ),
    "strong_order": Param(
        "geometry_first",
        "geometry_first: flip and crop, then the operations and cutout (FixMatch: dataset/cifar.py:115-120); "
        "ops_first: the operations and cutout on the image, then crop and flip (Ada-CM inserts RandAugment at "
        "the front of its weak pipeline, dataset/raf.py:16)",
        choices=STRONG_ORDERS,
    ),
    "strong_ops": Param(
        2,
        "RandAugment operations per sample in the strong view (at most 14), each drawn from the whole pool, so "
        "an operation may come twice; Ada-CM: 3 "
        "(RandAugment(3, 5), dataset/raf.py:16); FixMatch: 2 (RandAugmentMC(n=2), dataset/cifar.py:117)",
        low=0,
        high=len(POOL),
    ),
    "ops": Param(
        None,
        "null: the whole pool of 14 operations (Ada-CM's augment_list, dataset/randaugment.py:143-160); or a "
        f"list of distinct names among: {', '.join(OP_NAMES)}",
        kind=Sequence,
        nullable=True,
    ),
    "magnitude": Param(
        None,
        "null: each operation draws a strength uniformly in [0, 1] onto its range per sample (Ada-CM, "
        "dataset/randaugment.py:173); a number in [0, 1]: that strength everywhere",
        kind=float,
        nullable=True,
        low=0.0,
        high=1.0,
    ),
    "interpolation": Param(
        "bilinear",
        "how rotate, shear and translate resample: bilinear or nearest (Ada-CM and FixMatch: nearest, PIL's "
        "default resample in img.rotate and img.transform, Ada-CM dataset/randaugment.py:51-98)",
        choices=INTERPOLATIONS,
    ),
    "op_p": Param(
        1.0,
        "probability that each drawn operation is applied; Ada-CM: 1.0 (always, dataset/randaugment.py:174); "
        "FixMatch: 0.5 (RandAugmentMC, dataset/randaugment.py:217)",
        low=0.0,
        high=1.0,
    ),
    "cutout": Param(
        0.5,
        "side of the cutout square as a fraction of the image side: the largest (cutout_side: uniform) or the "
        "only one (fixed); Ada-CM and USB: 0.5 (dataset/randaugment.py:175); FixMatch: 0.5 fixed; 0 turns cutout off",
        low=0.0,
        high=1.0,
    ),
    "cutout_side": Param(
        "uniform",
        "uniform: the square's side is drawn uniformly in [0, cutout] x the side (Ada-CM dataset/randaugment.py:175, "
        "USB semilearn/datasets/augmentation/randaugment.py:200-201); fixed: always cutout x the side (FixMatch: "
        "16 px of 32, kekmodel dataset/randaugment.py:219, google third_party/auto_augment/augmentations.py:102)",
        choices=CUTOUT_SIDES,
    ),
    "weak_views": Param(
        2,
        "weak views of each unlabeled image per step: 2, whose mean softmax gives the confidences and pseudo-labels "
        "(Ada-CM main.py:216-219; its contrastive loss needs both) or 1, one weak view and one weak forward fewer "
        "(FixMatch: kekmodel train.py:366-368, google fixmatch.py:113; USB's FlexMatch, FreeMatch, SoftMatch)",
        choices=(1, 2),
    ),
    "cutout_fill": Param(
        "mean",
        "colour of the cutout square: mean (the normalisation mean, 0 after normalising) or adacm (Ada-CM's grey "
        f"{ADACM_CUTOUT_GREY} of 8-bit RGB, dataset/randaugment.py:136)",
        choices=CUTOUT_FILLS,
    ),
}


# ---------------------------------------------------------------------------------------------------------
# Checks that a Param cannot express.
# ---------------------------------------------------------------------------------------------------------


def _size_pair(image_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(image_size, int):
        size: tuple = (image_size, image_size)
    else:
        size = tuple(image_size) if isinstance(image_size, Sequence) else ()
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 4 for s in size):
        raise ConfigError(f"image_size: got {image_size!r}; allowed: an int >= 4 or a pair (height, width) of them")
    return size  # type: ignore[return-value]


def _check_triple(name: str, value: Sequence[float], positive: bool) -> tuple[float, float, float]:
    ok = isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 3
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    if ok and positive:
        ok = all(v > 0 for v in value)
    if not ok:
        what = "three numbers > 0, one per RGB channel" if positive else "three finite numbers, one per RGB channel"
        raise ConfigError(f"augment.{name}: got {value!r}; allowed: {what}")
    return tuple(float(v) for v in value)  # type: ignore[return-value]


def _check_ops(ops: Sequence[str] | None) -> tuple[Op, ...]:
    if ops is None:
        return POOL
    if isinstance(ops, str) or len(ops) == 0:
        raise ConfigError(
            f"augment.ops: got {ops!r}; allowed: null (all) or a non-empty list of: {', '.join(OP_NAMES)}"
        )
    unknown = [name for name in ops if name not in OP_NAMES]
    if unknown or len(set(ops)) != len(ops):
        raise ConfigError(
            f"augment.ops: got {list(ops)!r}; allowed: distinct names among: {', '.join(OP_NAMES)}"
            + (f" (unknown: {', '.join(map(str, unknown))})" if unknown else " (one is repeated)")
        )
    return tuple(op for op in POOL if op.name in ops)


def _reflect(index: Tensor, side: int) -> Tensor:
    """Fold coordinates up to ``side - 1`` outside [0, side) back in, as reflect padding does (edge not
    repeated): -1 -> 1, side -> side - 2."""
    index = index.abs()
    return torch.where(index > side - 1, 2 * (side - 1) - index, index)


def _check_generator(generator: torch.Generator | None, device: torch.device) -> None:
    if generator is not None and generator.device.type != device.type:
        raise ValueError(
            f"the generator is on {generator.device} but the images are on {device}; "
            f"make it with torch.Generator(device=images.device)"
        )


# ---------------------------------------------------------------------------------------------------------
# The augmenter.
# ---------------------------------------------------------------------------------------------------------


class Augmenter:
    """Makes normalised, weak and strong views of uint8 batches on their own device.

    The options are those of ``PARAMS`` (their docs say what each does and what the references use); each is
    checked by its Param, and the few checks a Param cannot express (RGB triples, operation names) are done
    here. ``run_config`` resolves a study's ``augment`` section against ``PARAMS`` and builds
    ``Augmenter(image_size, **resolved)``.

    It is not tied to a device: its few constants are made on each device the first time a batch from there
    comes, so one augmenter serves CPU and CUDA batches alike.
    """

    def __init__(
        self,
        image_size: int | Sequence[int],
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        flip_p: float = PARAMS["flip_p"].default,
        crop_p: float = PARAMS["crop_p"].default,
        pad_fraction: float = PARAMS["pad_fraction"].default,
        pad_mode: str = PARAMS["pad_mode"].default,
        strong_order: str = PARAMS["strong_order"].default,
        strong_ops: int = PARAMS["strong_ops"].default,
        ops: Sequence[str] | None = PARAMS["ops"].default,
        magnitude: float | None = PARAMS["magnitude"].default,
        interpolation: str = PARAMS["interpolation"].default,
        op_p: float = PARAMS["op_p"].default,
        cutout: float = PARAMS["cutout"].default,
        cutout_side: str = PARAMS["cutout_side"].default,
        weak_views: int = PARAMS["weak_views"].default,
        cutout_fill: str = PARAMS["cutout_fill"].default,
    ):
        given = locals()
        options = {name: param.check(f"augment.{name}", given[name]) for name, param in PARAMS.items()}
        self.size = _size_pair(image_size)
        self.mean = _check_triple("mean", options["mean"], positive=False)
        self.std = _check_triple("std", options["std"], positive=True)
        self.flip_p, self.crop_p = options["flip_p"], options["crop_p"]
        self.pad_mode = options["pad_mode"]
        self.pad = tuple(self._pad_for(side, options["pad_fraction"]) for side in self.size)  # (rows, columns)
        self.strong_order = options["strong_order"]
        self.ops = _check_ops(options["ops"])
        self.strong_ops = options["strong_ops"]
        self.magnitude, self.op_p = options["magnitude"], options["op_p"]
        self.interpolation = options["interpolation"]
        self.cutout, self.cutout_fill = options["cutout"], options["cutout_fill"]
        self.cutout_side = options["cutout_side"]
        self.weak_views = options["weak_views"]  # read by the trainer: how many weak views a step makes
        fill = self.mean if self.cutout_fill == "mean" else tuple(level / 255 for level in ADACM_CUTOUT_GREY)
        self._fill_unit = fill
        self._fill_normalised = tuple((f - m) / s for f, m, s in zip(fill, self.mean, self.std))  # mean: exactly 0
        self.randaugment = PerSampleRandAugment(
            self.ops, self.strong_ops, self.magnitude, self.op_p, self.interpolation
        )
        self._on_device: dict[torch.device, tuple[Tensor, ...]] = {}

    @staticmethod
    def _pad_for(side: int, fraction: float) -> int:
        """Padding for one side: Ada-CM's 8 px at 224, scaled with the side, at least 1 px unless 0 is asked."""
        return 0 if fraction == 0 else max(1, round(fraction * side))

    # ---- public views -------------------------------------------------------------------------------

    def normalize(self, x: Tensor) -> Tensor:
        """uint8 [B, 3, H, W] -> float32 (x / 255 - mean) / std, on the images' device."""
        self._check_images(x)
        return self._normalize(x)

    def weak(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Flip and crop (see the module docstring), then normalise."""
        self._check_images(x)
        _check_generator(generator, x.device)
        return self._normalize(self._flip_crop(x, generator))

    def strong(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The weak flip and crop, ``strong_ops`` per-sample RandAugment operations and cutout, in the order of
        ``strong_order``, then normalisation."""
        self._check_images(x)
        _check_generator(generator, x.device)
        if self.strong_order == "ops_first":
            y = self._cutout(self.randaugment(x, generator), generator, normalised=False)
            return self._normalize(self._flip_crop(y, generator))
        y = self._flip_crop(x, generator)
        y = self._normalize(self.randaugment(y, generator) if self.randaugment.active else y)
        return self._cutout(y, generator, normalised=True)

    # ---- pieces ------------------------------------------------------------------------------------------

    def _constants(self, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """The normalisation y * scale + shift = (y - mean) / std as [1, 3, 1, 1] tensors: the scale of 8-bit
        levels, the scale of [0, 1] values, the shift; made once per device, so that a CUDA call does not copy
        them from the host each time."""
        if device not in self._on_device:
            mean, std = torch.tensor(self.mean, dtype=torch.float64), torch.tensor(self.std, dtype=torch.float64)
            values = (1 / (255 * std), 1 / std, -mean / std)
            self._on_device[device] = tuple(v.to(device, torch.float32).view(1, 3, 1, 1) for v in values)
        return self._on_device[device]  # type: ignore[return-value]

    def _check_images(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3:
            got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"images must be uint8 [B, 3, H, W]; got {got}")
        if tuple(x.shape[-2:]) != self.size:
            raise ValueError(f"images are {tuple(x.shape[-2:])} but this augmenter was made for {self.size}")

    def _normalize(self, y: Tensor) -> Tensor:
        """uint8 levels -> a new float tensor (y / 255 - mean) / std; float values in [0, 1] (this module's own
        intermediates) -> normalised in place. A product and a sum: a uint8 tensor times a float one would
        convert inside the loop, which is not vectorised on CPUs, several times slower than converting first."""
        scale_levels, scale_unit, shift = self._constants(y.device)
        if y.dtype == torch.uint8:
            return y.float().mul_(scale_levels).add_(shift)
        return y.mul_(scale_unit).add_(shift)

    def _flip_crop(self, x: Tensor, g: torch.Generator | None) -> Tensor:
        """The weak view's geometry as one gather (uint8 or float): output pixel (i, j) of a cropped sample reads
        pixel (i + dy - pad, j + dx - pad) of the image, offsets uniform in [0, 2 pad], and uncropped samples read
        (i, j); flipped samples read column ``W - 1 - j`` first. Reads outside the image are folded back into it
        (reflect: no padded copy is made) or read from a zero-padded copy (zeros)."""
        b, c, h, w = x.shape
        (ph, pw), device = self.pad, x.device
        flip = torch.rand(b, device=device, generator=g) < self.flip_p
        crop = torch.rand(b, device=device, generator=g) < self.crop_p
        dy, dx = (torch.randint(0, 2 * p + 1, (b, 1), device=device, generator=g) for p in (ph, pw))
        if self.flip_p == 0 and (self.crop_p == 0 or ph + pw == 0):
            return x  # nothing moves; the draws above keep the random stream the same either way
        cols = torch.arange(w, device=device).expand(b, w)
        cols = torch.where(flip.unsqueeze(1), w - 1 - cols, cols) + torch.where(crop.unsqueeze(1), dx - pw, 0)
        rows = torch.arange(h, device=device).expand(b, h) + torch.where(crop.unsqueeze(1), dy - ph, 0)
        if self.pad_mode == "reflect":
            source, rows, cols = x, _reflect(rows, h), _reflect(cols, w)
        else:
            source, rows, cols = F.pad(x, (pw, pw, ph, ph)), rows + ph, cols + pw
        hs, ws = source.shape[-2:]
        index = (rows.unsqueeze(2) * ws + cols.unsqueeze(1)).view(b, 1, h * w).expand(b, c, h * w)
        return torch.gather(source.reshape(b, c, hs * ws), 2, index).view(b, c, h, w)

    def _cutout(self, y: Tensor, g: torch.Generator | None, normalised: bool) -> Tensor:
        """Fill one square per sample with the cutout colour, in place; its side is uniform in [0, cutout] of the
        image side, or that fraction exactly (``cutout_side: fixed``). The colour is a host constant, so filling
        reads nothing back from the device."""
        if self.cutout == 0:
            return y
        n, _, h, w = y.shape
        side, cy, cx = torch.rand(3, n, 1, device=y.device, generator=g).unbind(0)
        largest = self.cutout * min(h, w)
        # the side is drawn either way, so that the two settings place their squares alike
        side = torch.full_like(side, largest) if self.cutout_side == "fixed" else side * largest
        cy, cx = cy * h, cx * w
        in_rows = ((torch.arange(h, device=y.device) + 0.5) - cy).abs() < side / 2  # pixel centres, [n, h]
        in_cols = ((torch.arange(w, device=y.device) + 0.5) - cx).abs() < side / 2
        square = in_rows.unsqueeze(2) & in_cols.unsqueeze(1)  # [n, h, w]
        fill = self._fill_normalised if normalised else self._fill_unit
        if fill[0] == fill[1] == fill[2]:
            return y.masked_fill_(square.unsqueeze(1), fill[0])
        for channel, value in enumerate(fill):
            y[:, channel].masked_fill_(square, value)
        return y
