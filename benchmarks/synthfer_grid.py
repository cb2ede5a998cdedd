"""Write docs/synthfer.png: examples of every synthfer class, one row per class, upscaled so a reader can see them.

.venv/bin/python benchmarks/synthfer_grid.py [--size 96] [--per-class 10] [--zoom 2] [--seed 0] \
    [--out docs/synthfer.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from ablate.data.synthfer import CLASS_NAMES, render_split

LABEL_WIDTH = 150


def class_rows(size: int, per_class: int, seed: int) -> list[torch.Tensor]:
    """``per_class`` training-set faces of each class, [per_class, 3, size, size] each (rendered, not the full set)."""
    # Render a small balanced sample with the training stream's renderer: the same look as the real split.
    images, params = render_split(seed, "train", [per_class] * len(CLASS_NAMES), size)
    return [images[params["labels"] == k] for k in range(len(CLASS_NAMES))]


def grid_image(rows: list[torch.Tensor], zoom: int) -> Image.Image:
    """Tile the rows side by side, upscale by ``zoom`` (nearest: keeps the real pixels) and write class names."""
    per_class, _, size, _ = rows[0].shape
    cell = size * zoom
    sheet = Image.new("RGB", (LABEL_WIDTH + per_class * cell, len(rows) * cell), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=22)
    for r, (name, faces) in enumerate(zip(CLASS_NAMES, rows)):
        draw.text((10, r * cell + cell // 2), name, fill="black", font=font, anchor="lm")
        for c, face in enumerate(faces):
            tile = Image.fromarray(face.permute(1, 2, 0).numpy()).resize((cell, cell), Image.NEAREST)
            sheet.paste(tile, (LABEL_WIDTH + c * cell, r * cell))
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--zoom", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/synthfer.png")
    args = parser.parse_args()
    sheet = grid_image(class_rows(args.size, args.per_class, args.seed), args.zoom)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out} ({sheet.width}x{sheet.height})")


if __name__ == "__main__":
    main()
