"""The RandAugment operations (ablate/augment/ops.py) against their references: Kornia's functional ops, which
follow PIL on float images, and PIL itself on 8-bit images (what FixMatch and Ada-CM run), op by op."""

from __future__ import annotations

import kornia
import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps

from ablate.augment import OP_NAMES, POOL
from ablate.augment.ops import warp


def op(name):
    return next(o for o in POOL if o.name == name).apply


def levels(n: int = 4, side: int = 12, seed: int = 0, low: int = 0, high: int = 256) -> torch.Tensor:
    """Float images on the 8-bit grid, k / 255."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(low, high, (n, 3, side, side), generator=g).float() / 255


def pil(image: torch.Tensor) -> Image.Image:
    """One float image [3, H, W] on the 8-bit grid -> PIL RGB."""
    return Image.fromarray((image * 255).round().to(torch.uint8).permute(1, 2, 0).numpy(), "RGB")


def from_pil(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).float()  # 8-bit levels, [3, H, W]


def test_pool_is_fixmatch_randaugment():
    assert set(OP_NAMES) == {
        "identity", "autocontrast", "brightness", "color", "contrast", "equalize", "posterize", "rotate",
        "sharpness", "shear_x", "shear_y", "solarize", "translate_x", "translate_y",
    }  # fmt: skip


def test_ranges_are_adacms():
    """dataset/randaugment.py:143-160 of Ada-CM; the signed ones are drawn in [-strongest, strongest]."""
    ranges = {o.name: (min(o.weakest, o.strongest), max(o.weakest, o.strongest), o.signed) for o in POOL}
    for name in ("brightness", "color", "contrast", "sharpness"):
        assert ranges[name] == (0.05, 0.95, False)
    assert ranges["posterize"] == (4.0, 8.0, False) and ranges["solarize"] == (0.0, 256.0, False)
    assert ranges["rotate"] == (0.0, 30.0, True)
    for name in ("shear_x", "shear_y", "translate_x", "translate_y"):
        assert ranges[name] == (0.0, 0.3, True)


def test_operations_do_not_write_to_their_input():
    x = torch.rand(3, 3, 10, 10)
    before = x.clone()
    for o in POOL:
        o.apply(x, torch.full((3,), 0.5 * (o.weakest + o.strongest)))
        torch.testing.assert_close(x, before, atol=0, rtol=0, msg=o.name)


# ---- against Kornia -------------------------------------------------------------------------------------------


def test_color_and_contrast_are_kornias():
    x, factors = torch.rand(4, 3, 9, 9), torch.tensor([0.05, 0.5, 0.95, 1.0])
    expected = kornia.enhance.adjust_saturation_with_gray_subtraction(x, factors)
    torch.testing.assert_close(op("color")(x, factors), expected, atol=1e-6, rtol=0)
    expected = kornia.enhance.adjust_contrast_with_mean_subtraction(x, factors)
    torch.testing.assert_close(op("contrast")(x, factors), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", ["levels", "continuous", "flat channel", "two levels"])
def test_equalize_is_kornias(kind):
    x = levels(n=6, side=16) if kind == "levels" else torch.rand(6, 3, 16, 16)
    if kind == "flat channel":
        x[:, 1] = 0.4  # one level: the lookup step is 0 and the channel stays as it is
    if kind == "two levels":
        x = (x > 0.5).float() * 0.8
    torch.testing.assert_close(op("equalize")(x, torch.zeros(6)), kornia.enhance.equalize(x), atol=1e-6, rtol=0)


def test_posterize_sharpness_solarize_are_kornias():
    x = levels(side=8)
    bits = torch.tensor([4.0, 5.5, 7.9, 8.0])
    expected = kornia.enhance.posterize(x, torch.tensor([4, 5, 7, 8]))
    torch.testing.assert_close(op("posterize")(x, bits), expected, atol=1e-6, rtol=0)
    factors = torch.tensor([0.05, 0.5, 0.95, 1.0])
    torch.testing.assert_close(op("sharpness")(x, factors), kornia.enhance.sharpness(x, factors))
    thresholds = torch.tensor([0.0, 100.0, 200.0, 256.0])
    torch.testing.assert_close(op("solarize")(x, thresholds), kornia.enhance.solarize(x, thresholds / 255.0))


def kornia_warp(x: torch.Tensor, linear: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """The previous implementation: Kornia's warp_affine of the matrix about the centre."""
    h, w = x.shape[-2:]
    centre = torch.tensor([(w - 1) / 2.0, (h - 1) / 2.0])
    offset = centre - linear @ centre + shift
    matrix = torch.cat([linear, offset.unsqueeze(-1)], -1)
    return kornia.geometry.transform.warp_affine(
        x, matrix, (h, w), mode="bilinear", padding_mode="zeros", align_corners=True
    )


@pytest.mark.parametrize("name", ["rotate", "shear_x", "shear_y", "translate_x", "translate_y"])
def test_geometric_operations_are_kornias_warp_about_the_centre(name):
    geometric = next(o for o in POOL if o.name == name)
    x = torch.rand(5, 3, 11, 14)
    values = torch.tensor([-1.0, -0.4, 0.0, 0.3, 1.0]) * geometric.strongest
    linear, shift = geometric.affine(values, 11, 14)
    expected = kornia_warp(x, linear, shift)
    torch.testing.assert_close(geometric.apply(x, values), expected, atol=2e-5, rtol=0)
    torch.testing.assert_close(warp(x, linear, shift), expected, atol=2e-5, rtol=0)


def test_nearest_warp_moves_pixels_without_mixing_them():
    """PIL's default resample (the references'): each output pixel is one input pixel of its image, or black."""
    x = levels(n=3, side=15, low=1)
    linear, shift = next(o for o in POOL if o.name == "rotate").affine(torch.tensor([17.0, -25.0, 30.0]), 15, 15)
    y = warp(x, linear, shift, mode="nearest")
    for i in range(3):
        for c in range(3):
            assert set(y[i, c].unique().tolist()) <= set(x[i, c].unique().tolist()) | {0.0}
    assert not torch.equal(y, warp(x, linear, shift))  # bilinear mixes neighbours


def test_translate_moves_whole_pixels():
    x = torch.rand(2, 3, 16, 16)
    y = op("translate_x")(x, torch.tensor([0.25, -0.25]))
    torch.testing.assert_close(y[0, :, :, 4:], x[0, :, :, :12])
    torch.testing.assert_close(y[1, :, :, :12], x[1, :, :, 4:])
    assert (y[0, :, :, :4].abs() < 1e-6).all()  # black, up to the rounding of the sampling grid
    y = op("translate_y")(x, torch.tensor([0.25, 0.0]))
    torch.testing.assert_close(y[0, :, 4:], x[0, :, :12])
    torch.testing.assert_close(y[1], x[1])


def test_rotate_quarter_turn_is_rot90():
    x = torch.rand(2, 3, 9, 9)
    y = op("rotate")(x, torch.tensor([90.0, -90.0]))
    assert {tuple(torch.allclose(y[i], torch.rot90(x[i], k, (1, 2)), atol=1e-5) for k in (1, -1)) for i in (0, 1)} == {
        (True, False),
        (False, True),
    }


def test_shear_x_moves_each_row_by_its_distance_from_the_centre():
    x = torch.rand(1, 3, 9, 9)
    y = op("shear_x")(x, torch.tensor([0.25]))  # row i moves by 0.25 (i - 4) px: rows 0 and 8 by -1 and +1
    torch.testing.assert_close(y[0, :, 4], x[0, :, 4])
    torch.testing.assert_close(y[0, :, 8, 1:], x[0, :, 8, :-1])
    torch.testing.assert_close(y[0, :, 0, :-1], x[0, :, 0, 1:])


# ---- against PIL, on 8-bit images ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_equalize_posterize_solarize_are_pils_exactly(seed):
    x = levels(n=3, side=20, seed=seed, low=20, high=200)
    out = op("equalize")(x, torch.zeros(3)) * 255
    for i in range(3):
        torch.testing.assert_close(out[i].round(), from_pil(ImageOps.equalize(pil(x[i]))), atol=0, rtol=0)
    out = op("posterize")(x, torch.tensor([4.0, 5.0, 7.0])) * 255
    for i, bits in enumerate((4, 5, 7)):
        torch.testing.assert_close(out[i].round(), from_pil(ImageOps.posterize(pil(x[i]), bits)), atol=0, rtol=0)
    out = op("solarize")(x, torch.tensor([0.0, 128.0, 256.0])) * 255
    for i, threshold in enumerate((0, 128, 256)):
        expected = from_pil(ImageOps.solarize(pil(x[i]), threshold))
        torch.testing.assert_close(out[i].round(), expected, atol=0, rtol=0)


@pytest.mark.parametrize(
    "name, pil_op, tolerance",
    [
        ("brightness", lambda img, f: ImageEnhance.Brightness(img).enhance(f), 1.0),
        # PIL rounds the luma (or the smoothed image, or the mean luma) to a level, then truncates the blend.
        ("color", lambda img, f: ImageEnhance.Color(img).enhance(f), 1.5),
        ("contrast", lambda img, f: ImageEnhance.Contrast(img).enhance(f), 1.5),
        ("sharpness", lambda img, f: ImageEnhance.Sharpness(img).enhance(f), 1.5),
        ("autocontrast", lambda img, f: ImageOps.autocontrast(img), 1.0),
    ],
)
def test_blends_are_pils_within_rounding(name, pil_op, tolerance):
    """PIL rounds its intermediate images to 8 bits and truncates its blends; the tensors do not, so they agree
    within a level and a half (a wrong formula, e.g. Kornia's additive brightness, is off by tens of levels)."""
    x = levels(n=4, side=20, low=30, high=220)
    factors = torch.tensor([0.05, 0.3, 0.6, 0.95])
    out = op(name)(x, factors) * 255
    for i in range(4):
        expected = from_pil(pil_op(pil(x[i]), float(factors[i])))
        difference = (out[i] - expected).abs().max().item()
        assert difference <= tolerance, (name, i, difference)
