"""Images per second of ablate's batched views against torchvision applied per image, as the references do.

The baseline is what the reference implementations do minus the JPEG decoding: for each image of the batch in
a Python loop, torchvision.transforms.v2 flip, crop (p = 0.5, reflect padding), for the strong view RandAugment
(2 ops) and a random erasing of up to a quarter of the area (cutout), float conversion and normalisation, on the
same uint8 tensors and the same device. ablate's views use their defaults (Augmenter(side)).

Run: python benchmarks/augment.py [--sizes 48 112] [--batches 256 48] [--views strong weak] [--threads N]
     [--repeats 5] [--device cpu]
(On a shared CPU, give --threads 1: with several OpenMP threads a busy core stalls every parallel region.)
It prints a table, then one line per setting of the form
``augment strong 48px batch=256 threads=1: ablate/torchvision = N.NNx``, and as its last line
``augment summary: {json}`` with every figure, the device, the threads and the load average before and after,
for a script to read. The script uses only ``Augmenter(side)``, ``.pad``, ``.weak`` and ``.strong``, so it also
measures an older ablate (``PYTHONPATH=/path/to/old/checkout``) for a before/after comparison.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torchvision.transforms import v2

from ablate.augment import IMAGENET_MEAN, IMAGENET_STD, Augmenter


def torchvision_view(view: str, side: int, pad: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The per-image reference pipeline, the closest to Augmenter.weak / .strong that torchvision offers."""
    geometry = [
        v2.RandomHorizontalFlip(),
        v2.RandomApply([v2.RandomCrop(side, padding=pad, padding_mode="reflect")], p=0.5),
    ]
    to_float = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if view == "weak":
        return v2.Compose(geometry + to_float)
    cutout = v2.RandomErasing(p=1.0, scale=(0.0025, 0.25), ratio=(1.0, 1.0), value=0)
    return v2.Compose(geometry + [v2.RandAugment(num_ops=2)] + to_float + [cutout])


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images_per_second(step: Callable[[], object], n_images: int, repeats: int, device: torch.device) -> float:
    """Median wall-clock throughput over ``repeats`` timed calls, after one warm-up call."""
    step()
    sync(device)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        sync(device)
        rates.append(n_images / (time.perf_counter() - start))
    return statistics.median(rates)


def bench(view: str, side: int, batch: int, repeats: int, device: torch.device) -> tuple[float, float]:
    """(ablate, torchvision) images/s of one view at one image side and batch size."""
    x = torch.randint(0, 256, (batch, 3, side, side), dtype=torch.uint8, device=device)
    aug = Augmenter(side)
    make = getattr(aug, view)
    generator = torch.Generator(device=device).manual_seed(0)
    ours = images_per_second(lambda: make(x, generator), batch, repeats, device)
    per_image = torchvision_view(view, side, aug.pad[0])
    theirs = images_per_second(lambda: torch.stack([per_image(img) for img in x]), batch, repeats, device)
    return ours, theirs


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (Linux), None elsewhere."""
    path = Path("/proc/loadavg")
    return [float(v) for v in path.read_text().split()[:3]] if path.exists() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[48, 112])
    parser.add_argument("--batches", "--batch", type=int, nargs="+", default=[256, 48])
    parser.add_argument("--views", nargs="+", choices=["strong", "weak"], default=["strong", "weak"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default 0: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device, threads = torch.device(args.device), torch.get_num_threads()
    load_before = load_average()
    print(f"device {device}, {threads} CPU threads, load average {load_before}")
    print(f"{'view':>6} {'side':>5} {'batch':>6} {'ablate img/s':>13} {'torchvision img/s':>18} {'ratio':>7}")
    results = []
    for view in args.views:
        for batch in args.batches:
            for side in args.sizes:
                ours, theirs = bench(view, side, batch, args.repeats, device)
                results.append(
                    {
                        "view": view,
                        "side": side,
                        "batch": batch,
                        "ablate": ours,
                        "torchvision": theirs,
                        "ratio": ours / theirs,
                    }
                )
                print(f"{view:>6} {side:>5} {batch:>6} {ours:>13.0f} {theirs:>18.0f} {ours / theirs:>6.2f}x")
    load_after = load_average()
    print(f"load average after: {load_after}")
    for r in results:
        print(
            f"augment {r['view']} {r['side']}px batch={r['batch']} threads={threads}: "
            f"ablate/torchvision = {r['ratio']:.2f}x"
        )
    summary = {
        "benchmark": "augment",
        "device": str(device),
        "threads": threads,
        "repeats": args.repeats,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "results": [{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()} for r in results],
    }
    print("augment summary: " + json.dumps(summary))


if __name__ == "__main__":
    main()
