"""The face parts of synthfer, painted on the canvas: hair, shoulders, head, and the expressive features (cheeks,
eyes, brows, nose, mouth) shaped by each face's expression parameters."""

from __future__ import annotations

import torch

from ablate.data.synthfer.canvas import BLACK, BLUSH, MOUTH, TEETH, WHITE, Layer, col, cover, ellipse, segment
from ablate.data.synthfer.sampling import OCCLUDERS


def draw_hair_back(c: Layer, p: dict) -> None:
    """Hair behind the head: a halo around the skull and, for long hair, a curtain down to the shoulders."""
    c = c.band(0.9, -1.14, 1.0)
    u, v = c.u, c.v
    a, b, vol = col(p["face_w"]), col(p["face_h"]), col(p["hair_volume"])
    halo = ellipse(u, v + 0.06, a + vol + 0.03, b + vol)
    curtain = (u.abs() - a - vol).maximum((v - 0.35).abs() - 0.6) + 10 * (1 - col(p["hair_long"]))
    c.fill(halo.minimum(curtain), col(p["hair"]))


def draw_body(c: Layer, p: dict) -> None:
    """Shoulders in clothes (they continue below the canvas: its bottom row is repeated) and the neck."""
    shoulders = c.band(1.0, 1.0, 2.0)
    shoulders.fill(ellipse(shoulders.u, shoulders.v - 1.65, 0.95, 0.62), col(p["clothes"]))
    neck = c.band(0.4, 0.3, 2.0)
    d = (neck.u.abs() - 0.5 * col(p["face_w"])).maximum((neck.v - 0.8).abs() - 0.5)
    neck.fill(d, col(p["skin"]) * 0.78)


def draw_head(c: Layer, p: dict) -> None:
    """The face: an ellipse narrowing toward the chin, with ears, shaded darker toward its rim."""
    c = c.band(0.8, -0.9, 0.9)
    u, v = c.u, c.v
    a, b = col(p["face_w"]), col(p["face_h"])
    width = a * (1 - col(p["jaw"]) * (v / b).clamp(min=0))
    r2 = (u / width) ** 2 + (v / b) ** 2
    face = r2.sqrt().sub_(1).mul_(a)
    ears = ellipse(u.abs() - a * 0.97, v + 0.02, 0.07, 0.13)
    shade = col(p["skin"]) * r2.clamp_(max=1.2).mul_(-0.28).add_(1.06)
    c.fill(face.minimum(ears), shade)


def draw_hair_top(c: Layer, p: dict) -> None:
    """Hair over the top of the head down to a hairline; a fringe (an occluder) brings it down over the brows."""
    c = c.band(0.85, -1.14, 0.35)
    u, v = c.u, c.v
    a, b, vol = col(p["face_w"]), col(p["face_h"]), col(p["hair_volume"])
    pos = p["occ_pos"]
    fringe = col(p["occluder"] == OCCLUDERS.index("fringe"))
    fringe_line = col(p["eye_y"] - p["brow_gap"] + 0.06 * pos[:, 0] - 0.02) + col(pos[:, 1] - 0.5) * 0.5 * u
    line = torch.where(fringe, fringe_line + 0.08 * (u / a) ** 2, col(p["hairline"]) + 0.35 * (u / a) ** 2)
    cap = ellipse(u, v + 0.04, a + 0.6 * vol + 0.02, b + 0.6 * vol).maximum(v - line)
    c.fill(cap, col(p["hair"]))


def _cheeks(c: Layer, p: dict, ue: torch.Tensor) -> None:
    """Raised cheeks: a soft flush below each eye (happiness, some disgust)."""
    raise_ = col(p["cheek_raise"])
    d = ellipse(ue.abs() - col(p["eye_x"]) * 1.1, c.v - col(p["eye_y"]) - 0.2 + 0.03 * raise_, 0.12, 0.09)
    c.paint(d.mul_(-1 / 0.06).clamp_(0, 1).mul_(0.45 * raise_), col(p["skin"]) * BLUSH)


def _eyes(c: Layer, p: dict, ue: torch.Tensor) -> None:
    """Both eyes (mirrored): dark lid line, white, iris and pupil, the lower lid pushed up by raised cheeks."""
    du = ue.abs() - col(p["eye_x"])
    dv = c.v - col(p["eye_y"])
    w = col(p["eye_w"])
    h = col(p["eye_h"]) * (1 + col(p["eye_open"]))
    lower = h * (1 - 0.45 * col(p["cheek_raise"]))
    lid = ellipse(du, dv + 0.004, w + 0.012, h + 0.014).maximum(dv - lower - 0.01)
    c.paint(cover(lid, c.px), col(p["skin"]) * 0.25)
    white = ellipse(du, dv, w, h).maximum(dv - lower)
    c.paint(cover(white, c.px), WHITE)
    gaze = p["gaze"]
    iris = ((du - col(gaze[:, 0])) ** 2 + (dv - col(gaze[:, 1])) ** 2).sqrt_()
    c.paint(cover((iris - 0.05).maximum(white), c.px), col(p["iris"]))
    c.paint(cover((iris - 0.022).maximum(white), c.px), BLACK)


def _brows(c: Layer, p: dict, ue: torch.Tensor) -> None:
    """Both brows (mirrored): a thick tapered curve whose inner end rises (sad, fear) or drops (anger)."""
    v = c.v
    au = ue.abs()
    inner = col(p["eye_x"] - p["eye_w"] * 0.95 - p["brow_squeeze"])
    length = col(p["brow_len"])
    t = ((au - inner) / length).clamp_(0, 1)
    base = col(p["eye_y"] - p["brow_gap"] - p["brow_raise"])
    arch = 0.025 + 0.3 * col(p["brow_raise"]).clamp(min=0)
    centre = base - col(p["brow_inner"]) * (1 - t) - arch * 4 * t * (1 - t)
    half = col(p["brow_thick"]) * (0.6 - 0.25 * t)
    d = (v - centre).abs_().sub_(half).maximum(inner - au).maximum(au - inner - length)
    c.paint(cover(d, c.px), col(p["hair"]) * 0.7)
    # Frown lines between the brows when they are pulled together (anger, disgust, fear).
    squeeze = col(p["brow_squeeze"]).clamp(min=0)
    lines = ((au - 0.035).abs() - 0.008).maximum((v - base - 0.04).abs() - 0.05)
    c.paint(cover(lines, c.px).mul_((squeeze * 12).clamp_(max=0.7)), col(p["skin"]) * 0.5)


def _nose(c: Layer, p: dict, un: torch.Tensor) -> None:
    """Nostrils, a tip shadow, wrinkles across the bridge (disgust) and the folds from the nose to the mouth."""
    v = c.v
    wrinkle, cheek = col(p["nose_wrinkle"]), col(p["cheek_raise"])
    ny = col(p["nose_y"]) - 0.025 * wrinkle
    skin = col(p["skin"])
    au = un.abs()
    tip = ellipse(un, v - ny + 0.03, 0.075, 0.05)
    c.paint(tip.mul_(-1 / 0.05).clamp_(0, 1).mul_(0.35), skin * 0.7)
    c.paint(cover(ellipse(au - 0.045, v - ny, 0.028, 0.016), c.px), skin * 0.35)
    dv = (v - col(p["eye_y"]) - 0.04).abs()
    wrinkles = (dv - 0.035).abs_().sub_(0.009).maximum(au - 0.075 + 0.3 * dv)
    c.paint(cover(wrinkles, c.px).mul_((0.8 * wrinkle).clamp_(max=0.8)), skin * 0.45)
    mouth_w = col(p["mouth_w"] + p["mouth_width"])
    corner_v = col(p["mouth_y"] - 0.6 * p["mouth_curve"])
    fold = segment(au, v, (0.085, ny - 0.01), (mouth_w + 0.035, corner_v)).sub_(0.009)
    strength = (0.15 + 0.6 * torch.maximum(cheek, wrinkle)).clamp_(max=0.7)
    c.paint(cover(fold, c.px).mul_(strength), skin * 0.5)


def _mouth(c: Layer, p: dict, um: torch.Tensor) -> None:
    """Lips around an opening between two curves: the centre line bends up at the corners for a smile and down
    for a frown; the upper lip rises (disgust) and the jaw drops (surprise) in an elliptic envelope."""
    v = c.v
    width = col(p["mouth_w"] + p["mouth_width"])
    xm2 = (um / width) ** 2
    env = (1 - xm2).clamp_(min=0).sqrt_()
    centre = col(p["mouth_y"]) + col(p["mouth_curve"]) * (0.35 - xm2)
    top = centre - (col(p["upper_open"]) + 0.004) * env
    bottom = centre + (col(p["lower_open"]) + 0.004) * env
    lip = col(p["lip"]) * (1 - 0.7 * col(p["lip_press"])) * env
    side = um.abs() - width
    lips = (top - lip - v).maximum(v - bottom - 1.3 * lip).maximum(side - 0.005)
    c.paint(cover(lips, c.px), col(p["lip_color"]))
    opening = (top - v).maximum(v - bottom).maximum(side)
    c.paint(cover(opening, c.px), MOUTH)
    teeth = opening.maximum(v - top - col(p["teeth"]) * 0.5 * (bottom - top))
    c.paint(cover(teeth, c.px), TEETH)


def draw_face(c: Layer, p: dict) -> None:
    """The inner features, each on its band, slid sideways by the yaw (the nose more than the eyes)."""
    yaw = col(p["yaw"])
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
