"""Weak and strong views of a batch of uint8 images, made on the batch's own device.

Why this module exists: FixMatch-pytorch and Ada-CM decode and augment every image with PIL in DataLoader
workers. ablate keeps the decoded uint8 images on the trial's device (DESIGN.md, "Data" and "Performance") and
augments whole batches there, with tensor maths and Kornia's functional ops, so no image is augmented in a
Python loop.

Views (input uint8 [B, 3, H, W], output float32 [B, 3, H, W], normalised with ``mean``/``std``):

- ``weak``: horizontal flip (``flip_p``) and, with probability ``crop_p``, a random crop of the image padded by
  ``pad = max(1, round(pad_fraction * side))`` pixels, reflect padding by default. Ada-CM pads 8 px at 224
  and applies the crop with p = 0.5 (``pad_fraction`` = 8/224, ``crop_p`` = 0.5). Ada-CM's torchvision crop pads
  with zeros; ``pad_mode="zeros"`` reproduces that.
- ``strong``: the weak flip and crop, then ``strong_ops`` operations of the RandAugment pool of FixMatch /
  Ada-CM, drawn PER SAMPLE with a per-sample magnitude, then cutout. Kornia's own ``RandAugment`` draws one
  operation per call for the whole batch, which makes a batch far less varied than per-image PIL pipelines;
  here each sample draws its own operations and the batch is grouped by operation (one sort and one host sync
  per operation slot), so each operation runs once per slot on all the samples that drew it.

Magnitudes follow Ada-CM's ``RandAugment`` (its ranges are those of the FixMatch paper): by default each sample
draws a strength uniformly in [0, 1) per operation, mapped onto that operation's own range (``_POOL`` below);
signed geometric operations get a random sign. A fixed ``magnitude`` in [0, 1] uses that strength everywhere.
FixMatch-pytorch's ``RandAugmentMC`` applies each drawn operation with probability 0.5 (``op_p=0.5``); Ada-CM
always applies it (``op_p=1.0``, the default). Ada-CM draws 3 operations, FixMatch 2 (the default here).

Cutout (FixMatch's paper, Ada-CM's code): one square per sample, its side a fraction of the image side drawn
uniformly in [0, ``cutout``] (default 0.5, so up to half the side as in FixMatch's Cutout 16/32), centred
uniformly over the image and clipped at its borders. The square is filled with the normalisation mean (zero
after normalisation); Ada-CM fills (125, 123, 114), close to the ImageNet mean. ``cutout=0`` disables it.

Differences from the PIL references, chosen on purpose: rotate, shear and translate interpolate bilinearly
(PIL: nearest) and shear about the image centre (PIL: the top-left corner) so that the face stays in frame;
the area they uncover is black, as in PIL. The flip and crop come before the operations (Ada-CM inserts its
RandAugment before them); cutout comes last.

Randomness: every random number is drawn here with the optional ``torch.Generator`` (on the images' device),
so a seeded generator gives the same views run after run. Kornia's augmentation modules draw from the global
RNG, which is why only Kornia's functional ops are used: ``warp_affine`` and the ``kornia.enhance`` ops that
match PIL (color, contrast, equalize, solarize). Brightness and autocontrast are a few lines of tensor maths
because Kornia's namesakes mean something else than PIL's; posterize and sharpness give Kornia's values with
fewer passes over the pixels (tests compare them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import kornia
import torch
from torch import Tensor

from ablate.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Every hyper-parameter of the views, with its default (a study file may override any of them).
HPARAMS: dict[str, object] = {
    "mean": IMAGENET_MEAN,
    "std": IMAGENET_STD,
    "flip_p": 0.5,
    "pad_fraction": 8 / 224,
    "pad_mode": "reflect",
    "crop_p": 0.5,
    "strong_ops": 2,
    "ops": None,  # None: the whole pool
    "magnitude": None,  # None: a random strength per sample and operation
    "op_p": 1.0,
    "cutout": 0.5,
}

PAD_MODES = ("reflect", "zeros")


# ---------------------------------------------------------------------------------------------------------
# The operations. Each takes float images in [0, 1], [b, 3, H, W], and one value per image, [b].
# ---------------------------------------------------------------------------------------------------------


def _per_sample(v: Tensor) -> Tensor:
    """Shape [b] values to broadcast over [b, C, H, W]."""
    return v.view(-1, 1, 1, 1)


def _identity(x: Tensor, v: Tensor) -> Tensor:
    return x


def _autocontrast(x: Tensor, v: Tensor) -> Tensor:
    """PIL ``autocontrast``: stretch each channel to [0, 1]; a constant channel is left as it is.

    Kornia's ``normalize_min_max`` sends a constant channel to 0 instead, which PIL does not. The per-channel
    shift and scale are chosen first, so the image itself is read once.
    """
    low, high = torch.aminmax(x.flatten(2), dim=-1)
    span = high - low
    stretch = span > 1e-6
    scale = torch.where(stretch, 1.0 / span.clamp_min(1e-6), torch.ones_like(span))
    low = torch.where(stretch, low, torch.zeros_like(low))
    return (x - low[..., None, None]).mul_(scale[..., None, None]).clamp_(0.0, 1.0)


def _brightness(x: Tensor, factor: Tensor) -> Tensor:
    """PIL ``ImageEnhance.Brightness``: a blend with black, i.e. a product.

    Kornia's ``adjust_brightness`` adds the factor instead, so it is not used.
    """
    return (x * _per_sample(factor)).clamp_(0.0, 1.0)


def _color(x: Tensor, factor: Tensor) -> Tensor:
    """PIL ``ImageEnhance.Color``: a blend with the grayscale image."""
    return kornia.enhance.adjust_saturation_with_gray_subtraction(x, factor)


def _contrast(x: Tensor, factor: Tensor) -> Tensor:
    """PIL ``ImageEnhance.Contrast``: a blend with the mean gray level of each image."""
    return kornia.enhance.adjust_contrast_with_mean_subtraction(x, factor)


def _equalize(x: Tensor, v: Tensor) -> Tensor:
    return kornia.enhance.equalize(x)


def _posterize(x: Tensor, bits: Tensor) -> Tensor:
    """Keep the top ``floor(bits)`` bits of each 8-bit level; a value uniform in (4, 8] gives 4..7 bits, as
    Ada-CM's ``int(v)``.

    The same values as ``kornia.enhance.posterize`` (a test checks it), in float maths: Kornia's round trip
    through uint8 with per-sample shifts was four times slower on CPU.
    """
    quantum = _per_sample(torch.exp2(8.0 - bits.floor()).to(x.dtype))
    return torch.floor(x * 255.0 / quantum).mul_(quantum).div_(255.0)


def _sharpness(x: Tensor, factor: Tensor) -> Tensor:
    """PIL ``ImageEnhance.Sharpness``: a blend with the image smoothed by [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13,
    borders untouched.

    The same values as ``kornia.enhance.sharpness`` (a test checks it); the 3x3 sum is done as two separable
    3-tap sums on slices, which on CPU is cheaper than Kornia's depthwise convolution and masking.
    """
    rows = x[..., :-2, :] + x[..., 1:-1, :] + x[..., 2:, :]
    centre = x[..., 1:-1, 1:-1]
    smooth = (rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]).add_(centre, alpha=4.0).div_(13.0).clamp_(0.0, 1.0)
    out = x.clone()
    out[..., 1:-1, 1:-1] = torch.lerp(smooth, centre, _per_sample(factor).to(x.dtype)).clamp_(0.0, 1.0)
    return out


def _solarize(x: Tensor, threshold: Tensor) -> Tensor:
    """PIL ``solarize``: invert the pixels at or above ``threshold`` (in 0..256 grey levels)."""
    return kornia.enhance.solarize(x, threshold / 255.0)


def _warp(x: Tensor, linear: Tensor, shift: Tensor) -> Tensor:
    """Warp about the image centre with per-sample 2x2 ``linear`` maps and pixel ``shift``s ([b, 2])."""
    h, w = x.shape[-2:]
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    # Keep the centre fixed: offset = centre - linear @ centre, written out so that no constant tensor is built.
    offset_x = cx - linear[:, 0, 0] * cx - linear[:, 0, 1] * cy
    offset_y = cy - linear[:, 1, 0] * cx - linear[:, 1, 1] * cy
    offset = torch.stack([offset_x, offset_y], -1) + shift
    matrix = torch.cat([linear, offset.unsqueeze(-1)], dim=-1)
    return kornia.geometry.transform.warp_affine(
        x, matrix, (h, w), mode="bilinear", padding_mode="zeros", align_corners=True
    )


def _no_shift(x: Tensor) -> Tensor:
    return torch.zeros(x.shape[0], 2, device=x.device, dtype=x.dtype)


def _linear(x: Tensor, a: Tensor, b: Tensor, c: Tensor, d: Tensor) -> Tensor:
    """Stack per-sample 2x2 matrices [[a, b], [c, d]] from [b]-shaped entries."""
    return torch.stack([torch.stack([a, b], -1), torch.stack([c, d], -1)], -2).to(x.dtype)


def _rotate(x: Tensor, degrees: Tensor) -> Tensor:
    t = torch.deg2rad(degrees)
    cos, sin = torch.cos(t), torch.sin(t)
    return _warp(x, _linear(x, cos, -sin, sin, cos), _no_shift(x))


def _shear_x(x: Tensor, s: Tensor) -> Tensor:
    one, zero = torch.ones_like(s), torch.zeros_like(s)
    return _warp(x, _linear(x, one, s, zero, one), _no_shift(x))


def _shear_y(x: Tensor, s: Tensor) -> Tensor:
    one, zero = torch.ones_like(s), torch.zeros_like(s)
    return _warp(x, _linear(x, one, zero, s, one), _no_shift(x))


def _translate(x: Tensor, fraction: Tensor, axis: int) -> Tensor:
    """Shift by ``fraction`` of the side along ``axis`` (0: x, 1: y)."""
    one, zero = torch.ones_like(fraction), torch.zeros_like(fraction)
    side = x.shape[-1] if axis == 0 else x.shape[-2]
    shift = _no_shift(x)
    shift[:, axis] = fraction.to(x.dtype) * side
    return _warp(x, _linear(x, one, zero, zero, one), shift)


def _translate_x(x: Tensor, fraction: Tensor) -> Tensor:
    return _translate(x, fraction, 0)


def _translate_y(x: Tensor, fraction: Tensor) -> Tensor:
    return _translate(x, fraction, 1)


@dataclass(frozen=True)
class Op:
    """One operation of the pool: its value is ``weakest + strength * (strongest - weakest)``.

    ``signed`` operations also get a random sign per sample (rotate left or right, and so on).
    """

    name: str
    apply: Callable[[Tensor, Tensor], Tensor]
    weakest: float = 0.0
    strongest: float = 0.0
    signed: bool = False


# FixMatch / Ada-CM's RandAugment pool with Ada-CM's ranges (identity, autocontrast and equalize have none).
# The enhancement factors lie in [0.05, 0.95], so those operations only darken, desaturate, flatten or blur.
_POOL: tuple[Op, ...] = (
    Op("identity", _identity),
    Op("autocontrast", _autocontrast),
    Op("brightness", _brightness, 0.95, 0.05),
    Op("color", _color, 0.95, 0.05),
    Op("contrast", _contrast, 0.95, 0.05),
    Op("equalize", _equalize),
    Op("posterize", _posterize, 8.0, 4.0),
    Op("rotate", _rotate, 0.0, 30.0, signed=True),
    Op("sharpness", _sharpness, 0.95, 0.05),
    Op("shear_x", _shear_x, 0.0, 0.3, signed=True),
    Op("shear_y", _shear_y, 0.0, 0.3, signed=True),
    Op("solarize", _solarize, 256.0, 0.0),
    Op("translate_x", _translate_x, 0.0, 0.3, signed=True),
    Op("translate_y", _translate_y, 0.0, 0.3, signed=True),
)

OP_NAMES: tuple[str, ...] = tuple(op.name for op in _POOL)


# ---------------------------------------------------------------------------------------------------------
# Random numbers, all from one optional generator.
# ---------------------------------------------------------------------------------------------------------


def _uniform(n: int, device: torch.device, generator: torch.Generator | None) -> Tensor:
    return torch.rand(n, device=device, generator=generator)


def _bernoulli(n: int, p: float, device: torch.device, generator: torch.Generator | None) -> Tensor:
    return _uniform(n, device, generator) < p


def _check_generator(generator: torch.Generator | None, device: torch.device) -> None:
    if generator is not None and generator.device.type != device.type:
        raise ValueError(
            f"the generator is on {generator.device} but the images are on {device}; "
            f"make it with torch.Generator(device=images.device)"
        )


# ---------------------------------------------------------------------------------------------------------
# Validation of the options.
# ---------------------------------------------------------------------------------------------------------


def _size_pair(image_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(image_size, int):
        size: tuple = (image_size, image_size)
    else:
        size = tuple(image_size) if isinstance(image_size, Sequence) else ()
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 4 for s in size):
        raise ConfigError(f"image_size: got {image_size!r}; allowed: an int >= 4 or a pair (height, width) of them")
    return size  # type: ignore[return-value]


def _check_probability(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name}: got {value!r}; allowed: a number in [0, 1]")
    return float(value)


def _check_triple(name: str, value: Sequence[float], positive: bool) -> tuple[float, float, float]:
    ok = isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 3
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    if ok and positive:
        ok = all(v > 0 for v in value)
    if not ok:
        what = "three numbers > 0, one per RGB channel" if positive else "three finite numbers, one per RGB channel"
        raise ConfigError(f"{name}: got {value!r}; allowed: {what}")
    return tuple(float(v) for v in value)  # type: ignore[return-value]


def _check_ops(ops: Sequence[str] | None) -> tuple[Op, ...]:
    if ops is None:
        return _POOL
    if isinstance(ops, str) or not isinstance(ops, Sequence) or len(ops) == 0:
        raise ConfigError(f"ops: got {ops!r}; allowed: null (all) or a non-empty list of: {', '.join(OP_NAMES)}")
    unknown = [name for name in ops if name not in OP_NAMES]
    if unknown or len(set(ops)) != len(ops):
        raise ConfigError(
            f"ops: got {list(ops)!r}; allowed: distinct names among: {', '.join(OP_NAMES)}"
            + (f" (unknown: {', '.join(map(str, unknown))})" if unknown else " (one is repeated)")
        )
    return tuple(op for op in _POOL if op.name in ops)


# ---------------------------------------------------------------------------------------------------------
# The augmenter.
# ---------------------------------------------------------------------------------------------------------


class Augmenter:
    """Makes normalised, weak and strong views of uint8 batches on their own device.

    It is not tied to a device: its few constants are made on each device the first time a batch from there
    comes, so one augmenter serves CPU and CUDA batches alike.
    """

    def __init__(
        self,
        image_size: int | Sequence[int],
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        flip_p: float = 0.5,
        pad_fraction: float = 8 / 224,
        pad_mode: str = "reflect",
        crop_p: float = 0.5,
        strong_ops: int = 2,
        ops: Sequence[str] | None = None,
        magnitude: float | None = None,
        op_p: float = 1.0,
        cutout: float = 0.5,
    ):
        self.size = _size_pair(image_size)
        self.mean = _check_triple("mean", mean, positive=False)
        self.std = _check_triple("std", std, positive=True)
        self.flip_p = _check_probability("flip_p", flip_p)
        self.crop_p = _check_probability("crop_p", crop_p)
        self.op_p = _check_probability("op_p", op_p)
        if isinstance(pad_fraction, bool) or not isinstance(pad_fraction, (int, float)) or not 0 <= pad_fraction < 0.5:
            raise ConfigError(f"pad_fraction: got {pad_fraction!r}; allowed: a number in [0, 0.5)")
        if pad_mode not in PAD_MODES:
            raise ConfigError(f"pad_mode: got {pad_mode!r}; allowed: {', '.join(PAD_MODES)}")
        self.pad_mode = pad_mode
        self.pad = tuple(self._pad_for(side, float(pad_fraction)) for side in self.size)  # (rows, columns)
        self.ops = _check_ops(ops)
        if isinstance(strong_ops, bool) or not isinstance(strong_ops, int) or not 0 <= strong_ops <= len(self.ops):
            raise ConfigError(
                f"strong_ops: got {strong_ops!r}; allowed: an int from 0 to {len(self.ops)} (the size of the pool)"
            )
        self.strong_ops = strong_ops
        if magnitude is not None:
            magnitude = _check_probability("magnitude", magnitude)
        self.magnitude = magnitude
        if isinstance(cutout, bool) or not isinstance(cutout, (int, float)) or not 0.0 <= cutout <= 1.0:
            raise ConfigError(f"cutout: got {cutout!r}; allowed: a fraction of the image side in [0, 1] (0: off)")
        self.cutout = float(cutout)
        self._on_device: dict[torch.device, tuple[Tensor, ...]] = {}

    @classmethod
    def from_hparams(cls, image_size: int | Sequence[int], hparams: Mapping[str, object]) -> Augmenter:
        """Build from a study's overrides of ``HPARAMS``; unknown keys are an error."""
        unknown = sorted(set(hparams) - set(HPARAMS))
        if unknown:
            raise ConfigError(f"augment: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(HPARAMS)}")
        return cls(image_size, **{**HPARAMS, **hparams})  # type: ignore[arg-type]

    @staticmethod
    def _pad_for(side: int, fraction: float) -> int:
        """Padding for one side: Ada-CM's 8 px at 224, scaled with the side, at least 1 px unless 0 is asked."""
        return 0 if fraction == 0 else max(1, round(fraction * side))

    # ---- public views -------------------------------------------------------------------------------

    def normalize(self, x: Tensor) -> Tensor:
        """uint8 [B, 3, H, W] -> float32, (x / 255 - mean) / std, on the images' device."""
        self._check_images(x)
        return self._normalize_unit(x.float().div_(255.0))

    def weak(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Flip and crop (see the module docstring), then normalise."""
        self._check_images(x)
        _check_generator(generator, x.device)
        return self._normalize_unit(self._flip_crop(x, generator).float().div_(255.0))

    def strong(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Flip and crop, ``strong_ops`` per-sample RandAugment operations, normalisation, cutout."""
        self._check_images(x)
        _check_generator(generator, x.device)
        y = self._flip_crop(x, generator).float().div_(255.0)
        for _ in range(self.strong_ops):
            y = self._random_op(y, generator)
        y = self._normalize_unit(y)
        return self._cutout(y, generator)

    # ---- pieces ------------------------------------------------------------------------------------------

    def _constants(self, device: torch.device) -> tuple[Tensor, ...]:
        """mean, std ([1, 3, 1, 1]) and the pool's weakest, strongest, signed (one more entry: "skipped"), made
        once per device so that a CUDA call does not copy them from the host each time."""
        if device not in self._on_device:
            ops = self.ops
            self._on_device[device] = (
                torch.tensor(self.mean, device=device).view(1, 3, 1, 1),
                torch.tensor(self.std, device=device).view(1, 3, 1, 1),
                torch.tensor([op.weakest for op in ops] + [0.0], device=device),
                torch.tensor([op.strongest for op in ops] + [0.0], device=device),
                torch.tensor([op.signed for op in ops] + [False], device=device),
            )
        return self._on_device[device]

    def _check_images(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3:
            got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"images must be uint8 [B, 3, H, W]; got {got}")
        if tuple(x.shape[-2:]) != self.size:
            raise ValueError(f"images are {tuple(x.shape[-2:])} but this augmenter was made for {self.size}")

    def _normalize_unit(self, y: Tensor) -> Tensor:
        """Float images in [0, 1] -> (y - mean) / std, in place."""
        mean, std = self._constants(y.device)[:2]
        return y.sub_(mean).div_(std)

    def _source_index(
        self, n: int, side: int, pad: int, crop: Tensor, flip: Tensor | None, g: torch.Generator | None
    ) -> Tensor:
        """Per-sample source coordinate of each output row (or column): [B, side], maybe outside [0, side).

        A crop of the image padded by ``pad`` at offset ``o`` in [0, 2 pad] reads source ``i + o - pad``;
        samples that are not cropped read ``i``; flipped samples read ``side - 1 - i`` first.
        """
        device = crop.device
        i = torch.arange(side, device=device).expand(n, side)
        if flip is not None:
            i = torch.where(flip.unsqueeze(1), side - 1 - i, i)
        if pad == 0:
            return i
        offset = torch.randint(0, 2 * pad + 1, (n,), device=device, generator=g) - pad
        return i + torch.where(crop, offset, torch.zeros_like(offset)).unsqueeze(1)

    def _fold(self, index: Tensor, side: int) -> tuple[Tensor, Tensor]:
        """Map source coordinates into [0, side) by reflection (or clamp them, marking the zero padding)."""
        if self.pad_mode == "reflect":
            index = index.abs()
            index = torch.where(index > side - 1, 2 * (side - 1) - index, index)
            return index, torch.ones_like(index, dtype=torch.bool)
        inside = (index >= 0) & (index < side)
        return index.clamp(0, side - 1), inside

    def _flip_crop(self, x: Tensor, g: torch.Generator | None) -> Tensor:
        """The weak view's geometry, on uint8 and as one gather, so it costs one pass over the pixels."""
        b, c, h, w = x.shape
        flip = _bernoulli(b, self.flip_p, x.device, g)
        crop = _bernoulli(b, self.crop_p, x.device, g)
        rows, row_ok = self._fold(self._source_index(b, h, self.pad[0], crop, None, g), h)
        cols, col_ok = self._fold(self._source_index(b, w, self.pad[1], crop, flip, g), w)
        index = (rows.unsqueeze(2) * w + cols.unsqueeze(1)).view(b, 1, h * w).expand(b, c, h * w)
        out = torch.gather(x.reshape(b, c, h * w), 2, index).view(b, c, h, w)
        if self.pad_mode == "zeros":
            out = out * (row_ok.unsqueeze(2) & col_ok.unsqueeze(1)).unsqueeze(1).to(out.dtype)
        return out

    def _op_values(self, op_index: Tensor, g: torch.Generator | None) -> Tensor:
        """Each sample's value for the operation it drew: its strength mapped onto that operation's range."""
        n, device = op_index.shape[0], op_index.device
        weakest, strongest, signed = (table[op_index] for table in self._constants(device)[2:])
        if self.magnitude is None:
            strength = _uniform(n, device, g)
        else:
            strength = torch.full((n,), self.magnitude, device=device)
        value = weakest + strength * (strongest - weakest)
        negative = _bernoulli(n, 0.5, device, g) & signed
        return torch.where(negative, -value, value)

    def _random_op(self, y: Tensor, g: torch.Generator | None) -> Tensor:
        """One slot: every sample draws one operation and its value; each operation runs on its group.

        The batch is gathered in the order of the operations, so that each group is one contiguous slice that
        is transformed and written back in place, then ungathered: two ``index_select`` row copies per slot,
        far cheaper on CPU than advanced indexing or ``index_copy_``. ``len(self.ops)`` marks the samples whose
        operation was skipped (``op_p``); they sort last and are left alone. One host sync per slot reads the
        group sizes.
        """
        n = y.shape[0]
        op_index = torch.randint(0, len(self.ops), (n,), device=y.device, generator=g)
        if self.op_p < 1.0:
            op_index = torch.where(_bernoulli(n, self.op_p, y.device, g), op_index, len(self.ops))
        values = self._op_values(op_index, g)
        order = torch.argsort(op_index, stable=True)
        sizes = torch.bincount(op_index, minlength=len(self.ops) + 1).tolist()
        grouped = y.index_select(0, order)
        for op, part, v in zip(self.ops, grouped.split(sizes), values[order].split(sizes)):
            if len(part) > 0 and op.apply is not _identity:
                part.copy_(op.apply(part, v))
        return grouped.index_select(0, torch.argsort(order))

    def _cutout(self, y: Tensor, g: torch.Generator | None) -> Tensor:
        """Zero (the mean, after normalisation) one square per sample; its side is uniform in [0, cutout]."""
        if self.cutout == 0:
            return y
        n, _, h, w = y.shape
        side = _uniform(n, y.device, g) * self.cutout * min(h, w)
        cy = _uniform(n, y.device, g) * h
        cx = _uniform(n, y.device, g) * w
        rows = torch.arange(h, device=y.device) + 0.5  # pixel centres
        cols = torch.arange(w, device=y.device) + 0.5
        in_rows = (rows - cy.unsqueeze(1)).abs() < side.unsqueeze(1) / 2
        in_cols = (cols - cx.unsqueeze(1)).abs() < side.unsqueeze(1) / 2
        mask = (in_rows.unsqueeze(2) & in_cols.unsqueeze(1)).unsqueeze(1)
        return y.masked_fill_(mask, 0.0)
