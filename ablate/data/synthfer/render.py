"""From parameters to pixels: paint the canvas (``face``, ``occluders``), warp it into the image by the pose and
lay it over the background, then light, blur and add noise; ``render_split`` renders a whole split in chunks.

Rendering draws no random number: the parameters and a bank of noise fields are drawn before it, so the chunk
size sets speed and memory, never the pixels.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from ablate.data.synthfer.canvas import CANVAS_U, CANVAS_V, Layer, col
from ablate.data.synthfer.face import draw_body, draw_face, draw_hair_back, draw_hair_top, draw_head
from ablate.data.synthfer.occluders import draw_canvas_occluders, draw_patch
from ablate.data.synthfer.sampling import NOISE_BANK, SPLIT_NAMES, sample_split, seeded_generator

CHUNK = 64  # images rendered at once at 64x64 (a speed setting only: small enough to stay in cache)


def _upsample_matrix(size: int, n: int = 4) -> torch.Tensor:
    """[size, n] bilinear weights: M @ grid @ M.T upsamples an n x n grid (two small matmuls, no conv)."""
    return F.interpolate(torch.eye(n).unsqueeze(0), size=size, mode="linear", align_corners=False)[0].T.contiguous()


def _background(p: dict, size: int) -> torch.Tensor:
    """Base colour plus a low-frequency texture (a 4x4 grid upsampled), [B, 3, size, size]."""
    m = _upsample_matrix(size)
    tex = p["bg_texture"]
    return (m @ tex @ m.T).add_(col(p["bg"]) - col(tex.mean((2, 3))))


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


def _compose(c: Layer, p: dict, size: int) -> torch.Tensor:
    """Warp the canvas into the image and lay it over the background (the canvas is premultiplied)."""
    warped = F.grid_sample(c.rgba, _pose_grid(p, size), mode="bilinear", padding_mode="border", align_corners=False)
    img = _background(p, size)
    return img.mul_(1 - warped[:, 3:]).add_(warped[:, :3])


def _lighting(img: torch.Tensor, p: dict) -> torch.Tensor:
    """Directional light across the image, colour cast, contrast, brightness, and some grey-scale photos."""
    size = img.shape[-1]
    axis = torch.linspace(-1 + 1 / size, 1 - 1 / size, size)
    light = p["light"]
    gain = col(light[:, 0]) * axis.view(1, 1, 1, size) + col(light[:, 1]) * axis.view(1, 1, size, 1) + 1
    img.mul_(gain.mul_(col(p["contrast"]))).mul_(col(p["cast"]))
    img.add_(col(0.5 - 0.5 * p["contrast"] + p["brightness"]))
    return img.lerp_(img.mean(1, keepdim=True), col(p["gray"]))


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
    img[idx] = sub.lerp_(smooth, col(p["blur"][idx]))
    return img


def noise_bank(size: int, g: torch.Generator) -> torch.Tensor:
    """NOISE_BANK unit-variance noise fields [M, 3, size, size]; each image scales one of them. Drawing fresh
    noise for every image would cost a tenth of the render time, and nobody can tell the fields repeat."""
    return torch.rand(NOISE_BANK, 3, size, size, generator=g).sub_(0.5).mul_(math.sqrt(12))


def _noise(img: torch.Tensor, p: dict, bank: torch.Tensor) -> torch.Tensor:
    """Sensor noise: zero-mean, with each image's own standard deviation."""
    return img.addcmul_(bank[p["noise_field"]], col(p["noise"]))


def render_batch(p: dict[str, torch.Tensor], size: int, noise: torch.Tensor) -> torch.Tensor:
    """Render a batch of faces from their parameters and a noise bank: uint8 [B, 3, size, size]."""
    c = Layer.canvas(len(p["labels"]), size)
    draw_hair_back(c, p)
    draw_body(c, p)
    draw_head(c, p)
    draw_face(c, p)
    draw_hair_top(c, p)
    draw_canvas_occluders(c, p)
    img = _compose(c, p, size)
    draw_patch(img, p)
    img = _lighting(img, p)
    img = _blur(img, p)
    img = _noise(img, p, noise)
    return img.clamp_(0, 1).mul_(255).add_(0.5).to(torch.uint8)


def render_split(seed: int, split: str, counts: list[int], size: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Every image of one split, rendered in chunks; returns the images and the parameters.

    All randomness is drawn before rendering (the parameters, the noise bank), so the chunk size only sets speed
    and memory, never the pixels."""
    params = sample_split(counts, seed, split)
    bank = noise_bank(size, seeded_generator(seed, SPLIT_NAMES.index(split) + 1, 1))
    n = len(params["labels"])
    images = torch.empty(n, 3, size, size, dtype=torch.uint8)
    chunk = max(4, round(CHUNK * (64 / size) ** 2))  # the same pixels per chunk at every size
    with _one_thread():
        for start in range(0, n, chunk):
            part = {k: t[start : start + chunk] for k, t in params.items()}
            images[start : start + chunk] = render_batch(part, size, bank)
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
