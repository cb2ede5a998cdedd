"""The drawing surface of synthfer: a face-aligned canvas, signed-distance shapes and anti-aliased painting.

The face is drawn on a face-aligned canvas (u right, v down, face units; one canvas pixel = one image pixel at
pose scale 1) as premultiplied RGBA, then warped into the image by each face's pose (``render``). On the canvas
the pixel coordinates are shared by the whole batch (u is [1,1,1,W], v is [1,1,H,1]), so most shape arithmetic
runs on small broadcast tensors, and each facial feature is evaluated only on the band of the canvas it can reach.
"""

from __future__ import annotations

import math

import torch

CANVAS_U = 1.1  # the canvas spans u in [-1.1, 1.1] ...
CANVAS_V = (-1.14, 1.62)  # ... and v in this range; its top row and side columns stay transparent
WHITE = torch.tensor([0.93, 0.92, 0.90]).view(1, 3, 1, 1)
BLACK = torch.tensor([0.03, 0.03, 0.03]).view(1, 3, 1, 1)
TEETH = torch.tensor([0.95, 0.93, 0.88]).view(1, 3, 1, 1)
MOUTH = torch.tensor([0.22, 0.05, 0.06]).view(1, 3, 1, 1)
BLUSH = torch.tensor([1.08, 0.86, 0.86]).view(1, 3, 1, 1)
_ONE = torch.ones(())


def col(t: torch.Tensor) -> torch.Tensor:
    """A per-image scalar [B] (or vector [B, C]) as [B, 1, 1, 1] ([B, C, 1, 1]) to broadcast over pixels."""
    return t.reshape(t.shape[0], -1, 1, 1)


def cover(d: torch.Tensor, px: float) -> torch.Tensor:
    """Anti-aliased coverage of a shape from its signed distance (negative inside), one pixel of smoothing."""
    return d.mul(-1.0 / px).add_(0.5).clamp_(0, 1)


def ellipse(u: torch.Tensor, v: torch.Tensor, a, b) -> torch.Tensor:
    """Approximate signed distance to an axis-aligned ellipse of half-axes a, b centred at the origin."""
    r = ((u / a) ** 2 + (v / b) ** 2).sqrt_()
    return r.sub_(1).mul_(torch.minimum(torch.as_tensor(a), torch.as_tensor(b)))


def segment(u: torch.Tensor, v: torch.Tensor, a: tuple, b: tuple) -> torch.Tensor:
    """Distance to the segment from a = (ua, va) to b = (ub, vb) (per-image endpoints)."""
    du, dv = u - a[0], v - a[1]
    eu, ev = b[0] - a[0], b[1] - a[1]
    t = ((du * eu + dv * ev) / (eu * eu + ev * ev)).clamp_(0, 1)
    return ((du - t * eu) ** 2 + (dv - t * ev) ** 2).sqrt_()


class Layer:
    """A premultiplied RGBA pixel block with its face coordinates: the whole canvas, a band of it, or a subset."""

    def __init__(self, rgba: torch.Tensor, u: torch.Tensor, v: torch.Tensor, px: float, origin: tuple[float, float]):
        self.rgba, self.u, self.v, self.px = rgba, u, v, px
        self.origin = origin  # (u, v) of the first pixel centre, to cut bands without reading tensors
        self.rgb, self.alpha = rgba[:, :3], rgba[:, 3:]

    @classmethod
    def canvas(cls, n: int, size: int) -> Layer:
        px = 2.0 / size
        w, h = round(2 * CANVAS_U / px), round((CANVAS_V[1] - CANVAS_V[0]) / px)
        u = (torch.arange(w) + 0.5 - w / 2) * px
        v = CANVAS_V[0] + (torch.arange(h) + 0.5) * px
        return cls(torch.zeros(n, 4, h, w), u.view(1, 1, 1, w), v.view(1, 1, h, 1), px, (float(u[0]), float(v[0])))

    def band(self, u_half: float, v_lo: float, v_hi: float) -> Layer:
        """A view of the pixels with |u| <= u_half and v_lo <= v <= v_hi (painting it paints the canvas)."""
        h, w = self.rgba.shape[-2:]
        u_first, v_first = self.origin
        c0 = max(0, math.ceil((-u_half - u_first) / self.px - 1e-6))
        c1 = min(w, math.floor((u_half - u_first) / self.px + 1e-6) + 1)
        r0 = max(0, math.ceil((v_lo - v_first) / self.px - 1e-6))
        r1 = min(h, math.floor((v_hi - v_first) / self.px + 1e-6) + 1)
        origin = (u_first + c0 * self.px, v_first + r0 * self.px)
        return Layer(self.rgba[:, :, r0:r1, c0:c1], self.u[..., c0:c1], self.v[..., r0:r1, :], self.px, origin)

    def take(self, idx: torch.Tensor) -> Layer:
        """A copy holding only the images ``idx`` (write it back with ``put``)."""
        return Layer(self.rgba[idx], self.u, self.v, self.px, self.origin)

    def put(self, idx: torch.Tensor, part: Layer) -> None:
        self.rgba[idx] = part.rgba

    def fill(self, d: torch.Tensor, color: torch.Tensor) -> None:
        """Paint an opaque shape (signed distance d) that can extend the silhouette: colour and alpha."""
        a = cover(d, self.px)
        self.rgb.lerp_(color, a)
        self.alpha.lerp_(_ONE, a)

    def paint(self, a: torch.Tensor, color: torch.Tensor) -> None:
        """Paint with coverage ``a`` inside the silhouette (facial features): colour only."""
        self.rgb.lerp_(color, a)


class Subset(dict):
    """The parameters of a subset of the batch, indexed lazily (a drawing reads only a few of them)."""

    def __init__(self, p: dict[str, torch.Tensor], idx: torch.Tensor):
        super().__init__()
        self.p, self.idx = p, idx

    def __missing__(self, key: str) -> torch.Tensor:
        self[key] = value = self.p[key][self.idx]
        return value
