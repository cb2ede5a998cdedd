"""Tests of ablate.augment's views: shapes, exact normalisation, the weak view's geometry, per-sample strong views,
the order of the strong view and the cutout colour, seeded determinism, PARAMS and option validation. CPU by
default; the device tests also run on CUDA when present. The operations are tested in test_augment_ops.py, the
per-sample dispatch in test_augment_randaugment.py, the absence of host syncs in test_augment_sync.py."""

from __future__ import annotations

import inspect
import json

import pytest
import torch
import torch.nn.functional as F

from ablate.augment import ADACM_CUTOUT_GREY, IMAGENET_MEAN, IMAGENET_STD, PARAMS, Augmenter
from ablate.config.params import resolve_section
from ablate.errors import ConfigError

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def images(n: int = 4, side: int = 32, seed: int = 0, low: int = 0, high: int = 256) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(low, high, (n, 3, side, side), generator=g, dtype=torch.uint8)


def one_face(side: int = 32) -> torch.Tensor:
    """A structured image (gradient, a bright square, noise) in a narrow range, so that no op is a no-op."""
    y, x = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    img = torch.stack([60 + 2 * x, 70 + 2 * y, 80 + x + y]).float()
    img[:, side // 4 : side // 2, side // 3 : side // 2 + 4] += 50
    img += torch.rand(img.shape, generator=torch.Generator().manual_seed(1)) * 20
    return img.clamp(0, 255).to(torch.uint8)


def gen(seed: int, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def distinct(views: torch.Tensor) -> int:
    return torch.unique(views.flatten(1), dim=0).shape[0]


# ---- shapes, dtypes, devices ---------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_views_keep_shape_and_device_and_are_float32(device):
    aug = Augmenter(32)
    x = images().to(device)
    for y in (aug.normalize(x), aug.weak(x, gen(0, device)), aug.strong(x, gen(0, device)), aug.strong(x)):
        assert y.shape == x.shape and y.dtype == torch.float32 and y.device == x.device
        assert torch.isfinite(y).all()


def test_non_square_images():
    aug = Augmenter((24, 40))
    x = torch.randint(0, 256, (3, 3, 24, 40), dtype=torch.uint8)
    assert aug.strong(x, gen(0)).shape == x.shape
    assert aug.pad == (1, 1)


def test_bad_images_and_generator_are_rejected():
    aug = Augmenter(32)
    with pytest.raises(ValueError, match="uint8"):
        aug.weak(images().float())
    with pytest.raises(ValueError, match="made for"):
        aug.weak(images(side=16))
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="generator"):
            aug.weak(images(), torch.Generator(device="cuda"))


# ---- normalisation -------------------------------------------------------------------------------------------


def test_normalize_exact_values():
    x = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    x[0, :, 0, 0] = 255
    x[0, 0, 1, 1], x[0, 1, 1, 1], x[0, 2, 1, 1] = 128, 64, 1
    y = Augmenter(4).normalize(x)
    for c in range(3):
        m, s = IMAGENET_MEAN[c], IMAGENET_STD[c]
        assert y[0, c, 0, 0].item() == pytest.approx((1.0 - m) / s, abs=1e-6)
        assert y[0, c, 3, 3].item() == pytest.approx((0.0 - m) / s, abs=1e-6)
        assert y[0, c, 1, 1].item() == pytest.approx((int(x[0, c, 1, 1]) / 255 - m) / s, abs=1e-6)


def test_normalize_custom_mean_std():
    x = torch.full((2, 3, 4, 4), 51, dtype=torch.uint8)  # 0.2
    y = Augmenter(4, mean=(0.5, 0.5, 0.5), std=(0.5, 0.25, 0.1)).normalize(x)
    expected = torch.tensor([-0.6, -1.2, -3.0]).view(1, 3, 1, 1).expand_as(y)
    torch.testing.assert_close(y, expected, atol=1e-5, rtol=0)


# ---- weak view ---------------------------------------------------------------------------------------------


def test_weak_without_crop_and_with_flip_is_the_flipped_image():
    aug = Augmenter(32, crop_p=0.0, flip_p=1.0)
    x = images()
    torch.testing.assert_close(aug.weak(x, gen(0)), aug.normalize(x.flip(-1)), atol=0, rtol=0)


def test_weak_without_crop_and_flip_is_the_image():
    aug = Augmenter(32, crop_p=0.0, flip_p=0.0)
    x = images()
    torch.testing.assert_close(aug.weak(x, gen(3)), aug.normalize(x), atol=0, rtol=0)


def test_padding_scales_with_the_side():
    assert Augmenter(224).pad == (8, 8)
    assert Augmenter(112).pad == (4, 4)
    assert Augmenter(64).pad == (2, 2)
    assert Augmenter(16).pad == (1, 1)  # at least one pixel
    assert Augmenter(64, pad_fraction=0).pad == (0, 0)


@pytest.mark.parametrize("pad_mode, torch_mode", [("reflect", "reflect"), ("zeros", "constant")])
def test_weak_crop_is_a_shifted_copy_of_the_padded_image(pad_mode, torch_mode):
    aug = Augmenter(32, crop_p=1.0, flip_p=0.0, pad_mode=pad_mode, pad_fraction=3 / 32)
    p = aug.pad[0]
    x = images(n=16)
    padded = F.pad(x.float(), (p, p, p, p), mode=torch_mode)
    crops = torch.stack(
        [padded[:, :, dy : dy + 32, dx : dx + 32] for dy in range(2 * p + 1) for dx in range(2 * p + 1)], 1
    )  # [B, offsets, 3, 32, 32]
    y = aug.weak(x, gen(0))
    out = y * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    out = (out * 255).round()
    matches = (crops == out.unsqueeze(1)).flatten(2).all(-1)  # [B, offsets]
    assert (matches.sum(1) == 1).all(), "each view must be exactly one crop of the padded image"
    assert len(set(matches.float().argmax(1).tolist())) > 3, "crop offsets must differ between samples"


def test_weak_flips_about_half_of_a_batch():
    aug = Augmenter(32, crop_p=0.0)
    x = images(n=400)
    y = aug.weak(x, gen(0))
    flipped = (y == aug.normalize(x.flip(-1))).flatten(1).all(1)
    assert 140 < int(flipped.sum()) < 260


# ---- strong view: per-sample operations ---------------------------------------------------------------------


def test_sixteen_copies_give_at_least_eight_strong_views():
    x = one_face().expand(16, -1, -1, -1).contiguous()
    assert distinct(Augmenter(32).strong(x, gen(0))) >= 8


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_per_sample_op_choice_alone_gives_eight_views(seed):
    """Fixed magnitude, one op, no cutout/flip/crop: only the per-sample op choice (and the sign of the
    geometric ops) can make copies differ, so one op per batch would give at most two views."""
    aug = Augmenter(32, flip_p=0.0, crop_p=0.0, cutout=0.0, strong_ops=1, magnitude=0.5)
    x = one_face().expand(16, -1, -1, -1).contiguous()
    assert distinct(aug.strong(x, gen(seed))) >= 8


def test_strong_without_ops_and_cutout_equals_weak():
    x = images(n=8)
    weak = Augmenter(32).weak(x, gen(5))
    torch.testing.assert_close(Augmenter(32, strong_ops=0, cutout=0.0).strong(x, gen(5)), weak, atol=0, rtol=0)
    torch.testing.assert_close(Augmenter(32, op_p=0.0, cutout=0.0).strong(x, gen(5)), weak, atol=0, rtol=0)


def test_identity_only_pool_is_the_weak_view():
    aug = Augmenter(32, ops=["identity"], strong_ops=1, cutout=0.0, flip_p=0.0, crop_p=0.0)
    x = images()
    torch.testing.assert_close(aug.strong(x, gen(0)), aug.normalize(x), atol=0, rtol=0)


def test_cutout_zeroes_one_square_per_sample():
    aug = Augmenter(32, strong_ops=0, flip_p=0.0, crop_p=0.0, cutout=0.5)
    x = images(n=64, low=1)
    y = aug.strong(x, gen(0))
    changed = (y != aug.normalize(x)).any(1)  # [B, H, W]
    assert (y.permute(0, 2, 3, 1)[changed] == 0).all(), "cut pixels hold the mean (0 after normalising)"
    for mask in changed:
        rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
        if len(rows):
            assert mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all(), "a filled rectangle"
            assert rows.max() - rows.min() + 1 <= 17 and cols.max() - cols.min() + 1 <= 17
    assert changed.flatten(1).any(1).float().mean() > 0.5


def denormalize(y: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """Normalised views back to 8-bit levels (floats, rounded)."""
    return (y * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)).mul(255).round()


def test_cutout_adacm_fill_is_the_official_grey():
    aug = Augmenter(32, strong_ops=0, flip_p=0.0, crop_p=0.0, cutout=0.5, cutout_fill="adacm")
    x = images(n=64, low=1)
    y = aug.strong(x, gen(0))
    changed = (y != aug.normalize(x)).any(1)
    assert changed.flatten(1).any(1).float().mean() > 0.5
    cut = denormalize(y).permute(0, 2, 3, 1)[changed]
    assert (cut == torch.tensor(ADACM_CUTOUT_GREY, dtype=cut.dtype)).all()


def test_nearest_interpolation_keeps_the_images_levels():
    """Two-level images: nearest moves pixels (levels 50, 200, or black where uncovered); bilinear mixes them."""
    x = ((images(n=8) > 127) * 150 + 50).to(torch.uint8)
    options = dict(ops=["rotate", "shear_x"], strong_ops=2, cutout=0.0, flip_p=0.0, crop_p=0.0)
    nearest = denormalize(Augmenter(32, interpolation="nearest", **options).strong(x, gen(0)))
    assert set(nearest.unique().tolist()) <= {0.0, 50.0, 200.0}
    bilinear = denormalize(Augmenter(32, **options).strong(x, gen(0)))
    assert not set(bilinear.unique().tolist()) <= {0.0, 50.0, 200.0}


def test_weak_crops_with_probability_crop_p():
    """Ada-CM applies its padded crop with p = 0.5: with a pad of 3 px, an uncropped view is the image itself
    and a cropped one is the image only when its offset is (0, 0), 1 in 49."""
    x = images(n=600)
    for crop_p, low, high in [(0.5, 0.40, 0.60), (1.0, 0.95, 1.0), (0.0, 0.0, 0.0)]:
        aug = Augmenter(32, flip_p=0.0, crop_p=crop_p, pad_fraction=3 / 32)
        moved = (aug.weak(x, gen(1)) != aug.normalize(x)).flatten(1).any(1).float().mean().item()
        assert low <= moved <= high, (crop_p, moved)


def inverting(order: str) -> Augmenter:
    """Solarize at threshold 0 inverts every pixel: the one operation, always, with a zero-padded crop."""
    return Augmenter(
        32, strong_order=order, ops=["solarize"], strong_ops=1, magnitude=1.0, cutout=0.0,
        flip_p=0.0, crop_p=1.0, pad_fraction=3 / 32, pad_mode="zeros",
    )  # fmt: skip


def test_geometry_first_crops_then_applies_the_operations():
    """FixMatch's order: the crop's black padding is then inverted to white, and the view is exactly the
    inverted weak view (the flip and crop draw the same numbers first)."""
    x = images(n=32, low=1, high=255)
    aug = inverting("geometry_first")
    levels = denormalize(aug.strong(x, gen(4)))
    expected = 255 - denormalize(aug.weak(x, gen(4)))
    torch.testing.assert_close(levels, expected, atol=0, rtol=0)
    assert (levels == 255).any() and not (levels == 0).any()


def test_ops_first_applies_the_operations_then_crops():
    """Ada-CM's order (RandAugment before its crop): the inverted image is padded with black, never white."""
    x = images(n=32, low=1, high=255)
    levels = denormalize(inverting("ops_first").strong(x, gen(4)))
    assert (levels == 0).any() and not (levels == 255).any()


def test_ops_first_cutout_comes_before_the_crop():
    """In Ada-CM's order the cutout square is drawn on the image, then moved by the crop, so the crop's black
    padding stays whole rows and columns; in FixMatch's order the square, drawn last, can cover part of them.
    (The images hold levels 1..254, so only padding is black.)"""
    x = images(n=200, low=1, high=255)
    options = dict(ops=["identity"], cutout=1.0, cutout_fill="adacm", flip_p=0.0, crop_p=1.0, pad_fraction=3 / 32)
    for order, whole_strips in [("ops_first", True), ("geometry_first", False)]:
        aug = Augmenter(32, strong_order=order, pad_mode="zeros", **options)
        black = (denormalize(aug.strong(x, gen(2))) == 0).all(1)  # [B, H, W]
        assert black.any(), order
        strips = black.all(2, keepdim=True) | black.all(1, keepdim=True)
        assert bool((black == strips).all()) == whole_strips, order


# ---- determinism ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "options", [{}, {"strong_order": "ops_first", "strong_ops": 3, "cutout_fill": "adacm"}, {"op_p": 0.5}]
)
def test_same_seed_same_views_other_seed_other_views(device, options):
    aug = Augmenter(32, **options)
    x = images(n=16).to(device)
    for view in (aug.weak, aug.strong):
        torch.testing.assert_close(view(x, gen(7, device)), view(x, gen(7, device)), atol=0, rtol=0)
        assert not torch.equal(view(x, gen(7, device)), view(x, gen(8, device)))


# ---- validation -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, name",
    [
        ({"strong_ops": 15}, "strong_ops"),
        ({"strong_ops": -1}, "strong_ops"),
        ({"strong_ops": 2.0}, "strong_ops"),
        ({"pad_fraction": 0.5}, "pad_fraction"),
        ({"pad_fraction": -0.1}, "pad_fraction"),
        ({"pad_mode": "wrap"}, "pad_mode"),
        ({"crop_p": 1.5}, "crop_p"),
        ({"flip_p": -0.1}, "flip_p"),
        ({"op_p": 2}, "op_p"),
        ({"mean": (0.5, 0.5)}, "mean"),
        ({"std": (0.2, 0.0, 0.2)}, "std"),
        ({"std": (0.2, 0.2, 0.2, 0.2)}, "std"),
        ({"magnitude": 1.5}, "magnitude"),
        ({"cutout": -0.5}, "cutout"),
        ({"ops": ["rotate", "blur"]}, "ops"),
        ({"ops": []}, "ops"),
        ({"ops": "rotate"}, "ops"),
        ({"ops": 5}, "ops"),
        ({"strong_order": "random"}, "strong_order"),
        ({"cutout_fill": "black"}, "cutout_fill"),
        ({"interpolation": "bicubic"}, "interpolation"),
        ({"crop_p": True}, "crop_p"),
        ({"magnitude": "0.5"}, "magnitude"),
    ],
)
def test_bad_options_raise_config_error_naming_them(options, name):
    with pytest.raises(ConfigError, match=name) as info:
        Augmenter(32, **options)
    assert "allowed" in str(info.value)


@pytest.mark.parametrize("size", [0, 3, (32,), (32, 32, 3), 32.0])
def test_bad_image_size(size):
    with pytest.raises(ConfigError, match="image_size"):
        Augmenter(size)


# ---- PARAMS: every option declared once ------------------------------------------------------------------------


def test_params_are_the_augmenters_options_with_its_defaults():
    signature = inspect.signature(Augmenter.__init__).parameters
    assert set(PARAMS) == set(signature) - {"self", "image_size"}
    for name, param in PARAMS.items():
        default = signature[name].default
        assert (list(default) if isinstance(default, tuple) else default) == param.default, name
        assert param.doc, name


@pytest.mark.parametrize(
    "name", ["strong_order", "strong_ops", "pad_mode", "cutout_fill", "crop_p", "op_p", "interpolation"]
)
def test_fidelity_options_name_the_official_values(name):
    assert "Ada-CM" in PARAMS[name].doc and ".py:" in PARAMS[name].doc


def test_a_resolved_section_builds_the_augmenter():
    """What run_config does: resolve_section("augment", given, PARAMS), then Augmenter(image_size, **resolved)."""
    given = {
        "strong_order": "ops_first",
        "strong_ops": 3,
        "pad_mode": "zeros",
        "cutout_fill": "adacm",
        "mean": [0.5] * 3,
    }
    resolved = resolve_section("augment", given, PARAMS)
    assert resolved["crop_p"] == 0.5 and resolved["ops"] is None and resolved["mean"] == [0.5] * 3
    aug = Augmenter(32, **resolved)
    assert (aug.strong_order, aug.strong_ops, aug.pad_mode, aug.cutout_fill) == ("ops_first", 3, "zeros", "adacm")
    with pytest.raises(ConfigError, match=r"augment: unknown key 'strong_op'"):
        resolve_section("augment", {"strong_op": 3}, PARAMS)
    with pytest.raises(ConfigError, match=r"augment.strong_ops: 15 is out of range; allowed: a int in \[0, 14\]"):
        resolve_section("augment", {"strong_ops": 15}, PARAMS)


def test_the_defaults_are_json_values():
    """A resolved config is written as JSON and read back (trials.parquet): lists, not tuples."""
    resolved = resolve_section("augment", {}, PARAMS)
    assert json.loads(json.dumps(resolved)) == resolved
