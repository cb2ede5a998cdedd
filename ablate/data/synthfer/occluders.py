"""What hides part of a synthfer face: a hand, sunglasses and a face mask on the canvas, a patch in image space
(the hair fringe is drawn with the hair, in ``face``). Each is drawn only on the images that have it (an index
subset), so its cost follows its rate."""

from __future__ import annotations

import torch

from ablate.data.synthfer.canvas import BLACK, Layer, Subset, col, cover, ellipse
from ablate.data.synthfer.sampling import OCCLUDERS


def _hand(c: Layer, p: dict) -> None:
    """A hand over the lower face or a cheek: a palm and four fingers, rotated, in the person's skin tone."""
    c = c.band(1.0, -0.5, 1.62)
    pos = p["occ_pos"]
    cu, cv = col(pos[:, 0] * 0.9 - 0.45), col(0.15 + pos[:, 1] * 0.5)
    ang = (pos[:, 2] - 0.5) * 2.0
    cos, sin = col(torch.cos(ang)), col(torch.sin(ang))
    du, dv = c.u - cu, c.v - cv
    hu, hv = cos * du + sin * dv, cos * dv - sin * du
    shape = ellipse(hu, hv, 0.2, 0.24)
    for i in range(4):
        shape = shape.minimum(ellipse(hu + 0.135 - 0.09 * i, hv + 0.3 - 0.03 * abs(i - 1.5), 0.042, 0.15))
    c.fill(shape - 0.012, col(p["skin"]) * 0.55)
    c.fill(shape, col(p["skin"]) * (0.92 + 0.1 * col(pos[:, 3])))


def _sunglasses(c: Layer, p: dict) -> None:
    """Dark lenses over both eyes joined by a bridge."""
    c = c.band(0.65, -0.3, 0.15)
    ue = c.u - 0.5 * col(p["yaw"])
    du, dv = ue.abs() - col(p["eye_x"]), c.v - col(p["eye_y"]) - 0.01
    lens = ellipse(du, dv, col(p["eye_w"]) * 1.45 + 0.02, 0.1)
    bridge = (dv + 0.03).abs().maximum(ue.abs() - col(p["eye_x"])) - 0.012
    c.fill(lens.minimum(bridge), BLACK)
    c.fill(lens + 0.015, col(p["occ_color"]) * 0.3)


def _mask(c: Layer, p: dict) -> None:
    """A face mask from the nose to the chin, hiding the mouth."""
    c = c.band(0.75, 0.0, 0.95)
    a, b = col(p["face_w"]), col(p["face_h"])
    width = a * (1 - col(p["jaw"]) * (c.v / b).clamp(min=0)) * 1.02
    outline = ((c.u / width) ** 2 + (c.v / b) ** 2).sqrt_().sub_(1).mul_(a)
    shape = outline.maximum(col(p["nose_y"]) - 0.05 - c.v + 0.1 * (c.u / a) ** 2)
    c.fill(shape, 0.6 + 0.35 * col(p["occ_color"]))


_CANVAS_OCCLUDERS = {"hand": _hand, "sunglasses": _sunglasses, "mask": _mask}


def draw_canvas_occluders(c: Layer, p: dict) -> None:
    """Draw each canvas occluder on the images that have it (the fringe is drawn with the hair)."""
    for name, draw in _CANVAS_OCCLUDERS.items():
        idx = torch.nonzero(p["occluder"] == OCCLUDERS.index(name)).flatten()
        if len(idx):
            part = c.take(idx)
            draw(part, Subset(p, idx))
            c.put(idx, part)


def draw_patch(img: torch.Tensor, p: dict) -> None:
    """An object in front of the face, in image space: a rectangle with a shaded random colour."""
    idx = torch.nonzero(p["occluder"] == OCCLUDERS.index("patch")).flatten()
    if len(idx) == 0:
        return
    q, sub = Subset(p, idx), img[idx]
    size = img.shape[-1]
    axis = torch.linspace(-1 + 1 / size, 1 - 1 / size, size)
    x, y = axis.view(1, 1, 1, size), axis.view(1, 1, size, 1)
    pos = q["occ_pos"]
    cx, cy = col(pos[:, 0] * 1.2 - 0.6), col(pos[:, 1] * 1.2 - 0.5)
    half_w, half_h = col(0.12 + 0.25 * pos[:, 2]), col(0.12 + 0.25 * pos[:, 3])
    box = ((x - cx).abs() - half_w).maximum((y - cy).abs() - half_h)
    color = col(q["occ_color"]) * (0.85 + 0.3 * (y - cy) / half_h)
    sub.lerp_(color, cover(box, 2.0 / size))
    img[idx] = sub
