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

Determinism: every per-image parameter of a split is drawn up front from one ``torch.Generator`` whose seed mixes
``seed`` and the split's name, and so is a bank of pixel-noise fields (from a second stream); rendering itself
draws nothing, so chunk boundaries cannot change a pixel. The same seed gives byte-identical images whatever else
runs in the process, and train and test are independent streams (different faces). No global RNG is touched;
the intra-op thread count is set to one while rendering and restored after (see ``_one_thread``).
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from ablate.data.base import FaceSet
from ablate.data.registry import register_dataset
from ablate.errors import ConfigError, DataError

CLASS_NAMES: tuple[str, ...] = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
SPLIT_NAMES: tuple[str, ...] = ("train", "test")
# RAF-DB basic, per class in CLASS_NAMES order.
RAFDB_COUNTS: dict[str, tuple[int, ...]] = {
    "train": (1290, 281, 717, 4772, 1982, 705, 2524),
    "test": (329, 74, 160, 1185, 478, 162, 680),
}
MIN_SIZE, MAX_SIZE = 32, 224
CHUNK = 64  # images rendered at once at 64x64 (a speed setting only: small enough to stay in cache)
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
def synthfer_counts(scale: float = 1.0) -> dict[str, list[int]]:
    """Images per class and split: RAF-DB's, times ``scale`` (rounded, at least one per class)."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < math.inf:
        raise ConfigError(f"synthfer option scale: must be a number > 0, got {scale!r}")
    return {split: [max(1, round(n * scale)) for n in counts] for split, counts in RAFDB_COUNTS.items()}


def _mix(*values: int) -> int:
    """SplitMix64 over the values: independent 63-bit generator seeds from (seed, split, stream)."""
    h = 0x9E3779B97F4A7C15
    for value in values:
        h = (h ^ (value & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h = (h ^ (h >> 31)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 29
    return h & 0x7FFFFFFFFFFFFFFF


def _generator(*values: int) -> torch.Generator:
    return torch.Generator().manual_seed(_mix(*values))


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
    g = _generator(seed, SPLIT_NAMES.index(split) + 1, 0)
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


# ----------------------------------------------------------------------------------------------------------------
# Rendering. The face is drawn on a face-aligned canvas (u right, v down, face units; one canvas pixel = one image
# pixel at pose scale 1) as premultiplied RGBA, then warped into the image by each face's pose with grid_sample
# and composited over the background. On the canvas the pixel coordinates are shared by the whole batch
# (u is [1,1,1,W], v is [1,1,H,1]), so most shape arithmetic runs on small broadcast tensors, and each facial
# feature is evaluated only on the band of the canvas it can reach.
# ----------------------------------------------------------------------------------------------------------------
CANVAS_U = 1.1  # the canvas spans u in [-1.1, 1.1] ...
CANVAS_V = (-1.14, 1.62)  # ... and v in this range; its top row and side columns stay transparent
_WHITE = torch.tensor([0.93, 0.92, 0.90]).view(1, 3, 1, 1)
_BLACK = torch.tensor([0.03, 0.03, 0.03]).view(1, 3, 1, 1)
_TEETH = torch.tensor([0.95, 0.93, 0.88]).view(1, 3, 1, 1)
_MOUTH = torch.tensor([0.22, 0.05, 0.06]).view(1, 3, 1, 1)
_BLUSH = torch.tensor([1.08, 0.86, 0.86]).view(1, 3, 1, 1)
_ONE = torch.ones(())


def _col(t: torch.Tensor) -> torch.Tensor:
    """A per-image scalar [B] (or vector [B, C]) as [B, 1, 1, 1] ([B, C, 1, 1]) to broadcast over pixels."""
    return t.reshape(t.shape[0], -1, 1, 1)


def _cover(d: torch.Tensor, px: float) -> torch.Tensor:
    """Anti-aliased coverage of a shape from its signed distance (negative inside), one pixel of smoothing."""
    return d.mul(-1.0 / px).add_(0.5).clamp_(0, 1)


def _ellipse(u: torch.Tensor, v: torch.Tensor, a, b) -> torch.Tensor:
    """Approximate signed distance to an axis-aligned ellipse of half-axes a, b centred at the origin."""
    r = ((u / a) ** 2 + (v / b) ** 2).sqrt_()
    return r.sub_(1).mul_(torch.minimum(torch.as_tensor(a), torch.as_tensor(b)))


def _segment(u: torch.Tensor, v: torch.Tensor, a: tuple, b: tuple) -> torch.Tensor:
    """Distance to the segment from a = (ua, va) to b = (ub, vb) (per-image endpoints)."""
    du, dv = u - a[0], v - a[1]
    eu, ev = b[0] - a[0], b[1] - a[1]
    t = ((du * eu + dv * ev) / (eu * eu + ev * ev)).clamp_(0, 1)
    return ((du - t * eu) ** 2 + (dv - t * ev) ** 2).sqrt_()


class _Layer:
    """A premultiplied RGBA pixel block with its face coordinates: the whole canvas, a band of it, or a subset."""

    def __init__(self, rgba: torch.Tensor, u: torch.Tensor, v: torch.Tensor, px: float, origin: tuple[float, float]):
        self.rgba, self.u, self.v, self.px = rgba, u, v, px
        self.origin = origin  # (u, v) of the first pixel centre, to cut bands without reading tensors
        self.rgb, self.alpha = rgba[:, :3], rgba[:, 3:]

    @classmethod
    def canvas(cls, n: int, size: int) -> _Layer:
        px = 2.0 / size
        w, h = round(2 * CANVAS_U / px), round((CANVAS_V[1] - CANVAS_V[0]) / px)
        u = (torch.arange(w) + 0.5 - w / 2) * px
        v = CANVAS_V[0] + (torch.arange(h) + 0.5) * px
        return cls(torch.zeros(n, 4, h, w), u.view(1, 1, 1, w), v.view(1, 1, h, 1), px, (float(u[0]), float(v[0])))

    def band(self, u_half: float, v_lo: float, v_hi: float) -> _Layer:
        """A view of the pixels with |u| <= u_half and v_lo <= v <= v_hi (painting it paints the canvas)."""
        h, w = self.rgba.shape[-2:]
        u_first, v_first = self.origin
        c0 = max(0, math.ceil((-u_half - u_first) / self.px - 1e-6))
        c1 = min(w, math.floor((u_half - u_first) / self.px + 1e-6) + 1)
        r0 = max(0, math.ceil((v_lo - v_first) / self.px - 1e-6))
        r1 = min(h, math.floor((v_hi - v_first) / self.px + 1e-6) + 1)
        origin = (u_first + c0 * self.px, v_first + r0 * self.px)
        return _Layer(self.rgba[:, :, r0:r1, c0:c1], self.u[..., c0:c1], self.v[..., r0:r1, :], self.px, origin)

    def take(self, idx: torch.Tensor) -> _Layer:
        """A copy holding only the images ``idx`` (write it back with ``put``)."""
        return _Layer(self.rgba[idx], self.u, self.v, self.px, self.origin)

    def put(self, idx: torch.Tensor, part: _Layer) -> None:
        self.rgba[idx] = part.rgba

    def fill(self, d: torch.Tensor, color: torch.Tensor) -> None:
        """Paint an opaque shape (signed distance d) that can extend the silhouette: colour and alpha."""
        a = _cover(d, self.px)
        self.rgb.lerp_(color, a)
        self.alpha.lerp_(_ONE, a)

    def paint(self, a: torch.Tensor, color: torch.Tensor) -> None:
        """Paint with coverage ``a`` inside the silhouette (facial features): colour only."""
        self.rgb.lerp_(color, a)


class _Subset(dict):
    """The parameters of a subset of the batch, indexed lazily (a drawing reads only a few of them)."""

    def __init__(self, p: dict[str, torch.Tensor], idx: torch.Tensor):
        super().__init__()
        self.p, self.idx = p, idx

    def __missing__(self, key: str) -> torch.Tensor:
        self[key] = value = self.p[key][self.idx]
        return value


def _hair_back(c: _Layer, p: dict) -> None:
    """Hair behind the head: a halo around the skull and, for long hair, a curtain down to the shoulders."""
    c = c.band(0.9, -1.14, 1.0)
    u, v = c.u, c.v
    a, b, vol = _col(p["face_w"]), _col(p["face_h"]), _col(p["hair_volume"])
    halo = _ellipse(u, v + 0.06, a + vol + 0.03, b + vol)
    curtain = (u.abs() - a - vol).maximum((v - 0.35).abs() - 0.6) + 10 * (1 - _col(p["hair_long"]))
    c.fill(halo.minimum(curtain), _col(p["hair"]))


def _body(c: _Layer, p: dict) -> None:
    """Shoulders in clothes (they continue below the canvas: its bottom row is repeated) and the neck."""
    shoulders = c.band(1.0, 1.0, 2.0)
    shoulders.fill(_ellipse(shoulders.u, shoulders.v - 1.65, 0.95, 0.62), _col(p["clothes"]))
    neck = c.band(0.4, 0.3, 2.0)
    d = (neck.u.abs() - 0.5 * _col(p["face_w"])).maximum((neck.v - 0.8).abs() - 0.5)
    neck.fill(d, _col(p["skin"]) * 0.78)


def _head(c: _Layer, p: dict) -> None:
    """The face: an ellipse narrowing toward the chin, with ears, shaded darker toward its rim."""
    c = c.band(0.8, -0.9, 0.9)
    u, v = c.u, c.v
    a, b = _col(p["face_w"]), _col(p["face_h"])
    width = a * (1 - _col(p["jaw"]) * (v / b).clamp(min=0))
    r2 = (u / width) ** 2 + (v / b) ** 2
    face = r2.sqrt().sub_(1).mul_(a)
    ears = _ellipse(u.abs() - a * 0.97, v + 0.02, 0.07, 0.13)
    shade = _col(p["skin"]) * r2.clamp_(max=1.2).mul_(-0.28).add_(1.06)
    c.fill(face.minimum(ears), shade)


def _hair_top(c: _Layer, p: dict) -> None:
    """Hair over the top of the head down to a hairline; a fringe (an occluder) brings it down over the brows."""
    c = c.band(0.85, -1.14, 0.35)
    u, v = c.u, c.v
    a, b, vol = _col(p["face_w"]), _col(p["face_h"]), _col(p["hair_volume"])
    pos = p["occ_pos"]
    fringe = _col(p["occluder"] == OCCLUDERS.index("fringe"))
    fringe_line = _col(p["eye_y"] - p["brow_gap"] + 0.06 * pos[:, 0] - 0.02) + _col(pos[:, 1] - 0.5) * 0.5 * u
    line = torch.where(fringe, fringe_line + 0.08 * (u / a) ** 2, _col(p["hairline"]) + 0.35 * (u / a) ** 2)
    cap = _ellipse(u, v + 0.04, a + 0.6 * vol + 0.02, b + 0.6 * vol).maximum(v - line)
    c.fill(cap, _col(p["hair"]))


def _cheeks(c: _Layer, p: dict, ue: torch.Tensor) -> None:
    """Raised cheeks: a soft flush below each eye (happiness, some disgust)."""
    raise_ = _col(p["cheek_raise"])
    d = _ellipse(ue.abs() - _col(p["eye_x"]) * 1.1, c.v - _col(p["eye_y"]) - 0.2 + 0.03 * raise_, 0.12, 0.09)
    c.paint(d.mul_(-1 / 0.06).clamp_(0, 1).mul_(0.45 * raise_), _col(p["skin"]) * _BLUSH)


def _eyes(c: _Layer, p: dict, ue: torch.Tensor) -> None:
    """Both eyes (mirrored): dark lid line, white, iris and pupil, the lower lid pushed up by raised cheeks."""
    du = ue.abs() - _col(p["eye_x"])
    dv = c.v - _col(p["eye_y"])
    w = _col(p["eye_w"])
    h = _col(p["eye_h"]) * (1 + _col(p["eye_open"]))
    lower = h * (1 - 0.45 * _col(p["cheek_raise"]))
    lid = _ellipse(du, dv + 0.004, w + 0.012, h + 0.014).maximum(dv - lower - 0.01)
    c.paint(_cover(lid, c.px), _col(p["skin"]) * 0.25)
    white = _ellipse(du, dv, w, h).maximum(dv - lower)
    c.paint(_cover(white, c.px), _WHITE)
    gaze = p["gaze"]
    iris = ((du - _col(gaze[:, 0])) ** 2 + (dv - _col(gaze[:, 1])) ** 2).sqrt_()
    c.paint(_cover((iris - 0.05).maximum(white), c.px), _col(p["iris"]))
    c.paint(_cover((iris - 0.022).maximum(white), c.px), _BLACK)


def _brows(c: _Layer, p: dict, ue: torch.Tensor) -> None:
    """Both brows (mirrored): a thick tapered curve whose inner end rises (sad, fear) or drops (anger)."""
    v = c.v
    au = ue.abs()
    inner = _col(p["eye_x"] - p["eye_w"] * 0.95 - p["brow_squeeze"])
    length = _col(p["brow_len"])
    t = ((au - inner) / length).clamp_(0, 1)
    base = _col(p["eye_y"] - p["brow_gap"] - p["brow_raise"])
    arch = 0.025 + 0.3 * _col(p["brow_raise"]).clamp(min=0)
    centre = base - _col(p["brow_inner"]) * (1 - t) - arch * 4 * t * (1 - t)
    half = _col(p["brow_thick"]) * (0.6 - 0.25 * t)
    d = (v - centre).abs_().sub_(half).maximum(inner - au).maximum(au - inner - length)
    c.paint(_cover(d, c.px), _col(p["hair"]) * 0.7)
    # Frown lines between the brows when they are pulled together (anger, disgust, fear).
    squeeze = _col(p["brow_squeeze"]).clamp(min=0)
    lines = ((au - 0.035).abs() - 0.008).maximum((v - base - 0.04).abs() - 0.05)
    c.paint(_cover(lines, c.px).mul_((squeeze * 12).clamp_(max=0.7)), _col(p["skin"]) * 0.5)


def _nose(c: _Layer, p: dict, un: torch.Tensor) -> None:
    """Nostrils, a tip shadow, wrinkles across the bridge (disgust) and the folds from the nose to the mouth."""
    v = c.v
    wrinkle, cheek = _col(p["nose_wrinkle"]), _col(p["cheek_raise"])
    ny = _col(p["nose_y"]) - 0.025 * wrinkle
    skin = _col(p["skin"])
    au = un.abs()
    tip = _ellipse(un, v - ny + 0.03, 0.075, 0.05)
    c.paint(tip.mul_(-1 / 0.05).clamp_(0, 1).mul_(0.35), skin * 0.7)
    c.paint(_cover(_ellipse(au - 0.045, v - ny, 0.028, 0.016), c.px), skin * 0.35)
    dv = (v - _col(p["eye_y"]) - 0.04).abs()
    wrinkles = (dv - 0.035).abs_().sub_(0.009).maximum(au - 0.075 + 0.3 * dv)
    c.paint(_cover(wrinkles, c.px).mul_((0.8 * wrinkle).clamp_(max=0.8)), skin * 0.45)
    mouth_w = _col(p["mouth_w"] + p["mouth_width"])
    corner_v = _col(p["mouth_y"] - 0.6 * p["mouth_curve"])
    fold = _segment(au, v, (0.085, ny - 0.01), (mouth_w + 0.035, corner_v)).sub_(0.009)
    strength = (0.15 + 0.6 * torch.maximum(cheek, wrinkle)).clamp_(max=0.7)
    c.paint(_cover(fold, c.px).mul_(strength), skin * 0.5)


def _mouth(c: _Layer, p: dict, um: torch.Tensor) -> None:
    """Lips around an opening between two curves: the centre line bends up at the corners for a smile and down
    for a frown; the upper lip rises (disgust) and the jaw drops (surprise) in an elliptic envelope."""
    v = c.v
    width = _col(p["mouth_w"] + p["mouth_width"])
    xm2 = (um / width) ** 2
    env = (1 - xm2).clamp_(min=0).sqrt_()
    centre = _col(p["mouth_y"]) + _col(p["mouth_curve"]) * (0.35 - xm2)
    top = centre - (_col(p["upper_open"]) + 0.004) * env
    bottom = centre + (_col(p["lower_open"]) + 0.004) * env
    lip = _col(p["lip"]) * (1 - 0.7 * _col(p["lip_press"])) * env
    side = um.abs() - width
    lips = (top - lip - v).maximum(v - bottom - 1.3 * lip).maximum(side - 0.005)
    c.paint(_cover(lips, c.px), _col(p["lip_color"]))
    opening = (top - v).maximum(v - bottom).maximum(side)
    c.paint(_cover(opening, c.px), _MOUTH)
    teeth = opening.maximum(v - top - _col(p["teeth"]) * 0.5 * (bottom - top))
    c.paint(_cover(teeth, c.px), _TEETH)


def _face(c: _Layer, p: dict) -> None:
    """The inner features, each on its band, slid sideways by the yaw (the nose more than the eyes)."""
    yaw = _col(p["yaw"])
    band = c.band(0.5, 0.0, 0.32)
    _cheeks(band, p, band.u - 0.5 * yaw)
    band = c.band(0.52, -0.12, 0.58)
    _nose(band, p, band.u - 0.9 * yaw)
    band = c.band(0.48, -0.24, 0.11)
    _eyes(band, p, band.u - 0.5 * yaw)
    band = c.band(0.5, -0.6, 0.12)
    _brows(band, p, band.u - 0.5 * yaw)
    band = c.band(0.42, 0.18, 0.88)
    _mouth(band, p, band.u - 0.7 * yaw)


# ----------------------------------------------------------------------------------------------------------------
# Occluders: each drawn only on the images that have it (an index subset), so their cost follows their rate
# ----------------------------------------------------------------------------------------------------------------
def _hand(c: _Layer, p: dict) -> None:
    """A hand over the lower face or a cheek: a palm and four fingers, rotated, in the person's skin tone."""
    c = c.band(1.0, -0.5, 1.62)
    pos = p["occ_pos"]
    cu, cv = _col(pos[:, 0] * 0.9 - 0.45), _col(0.15 + pos[:, 1] * 0.5)
    ang = (pos[:, 2] - 0.5) * 2.0
    cos, sin = _col(torch.cos(ang)), _col(torch.sin(ang))
    du, dv = c.u - cu, c.v - cv
    hu, hv = cos * du + sin * dv, cos * dv - sin * du
    shape = _ellipse(hu, hv, 0.2, 0.24)
    for i in range(4):
        shape = shape.minimum(_ellipse(hu + 0.135 - 0.09 * i, hv + 0.3 - 0.03 * abs(i - 1.5), 0.042, 0.15))
    c.fill(shape - 0.012, _col(p["skin"]) * 0.55)
    c.fill(shape, _col(p["skin"]) * (0.92 + 0.1 * _col(pos[:, 3])))


def _sunglasses(c: _Layer, p: dict) -> None:
    """Dark lenses over both eyes joined by a bridge."""
    c = c.band(0.65, -0.3, 0.15)
    ue = c.u - 0.5 * _col(p["yaw"])
    du, dv = ue.abs() - _col(p["eye_x"]), c.v - _col(p["eye_y"]) - 0.01
    lens = _ellipse(du, dv, _col(p["eye_w"]) * 1.45 + 0.02, 0.1)
    bridge = (dv + 0.03).abs().maximum(ue.abs() - _col(p["eye_x"])) - 0.012
    c.fill(lens.minimum(bridge), _BLACK)
    c.fill(lens + 0.015, _col(p["occ_color"]) * 0.3)


def _mask(c: _Layer, p: dict) -> None:
    """A face mask from the nose to the chin, hiding the mouth."""
    c = c.band(0.75, 0.0, 0.95)
    a, b = _col(p["face_w"]), _col(p["face_h"])
    width = a * (1 - _col(p["jaw"]) * (c.v / b).clamp(min=0)) * 1.02
    outline = ((c.u / width) ** 2 + (c.v / b) ** 2).sqrt_().sub_(1).mul_(a)
    shape = outline.maximum(_col(p["nose_y"]) - 0.05 - c.v + 0.1 * (c.u / a) ** 2)
    c.fill(shape, 0.6 + 0.35 * _col(p["occ_color"]))


_CANVAS_OCCLUDERS = {"hand": _hand, "sunglasses": _sunglasses, "mask": _mask}


def _canvas_occluders(c: _Layer, p: dict) -> None:
    """Draw each canvas occluder on the images that have it (the fringe is drawn with the hair)."""
    for name, draw in _CANVAS_OCCLUDERS.items():
        idx = torch.nonzero(p["occluder"] == OCCLUDERS.index(name)).flatten()
        if len(idx):
            part = c.take(idx)
            draw(part, _Subset(p, idx))
            c.put(idx, part)


def _patch(img: torch.Tensor, p: dict) -> None:
    """An object in front of the face, in image space: a rectangle with a shaded random colour."""
    idx = torch.nonzero(p["occluder"] == OCCLUDERS.index("patch")).flatten()
    if len(idx) == 0:
        return
    q, sub = _Subset(p, idx), img[idx]
    size = img.shape[-1]
    axis = torch.linspace(-1 + 1 / size, 1 - 1 / size, size)
    x, y = axis.view(1, 1, 1, size), axis.view(1, 1, size, 1)
    pos = q["occ_pos"]
    cx, cy = _col(pos[:, 0] * 1.2 - 0.6), _col(pos[:, 1] * 1.2 - 0.5)
    half_w, half_h = _col(0.12 + 0.25 * pos[:, 2]), _col(0.12 + 0.25 * pos[:, 3])
    box = ((x - cx).abs() - half_w).maximum((y - cy).abs() - half_h)
    color = _col(q["occ_color"]) * (0.85 + 0.3 * (y - cy) / half_h)
    sub.lerp_(color, _cover(box, 2.0 / size))
    img[idx] = sub


# ----------------------------------------------------------------------------------------------------------------
# Image space: background, pose warp, light, blur, noise
# ----------------------------------------------------------------------------------------------------------------
def _upsample_matrix(size: int, n: int = 4) -> torch.Tensor:
    """[size, n] bilinear weights: M @ grid @ M.T upsamples an n x n grid (two small matmuls, no conv)."""
    return F.interpolate(torch.eye(n).unsqueeze(0), size=size, mode="linear", align_corners=False)[0].T.contiguous()


def _background(p: dict, size: int) -> torch.Tensor:
    """Base colour plus a low-frequency texture (a 4x4 grid upsampled), [B, 3, size, size]."""
    m = _upsample_matrix(size)
    tex = p["bg_texture"]
    return (m @ tex @ m.T).add_(_col(p["bg"]) - _col(tex.mean((2, 3))))


def _pose_grid(p: dict, size: int) -> torch.Tensor:
    """grid_sample's grid: for each image pixel, where it falls on the canvas, by rotation, scale and shift."""
    cos, sin, scale = torch.cos(p["angle"]), torch.sin(p["angle"]), p["scale"]
    tx, ty = p["shift"][:, 0], p["shift"][:, 1]
    half_u = CANVAS_U
    half_v, mid_v = (CANVAS_V[1] - CANVAS_V[0]) / 2, (CANVAS_V[1] + CANVAS_V[0]) / 2
    # (u, v) = R (x - tx, y - ty) / scale, then to the canvas' -1..1 coordinates.
    row_u = torch.stack([cos, sin, -(cos * tx + sin * ty)], 1) / (scale * half_u).unsqueeze(1)
    row_v = torch.stack([-sin, cos, sin * tx - cos * ty], 1) / (scale * half_v).unsqueeze(1)
    row_v[:, 2] -= mid_v / half_v
    # affine_grid does this as a batched matmul; two broadcast multiply-adds per coordinate are cheaper.
    axis = torch.linspace(-1 + 1 / size, 1 - 1 / size, size)
    x, y = axis.view(1, 1, size), axis.view(1, size, 1)
    rows = [r[:, 0].view(-1, 1, 1) * x + (r[:, 1].view(-1, 1, 1) * y + r[:, 2].view(-1, 1, 1)) for r in (row_u, row_v)]
    return torch.stack(rows, -1)


def _compose(c: _Layer, p: dict, size: int) -> torch.Tensor:
    """Warp the canvas into the image and lay it over the background (the canvas is premultiplied)."""
    warped = F.grid_sample(c.rgba, _pose_grid(p, size), mode="bilinear", padding_mode="border", align_corners=False)
    img = _background(p, size)
    return img.mul_(1 - warped[:, 3:]).add_(warped[:, :3])


def _lighting(img: torch.Tensor, p: dict) -> torch.Tensor:
    """Directional light across the image, colour cast, contrast, brightness, and some grey-scale photos."""
    size = img.shape[-1]
    axis = torch.linspace(-1 + 1 / size, 1 - 1 / size, size)
    light = p["light"]
    gain = _col(light[:, 0]) * axis.view(1, 1, 1, size) + _col(light[:, 1]) * axis.view(1, 1, size, 1) + 1
    img.mul_(gain.mul_(_col(p["contrast"]))).mul_(_col(p["cast"]))
    img.add_(_col(0.5 - 0.5 * p["contrast"] + p["brightness"]))
    return img.lerp_(img.mean(1, keepdim=True), _col(p["gray"]))


def _blur_matrix(size: int) -> torch.Tensor:
    """[size, size] separable blur: a box filter applied twice (a triangle), its width growing with the side,
    renormalised at the borders. x @ M blurs rows, M.T @ x columns: one matmul each, far faster than pooling."""
    k = max(1, round(size / 64))
    taps = torch.ones(2 * k + 1)
    kernel = torch.nn.functional.conv1d(taps.view(1, 1, -1), taps.view(1, 1, -1), padding=2 * k).flatten()
    offsets = torch.arange(size).view(-1, 1) - torch.arange(size).view(1, -1)
    m = torch.where(offsets.abs() <= 2 * k, kernel[(offsets + 2 * k).clamp(0, 4 * k)], torch.zeros(()))
    return m / m.sum(0, keepdim=True)


def _blur(img: torch.Tensor, p: dict) -> torch.Tensor:
    """Blend each blurred image with a triangle-filtered copy, by its blur weight."""
    idx = torch.nonzero(p["blur"] > 0).flatten()
    if len(idx) == 0:
        return img
    size = img.shape[-1]
    m = _blur_matrix(size)
    sub = img[idx]
    smooth = m.T @ (sub.reshape(-1, size) @ m).view(sub.shape)
    img[idx] = sub.lerp_(smooth, _col(p["blur"][idx]))
    return img


def noise_bank(size: int, g: torch.Generator) -> torch.Tensor:
    """NOISE_BANK unit-variance noise fields [M, 3, size, size]; each image scales one of them. Drawing fresh
    noise for every image would cost a tenth of the render time, and nobody can tell the fields repeat."""
    return torch.rand(NOISE_BANK, 3, size, size, generator=g).sub_(0.5).mul_(math.sqrt(12))


def _noise(img: torch.Tensor, p: dict, bank: torch.Tensor) -> torch.Tensor:
    """Sensor noise: zero-mean, with each image's own standard deviation."""
    return img.addcmul_(bank[p["noise_field"]], _col(p["noise"]))


def render(p: dict[str, torch.Tensor], size: int, noise: torch.Tensor) -> torch.Tensor:
    """Render a batch of faces from their parameters and a noise bank: uint8 [B, 3, size, size]."""
    c = _Layer.canvas(len(p["labels"]), size)
    _hair_back(c, p)
    _body(c, p)
    _head(c, p)
    _face(c, p)
    _hair_top(c, p)
    _canvas_occluders(c, p)
    img = _compose(c, p, size)
    _patch(img, p)
    img = _lighting(img, p)
    img = _blur(img, p)
    img = _noise(img, p, noise)
    return img.clamp_(0, 1).mul_(255).add_(0.5).to(torch.uint8)


def render_split(seed: int, split: str, counts: list[int], size: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Every image of one split, rendered in chunks; returns the images and the parameters.

    All randomness is drawn before rendering (the parameters, the noise bank), so the chunk size only sets speed
    and memory, never the pixels."""
    params = sample_split(counts, seed, split)
    bank = noise_bank(size, _generator(seed, SPLIT_NAMES.index(split) + 1, 1))
    n = len(params["labels"])
    images = torch.empty(n, 3, size, size, dtype=torch.uint8)
    chunk = max(4, round(CHUNK * (64 / size) ** 2))  # the same pixels per chunk at every size
    with _one_thread():
        for start in range(0, n, chunk):
            part = {k: t[start : start + chunk] for k, t in params.items()}
            images[start : start + chunk] = render(part, size, bank)
    return images, params


@contextmanager
def _one_thread():
    """Render on one intra-op thread, restoring the caller's setting after. Rendering is thousands of small ops;
    with two threads on a shared machine, every op waits whenever the other thread is descheduled (measured: 45-140 s
    instead of 4 s for the default set), while on idle cores the second thread gains only ~10 %."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _check_options(path: str | None, seed: int, image_size: int, scale: float) -> None:
    if path is not None:
        raise DataError(f"synthfer is rendered, it reads no files: give no path (got {path!r})")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"synthfer option seed: must be an integer, got {seed!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not MIN_SIZE <= image_size <= MAX_SIZE:
        raise ConfigError(
            f"synthfer option image_size: must be an integer from {MIN_SIZE} to {MAX_SIZE}, got {image_size!r}"
        )
    synthfer_counts(scale)


@register_dataset("synthfer")
def load_synthfer(path: str | None = None, *, seed: int = 0, image_size: int = 64, scale: float = 1.0) -> FaceSet:
    """The synthetic set: RAF-DB's classes, sizes (times ``scale``) and imbalance, train then test."""
    _check_options(path, seed, image_size, scale)
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
