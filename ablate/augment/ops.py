"""The RandAugment pool of FixMatch and Ada-CM, as batched tensor operations with a value per image.

Each operation takes float images in [0, 1], ``[b, 3, H, W]``, and one value per image, ``[b]``, returns new
images and never writes to its input (the per-sample dispatch in ``randaugment.py`` keeps the input to undo an
operation that ``op_p`` skips). Values come from each operation's own range (``POOL``), which are Ada-CM's
(``dataset/randaugment.py:143-160`` of hangyu94/Ada-CM, the TorchSSL pool): the enhancement factors lie in
[0.05, 0.95], so brightness, color, contrast and sharpness only darken, desaturate, flatten or blur.

Semantics follow PIL, as the references apply PIL to each image. Where Kornia has the PIL operation its values
are the reference in the tests (color, contrast, equalize, posterize, sharpness, solarize); the code here gives
the same values with fewer passes over the pixels and no checks that read tensors on the host. Brightness and
autocontrast are written out because Kornia's namesakes mean something else than PIL's.

The geometric operations (rotate, shear, translate) are affine maps about the image centre. Each declares its
map (``Op.affine``) rather than warping by itself, so that the dispatch can warp a whole run of them with one
``grid_sample``. They interpolate bilinearly by default (PIL, so the references: nearest, which the augmenter's
``interpolation`` option gives) and shear about the centre (PIL: the top-left corner, which moves the face out
of frame); the uncovered area is black, as in PIL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

# ITU-R 601 luma, PIL's ``convert("L")`` and Kornia's ``rgb_to_grayscale``.
_LUMA = (0.299, 0.587, 0.114)


def _per_sample(v: Tensor) -> Tensor:
    """Shape [b] values to broadcast over [b, C, H, W]."""
    return v.view(-1, 1, 1, 1)


def _luma(rgb: Tensor, dim: int) -> Tensor:
    """The luma of the red, green and blue entries along ``dim`` (that dimension is dropped)."""
    r, g, b = rgb.unbind(dim)
    return r.mul(_LUMA[0]).add_(g, alpha=_LUMA[1]).add_(b, alpha=_LUMA[2])


# ---- intensity operations ----------------------------------------------------------------------------------


def identity(x: Tensor, v: Tensor) -> Tensor:
    return x


def autocontrast(x: Tensor, v: Tensor) -> Tensor:
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


def brightness(x: Tensor, factor: Tensor) -> Tensor:
    """PIL ``ImageEnhance.Brightness``: a blend with black, i.e. a product.

    Kornia's ``adjust_brightness`` adds the factor instead, so it is not used.
    """
    return (x * _per_sample(factor)).clamp_(0.0, 1.0)


def color(x: Tensor, factor: Tensor) -> Tensor:
    """PIL ``ImageEnhance.Color``: a blend with the grayscale image (Kornia's
    ``adjust_saturation_with_gray_subtraction``)."""
    return torch.lerp(_luma(x, 1).unsqueeze(1), x, _per_sample(factor)).clamp_(0.0, 1.0)


def contrast(x: Tensor, factor: Tensor) -> Tensor:
    """PIL ``ImageEnhance.Contrast``: a blend with the mean gray level of each image (Kornia's
    ``adjust_contrast_with_mean_subtraction``). The mean luma is the luma of the channel means, so the image is
    read once for it."""
    mean_gray = _per_sample(_luma(x.mean((-2, -1)), 1))
    return torch.lerp(mean_gray, x, _per_sample(factor)).clamp_(0.0, 1.0)


def equalize(x: Tensor, v: Tensor) -> Tensor:
    """PIL ``ImageOps.equalize`` of each channel's 8-bit levels ``floor(255 x)``, as ``kornia.enhance.equalize``:
    a 256-bin histogram per channel, the lookup table ``(cumulative count before the level + step // 2) // step``
    with ``step = (pixels - count of the highest level present) // 255``; a channel whose step is 0 is left as
    it is. All channels of all images at once, without Kornia's range check (a reduction, read on the host on
    some devices): the values here are in [0, 1] by construction, and clamped to the bins.
    """
    b, c = x.shape[:2]
    levels = (x.reshape(b * c, -1) * 255.0).long().clamp_(0, 255)  # a value a hair above 1 stays a valid bin
    counts = torch.zeros(b * c, 256, device=x.device, dtype=x.dtype)
    counts.scatter_add_(1, levels, torch.ones((), device=x.device, dtype=x.dtype).expand(levels.shape))
    present = torch.where(counts > 0, torch.arange(256, device=x.device), 0)
    highest = counts.gather(1, present.amax(1, keepdim=True))
    step = torch.div(counts.sum(1, keepdim=True) - highest, 255, rounding_mode="floor")
    before = counts.cumsum(1) - counts  # pixels below each level
    lut = torch.div(before + torch.div(step, 2, rounding_mode="floor"), step.clamp_min(1), rounding_mode="floor")
    out = lut.clamp_(0, 255).div_(255.0).gather(1, levels)
    return torch.where(step == 0, x.reshape(b * c, -1), out).view_as(x)


def posterize(x: Tensor, bits: Tensor) -> Tensor:
    """Keep the top ``floor(bits)`` bits of each 8-bit level ``floor(255 x)``; a value uniform in (4, 8] gives
    4..7 bits, as Ada-CM's ``int(v)``. The same values as ``kornia.enhance.posterize`` (a test checks it), in
    float maths: Kornia's round trip through uint8 with per-sample shifts was four times slower on CPU.
    """
    quantum = _per_sample(torch.exp2(8.0 - bits.floor()).to(x.dtype))  # a power of two, so x * 255 / q is exact
    return (x * (255.0 / quantum)).floor_().mul_(quantum / 255.0)


def sharpness(x: Tensor, factor: Tensor) -> Tensor:
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


def solarize(x: Tensor, threshold: Tensor) -> Tensor:
    """PIL ``solarize``: invert the pixels at or above ``threshold`` (in 0..256 grey levels)."""
    return torch.where(x >= _per_sample(threshold / 255.0), 1.0 - x, x)


# ---- geometric operations: affine maps about the centre, warped together ------------------------------------


def warp(x: Tensor, linear: Tensor, shift: Tensor, mode: str = "bilinear") -> Tensor:
    """Move each image by its affine map about the centre: a source pixel ``p`` lands on
    ``linear @ (p - centre) + centre + shift`` (``linear`` [b, 2, 2], ``shift`` [b, 2] pixels, x then y).

    Bilinear (or ``mode="nearest"``, PIL's default), black outside the image; the same as Kornia's
    ``warp_affine`` with ``align_corners=True`` of the matrix ``[linear | centre - linear @ centre + shift]`` (a
    test checks it), without its host-side matrix bookkeeping. Each output pixel reads the inverse map, written
    out for a 2x2 matrix, in the normalised coordinates of ``grid_sample`` (``2 p / (side - 1) - 1``, so the
    centre is 0). The sampling grid is affine in the column and in the row, so it is built as sums of a
    per-column and a per-row term (``affine_grid``'s batched 3-wide matrix product is slow on CPUs).
    """
    n, _, h, w = x.shape
    a, b, c, d = linear.to(x.dtype).flatten(1).unbind(1)
    det = a * d - b * c
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    sx, sy = 2.0 / (w - 1), 2.0 / (h - 1)
    tx, ty = shift.to(x.dtype).unbind(1)
    # Source coordinate = per-column term + per-row term: u_src = A u + B v + C, v_src = D u + E v + F.
    u = torch.linspace(-1.0, 1.0, w, device=x.device, dtype=x.dtype)
    v = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=x.dtype)
    column_terms = torch.stack([ia, ic * (sy / sx)], 1).view(n, 1, 1, 2) * u.view(1, 1, w, 1)
    row_terms = torch.stack([ib * (sx / sy), id_], 1).view(n, 1, 1, 2) * v.view(1, h, 1, 1)
    offsets = torch.stack([-sx * (ia * tx + ib * ty), -sy * (ic * tx + id_ * ty)], 1).view(n, 1, 1, 2)
    grid = (row_terms + offsets) + column_terms  # [n, h, w, 2]
    return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=True)


def _matrices(a: Tensor, b: Tensor, c: Tensor, d: Tensor) -> Tensor:
    """Per-sample 2x2 matrices [[a, b], [c, d]] from [n]-shaped entries."""
    return torch.stack([a, b, c, d], 1).view(-1, 2, 2)


def rotation(degrees: Tensor, h: int, w: int) -> tuple[Tensor, Tensor]:
    t = torch.deg2rad(degrees)
    cos, sin = torch.cos(t), torch.sin(t)
    return _matrices(cos, -sin, sin, cos), torch.zeros(len(degrees), 2, device=degrees.device)


def shear_x_map(s: Tensor, h: int, w: int) -> tuple[Tensor, Tensor]:
    one, zero = torch.ones_like(s), torch.zeros_like(s)
    return _matrices(one, s, zero, one), torch.zeros(len(s), 2, device=s.device)


def shear_y_map(s: Tensor, h: int, w: int) -> tuple[Tensor, Tensor]:
    one, zero = torch.ones_like(s), torch.zeros_like(s)
    return _matrices(one, zero, s, one), torch.zeros(len(s), 2, device=s.device)


def translate_x_map(fraction: Tensor, h: int, w: int) -> tuple[Tensor, Tensor]:
    """A shift by ``fraction`` of the width (Ada-CM's ``v * img.size[0]``)."""
    one, zero = torch.ones_like(fraction), torch.zeros_like(fraction)
    return _matrices(one, zero, zero, one), torch.stack([fraction * w, zero], 1)


def translate_y_map(fraction: Tensor, h: int, w: int) -> tuple[Tensor, Tensor]:
    one, zero = torch.ones_like(fraction), torch.zeros_like(fraction)
    return _matrices(one, zero, zero, one), torch.stack([zero, fraction * h], 1)


AffineMap = Callable[[Tensor, int, int], tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class Op:
    """One operation of the pool: an image function (``image``) or an affine map (``affine``, warped by
    ``warp``). Its value is ``weakest + strength * (strongest - weakest)`` for a strength in [0, 1];
    ``signed`` operations also get a random sign per sample (rotate left or right, and so on)."""

    name: str
    image: Callable[[Tensor, Tensor], Tensor] | None = None
    affine: AffineMap | None = None
    weakest: float = 0.0
    strongest: float = 0.0
    signed: bool = False

    def __post_init__(self) -> None:
        if (self.image is None) == (self.affine is None):
            raise TypeError(f"operation {self.name!r}: give exactly one of image= and affine=")

    def apply(self, x: Tensor, v: Tensor, interpolation: str = "bilinear") -> Tensor:
        """The operation on images ``x`` with values ``v`` ([b]); ``interpolation`` is for geometric ones."""
        if self.affine is not None:
            return warp(x, *self.affine(v, x.shape[-2], x.shape[-1]), mode=interpolation)
        return self.image(x, v)  # type: ignore[misc]

    @property
    def is_identity(self) -> bool:
        return self.image is identity


# Ada-CM's pool and ranges (dataset/randaugment.py:143-160; the values are drawn at line 173). FixMatch-pytorch's
# RandAugmentMC has the same 14 operations. The geometric ones come last so that the dispatch can warp them as
# one contiguous run; the order has no other meaning.
POOL: tuple[Op, ...] = (
    Op("identity", identity),
    Op("autocontrast", autocontrast),
    Op("brightness", brightness, weakest=0.95, strongest=0.05),
    Op("color", color, weakest=0.95, strongest=0.05),
    Op("contrast", contrast, weakest=0.95, strongest=0.05),
    Op("equalize", equalize),
    Op("posterize", posterize, weakest=8.0, strongest=4.0),
    Op("sharpness", sharpness, weakest=0.95, strongest=0.05),
    Op("solarize", solarize, weakest=256.0, strongest=0.0),
    Op("rotate", affine=rotation, weakest=0.0, strongest=30.0, signed=True),
    Op("shear_x", affine=shear_x_map, weakest=0.0, strongest=0.3, signed=True),
    Op("shear_y", affine=shear_y_map, weakest=0.0, strongest=0.3, signed=True),
    Op("translate_x", affine=translate_x_map, weakest=0.0, strongest=0.3, signed=True),
    Op("translate_y", affine=translate_y_map, weakest=0.0, strongest=0.3, signed=True),
)

OP_NAMES: tuple[str, ...] = tuple(op.name for op in POOL)
