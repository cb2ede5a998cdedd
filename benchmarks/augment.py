"""Images per second of the strong view: ablate's batched Augmenter against torchvision applied per image.

The baseline is what the reference implementations do minus the JPEG decoding: for each image of the batch in
a Python loop, torchvision.transforms.v2 flip, crop (p = 0.5, reflect padding), RandAugment (2 ops), float
conversion, normalisation and a random erasing of up to a quarter of the area (cutout), on the same uint8
tensors and the same device. Run: python benchmarks/augment.py [--batch 256] [--sizes 112 64] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torchvision.transforms import v2

from ablate.augment import IMAGENET_MEAN, IMAGENET_STD, Augmenter


def torchvision_strong(side: int, pad: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The per-image reference pipeline, closest to Augmenter.strong that torchvision offers."""
    return v2.Compose(
        [
            v2.RandomHorizontalFlip(),
            v2.RandomApply([v2.RandomCrop(side, padding=pad, padding_mode="reflect")], p=0.5),
            v2.RandAugment(num_ops=2),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
            v2.RandomErasing(p=1.0, scale=(0.0025, 0.25), ratio=(1.0, 1.0), value=0),
        ]
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images_per_second(step: Callable[[], object], n_images: int, repeats: int, device: torch.device) -> float:
    """Median throughput over ``repeats`` timed calls, after one warm-up call."""
    step()
    sync(device)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        sync(device)
        rates.append(n_images / (time.perf_counter() - start))
    return statistics.median(rates)


def bench_size(side: int, batch: int, repeats: int, device: torch.device) -> tuple[float, float]:
    """(ablate, torchvision) images/s of the strong view at one image side."""
    x = torch.randint(0, 256, (batch, 3, side, side), dtype=torch.uint8, device=device)
    aug = Augmenter(side)
    generator = torch.Generator(device=device).manual_seed(0)
    ours = images_per_second(lambda: aug.strong(x, generator), batch, repeats, device)
    per_image = torchvision_strong(side, aug.pad[0])
    theirs = images_per_second(lambda: torch.stack([per_image(img) for img in x]), batch, repeats, device)
    return ours, theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--sizes", type=int, nargs="+", default=[112, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"strong view, batch {args.batch}, device {device}, {torch.get_num_threads()} CPU threads")
    print(f"{'side':>5} {'ablate img/s':>13} {'torchvision img/s':>18} {'ratio':>7}")
    for side in args.sizes:
        ours, theirs = bench_size(side, args.batch, args.repeats, device)
        print(f"{side:>5} {ours:>13.0f} {theirs:>18.0f} {ours / theirs:>6.2f}x")


if __name__ == "__main__":
    main()
