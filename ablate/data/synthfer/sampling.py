"""What each synthfer image is: its class blend, expression, identity, pose and scene, drawn per split up front.

Every per-image parameter of a split comes from one ``torch.Generator`` seeded by (seed, split), before any pixel
is drawn; ``render`` only reads them. The class tables (RAF-DB's sizes, the expression vectors, the usual
confusions) and the difficulty knobs live here too, because they decide what is sampled.
"""

from __future__ import annotations

import math

import torch

CLASS_NAMES: tuple[str, ...] = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
SPLIT_NAMES: tuple[str, ...] = ("train", "test")
# RAF-DB basic, per class in CLASS_NAMES order.
RAFDB_COUNTS: dict[str, tuple[int, ...]] = {
    "train": (1290, 281, 717, 4772, 1982, 705, 2524),
    "test": (329, 74, 160, 1185, 478, 162, 680),
}
NOISE_BANK = 256  # distinct noise fields per split
NEUTRAL = CLASS_NAMES.index("neutral")

# ----------------------------------------------------------------------------------------------------------------
# Expressions: one geometric parameter vector per class (neutral = all zeros). Units are face units: the head is
# about 1.2 wide and 1.6 tall, y points down. Tuned by eye on docs/synthfer.png.
# ----------------------------------------------------------------------------------------------------------------
EXPR_FIELDS: tuple[str, ...] = (
    "brow_raise",  # both brows up (+) / down (-)
    "brow_inner",  # inner ends up (+, sad/fear) / down (-, anger)
    "brow_squeeze",  # brows pulled toward the midline
    "eye_open",  # eye height, relative change (+0.5 = half again as tall)
    "mouth_width",  # change of the mouth's half width
    "mouth_curve",  # corners up (+, smile) / down (-, frown)
    "upper_open",  # upper lip raised off the centre line
    "lower_open",  # jaw drop / lower lip lowered
    "teeth",  # fraction of the opening showing teeth
    "nose_wrinkle",  # wrinkles on the nose bridge, nostrils lifted
    "cheek_raise",  # raised, flushed cheeks pushing the lower lids up
    "lip_press",  # lips pressed thin
)
_EXPR_TABLE: dict[str, tuple[float, ...]] = {
    #             raise  inner  squeeze eye   width  curve  upper  lower  teeth wrinkle cheek press
    "surprise": (0.11, 0.02, 0.00, 0.55, -0.08, 0.00, 0.06, 0.17, 0.15, 0.0, 0.0, 0.0),
    "fear": (0.07, 0.08, 0.03, 0.50, 0.06, -0.04, 0.03, 0.07, 0.85, 0.0, 0.0, 0.3),
    "disgust": (-0.04, -0.03, 0.03, -0.40, 0.00, -0.06, 0.06, 0.01, 0.90, 1.0, 0.4, 0.0),
    "happiness": (0.01, 0.00, 0.00, -0.30, 0.07, 0.13, 0.00, 0.09, 0.90, 0.0, 1.0, 0.0),
    "sadness": (0.00, 0.09, 0.02, -0.30, -0.03, -0.10, 0.00, 0.00, 0.00, 0.0, 0.0, 0.3),
    "anger": (-0.06, -0.10, 0.05, -0.20, -0.05, -0.03, 0.00, 0.00, 0.00, 0.3, 0.0, 1.0),
    "neutral": (0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.0, 0.0, 0.0),
}
EXPRESSIONS = torch.tensor([_EXPR_TABLE[c] for c in CLASS_NAMES], dtype=torch.float32)  # [K, P]
# A person's resting face: per-image jitter of each expression parameter (same order as EXPR_FIELDS).
_EXPR_JITTER = torch.tensor([0.02, 0.02, 0.01, 0.12, 0.025, 0.025, 0.01, 0.015, 0.15, 0.15, 0.15, 0.15])
_EXPR_LOW = torch.tensor([-1.0, -1.0, -1.0, -0.7, -0.14, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
_EXPR_HIGH = torch.tensor([1.0, 1.0, 1.0, 1.5, 0.2, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])

# The usual confusions (RAF-DB's confusion matrices): which class a face of row class is blended with, and how
# often. The blend partner takes weight away from the row class; neutral can also take some (low intensity).
_CONFUSION: dict[str, dict[str, float]] = {
    "surprise": {"fear": 0.65, "happiness": 0.15, "neutral": 0.20},
    "fear": {"surprise": 0.65, "sadness": 0.20, "disgust": 0.15},
    "disgust": {"anger": 0.45, "sadness": 0.30, "neutral": 0.25},
    "happiness": {"neutral": 0.70, "surprise": 0.15, "disgust": 0.15},
    "sadness": {"neutral": 0.60, "fear": 0.15, "disgust": 0.25},
    "anger": {"disgust": 0.60, "sadness": 0.20, "neutral": 0.20},
    "neutral": {"sadness": 0.50, "happiness": 0.25, "anger": 0.25},
}
CONFUSION = torch.tensor([[_CONFUSION[r].get(c, 0.0) for c in CLASS_NAMES] for r in CLASS_NAMES])  # [K, K]

# How hard the set is. Tuned with benchmarks/synthfer_difficulty.py (see its docstring); a module constant so
# experiments can change it, not a loader option: every study should see the same synthfer.
DIFFICULTY = {
    "clear_rate": 0.35,  # faces whose own class keeps 85-100 % of the blend
    "min_own_weight": 0.52,  # the least weight the sampled class keeps (> 0.5 keeps it the argmax)
    "resting_face": 1.5,  # scale of the per-person offsets of the expression parameters (_EXPR_JITTER)
    "occluder_rate": 0.25,  # faces with an occluder (hand, sunglasses, fringe, patch, mask)
    "noise_max": 0.05,  # largest pixel-noise standard deviation (images in [0, 1])
    "blur_rate": 0.3,  # faces blurred
}
OCCLUDERS: tuple[str, ...] = ("hand", "sunglasses", "fringe", "patch", "mask")
_OCCLUDER_PROBS = torch.tensor([0.30, 0.20, 0.20, 0.20, 0.10])


# ----------------------------------------------------------------------------------------------------------------
# Sizes and seeds
# ----------------------------------------------------------------------------------------------------------------
def synthfer_counts(scale: float) -> dict[str, list[int]]:
    """Images per class and split: RAF-DB's, times ``scale`` (rounded, at least one per class)."""
    return {split: [max(1, round(n * scale)) for n in counts] for split, counts in RAFDB_COUNTS.items()}


def mix_seed(*values: int) -> int:
    """SplitMix64 over the values: independent 63-bit generator seeds from (seed, split, stream)."""
    h = 0x9E3779B97F4A7C15
    for value in values:
        h = (h ^ (value & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h = (h ^ (h >> 31)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 29
    return h & 0x7FFFFFFFFFFFFFFF


def seeded_generator(*values: int) -> torch.Generator:
    return torch.Generator().manual_seed(mix_seed(*values))


# ----------------------------------------------------------------------------------------------------------------
# Parameter sampling: everything that varies per image, drawn for a whole split at once (cheap: ~100 numbers each)
# ----------------------------------------------------------------------------------------------------------------
def _uniform(g: torch.Generator, n: int, lo: float, hi: float, *shape: int) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, *shape, generator=g)


def _choice(g: torch.Generator, n: int, probs: torch.Tensor) -> torch.Tensor:
    return torch.multinomial(probs.expand(n, -1), 1, replacement=True, generator=g).squeeze(1)


def sample_labels(counts: list[int], g: torch.Generator) -> torch.Tensor:
    """The hard labels of a split: ``counts[k]`` of class k, in a seeded random order."""
    labels = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    return labels[torch.randperm(len(labels), generator=g)]


def sample_blend(labels: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Blend weights over the classes (the soft labels): own class > 0.5, the rest to a confusion and neutral."""
    n, k = len(labels), len(CLASS_NAMES)
    lo = DIFFICULTY["min_own_weight"]
    clear = torch.rand(n, generator=g) < DIFFICULTY["clear_rate"]
    own = torch.where(clear, _uniform(g, n, 0.85, 1.0), _uniform(g, n, lo, 0.9))
    partner = torch.multinomial(CONFUSION[labels], 1, generator=g).squeeze(1)
    # What the own class gives up goes partly to the confusion, partly toward neutral (low intensity).
    to_partner = _uniform(g, n, 0.3, 1.0)
    weights = torch.zeros(n, k)
    rows = torch.arange(n)
    weights[rows, labels] += own
    weights[rows, partner] += (1 - own) * to_partner
    weights[:, NEUTRAL] += (1 - own) * (1 - to_partner)
    return weights


def sample_expressions(soft: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Geometric expression parameters [N, P]: the blend of the class vectors plus a resting-face offset."""
    jitter = _EXPR_JITTER * DIFFICULTY["resting_face"]
    params = soft @ EXPRESSIONS + torch.randn(len(soft), EXPRESSIONS.shape[1], generator=g) * jitter
    return torch.maximum(torch.minimum(params, _EXPR_HIGH), _EXPR_LOW)


_SKIN_LIGHT = torch.tensor([0.96, 0.80, 0.69])
_SKIN_DARK = torch.tensor([0.33, 0.21, 0.14])
_HAIR = torch.tensor(
    [
        [0.07, 0.06, 0.05],
        [0.22, 0.13, 0.07],
        [0.42, 0.27, 0.14],
        [0.82, 0.67, 0.40],
        [0.62, 0.61, 0.60],
        [0.55, 0.22, 0.09],
    ]
)
_HAIR_PROBS = torch.tensor([0.35, 0.25, 0.15, 0.1, 0.08, 0.07])
_IRIS = torch.tensor([[0.18, 0.10, 0.05], [0.35, 0.22, 0.10], [0.25, 0.40, 0.60], [0.30, 0.42, 0.25]])
_IRIS_PROBS = torch.tensor([0.5, 0.25, 0.15, 0.1])


def sample_identity(n: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """Who the face is: shape, proportions and colours."""
    tone = torch.rand(n, 1, generator=g) ** 0.8
    skin = _SKIN_LIGHT + (_SKIN_DARK - _SKIN_LIGHT) * tone + 0.02 * torch.randn(n, 3, generator=g)
    hair = _HAIR[_choice(g, n, _HAIR_PROBS)] * _uniform(g, n, 0.8, 1.2, 1)
    return {
        "face_w": _uniform(g, n, 0.54, 0.66),
        "face_h": _uniform(g, n, 0.74, 0.86),
        "jaw": _uniform(g, n, 0.05, 0.35),  # how much the face narrows toward the chin
        "eye_x": _uniform(g, n, 0.21, 0.28),
        "eye_y": _uniform(g, n, -0.10, -0.02),
        "eye_w": _uniform(g, n, 0.095, 0.125),
        "eye_h": _uniform(g, n, 0.045, 0.065),
        "brow_gap": _uniform(g, n, 0.10, 0.15),
        "brow_thick": _uniform(g, n, 0.03, 0.055),
        "brow_len": _uniform(g, n, 0.14, 0.20),
        "nose_y": _uniform(g, n, 0.16, 0.24),
        "mouth_y": _uniform(g, n, 0.40, 0.48),
        "mouth_w": _uniform(g, n, 0.16, 0.21),
        "lip": _uniform(g, n, 0.022, 0.04),
        "skin": skin.clamp(0, 1),
        "lip_color": (skin * torch.tensor([0.85, 0.55, 0.55]) + torch.tensor([0.08, 0.0, 0.0])).clamp(0, 1),
        "hair": hair.clamp(0, 1),
        "hairline": _uniform(g, n, -0.66, -0.4),
        "hair_long": (torch.rand(n, generator=g) < 0.45).float(),
        "hair_volume": _uniform(g, n, 0.02, 0.14),
        "iris": _IRIS[_choice(g, n, _IRIS_PROBS)],
        "gaze": _uniform(g, n, -0.025, 0.025, 2),
    }


def sample_pose(n: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """Where the face is: rotation (radians), scale, shift (image units, image spans -1..1) and yaw.

    Modest, as in RAF-DB's aligned images (faces aligned by their eyes); pose is the nuisance that most hurts
    learning from few labels (benchmarks/synthfer_difficulty.py)."""
    return {
        "angle": torch.randn(n, generator=g).clamp(-2.5, 2.5) * math.radians(4),
        "scale": _uniform(g, n, 0.9, 1.05),
        "shift": _uniform(g, n, -0.04, 0.04, 2),
        "yaw": _uniform(g, n, -0.06, 0.06),
    }


def _desaturate(color: torch.Tensor, amount: torch.Tensor) -> torch.Tensor:
    """Move colours [N, 3] toward their grey by ``amount`` [N, 1] (real backgrounds are rarely saturated)."""
    return color + amount * (color.mean(1, keepdim=True) - color)


def sample_scene(n: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """Everything around the face: background, clothes, light, occluder and degradation."""
    occluded = torch.rand(n, generator=g) < DIFFICULTY["occluder_rate"]
    occluder = torch.where(occluded, _choice(g, n, _OCCLUDER_PROBS), torch.full((n,), -1))
    light_dir = _uniform(g, n, 0, 2 * math.pi)
    return {
        "bg": _desaturate(torch.rand(n, 3, generator=g) * 0.8 + 0.1, _uniform(g, n, 0.4, 1.0, 1)),
        "bg_texture": torch.rand(n, 3, 4, 4, generator=g) * _uniform(g, n, 0.0, 0.35, 1, 1, 1),
        "clothes": _desaturate(torch.rand(n, 3, generator=g) * 0.85 + 0.05, _uniform(g, n, 0.0, 0.8, 1)),
        "light": torch.stack([torch.cos(light_dir), torch.sin(light_dir)], 1) * _uniform(g, n, 0.0, 0.35, 1),
        "brightness": 0.1 * torch.randn(n, generator=g),
        "contrast": _uniform(g, n, 0.65, 1.2),
        "cast": 1 + 0.04 * torch.randn(n, 3, generator=g),
        "occluder": occluder,
        "occ_pos": torch.rand(n, 4, generator=g),  # occluder placement, meaning per type
        "occ_color": torch.rand(n, 3, generator=g),
        "blur": torch.where(
            torch.rand(n, generator=g) < DIFFICULTY["blur_rate"], _uniform(g, n, 0.3, 1.0), torch.zeros(n)
        ),
        "noise": _uniform(g, n, 0.0, 1.0) ** 2 * DIFFICULTY["noise_max"],
        "noise_field": torch.randint(NOISE_BANK, (n,), generator=g),
        "gray": (torch.rand(n, generator=g) < 0.08).float(),  # some photos are grey-scale
    }


def sample_split(counts: list[int], seed: int, split: str) -> dict[str, torch.Tensor]:
    """All per-image parameters of one split, from one generator seeded by (seed, split)."""
    g = seeded_generator(seed, SPLIT_NAMES.index(split) + 1, 0)
    labels = sample_labels(counts, g)
    soft = sample_blend(labels, g)
    n = len(labels)
    expr = sample_expressions(soft, g)
    params = {"labels": labels, "soft": soft}
    params.update({name: expr[:, i] for i, name in enumerate(EXPR_FIELDS)})
    params.update(sample_identity(n, g))
    params.update(sample_pose(n, g))
    params.update(sample_scene(n, g))
    return params
