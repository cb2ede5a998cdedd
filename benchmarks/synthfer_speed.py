"""How fast does synthfer render? The goal: at least 2,000 images/s at 64x64 on a 2-core CPU.

Renders the default training split (12,271 faces, RAF-DB's size) and prints images/s by wall clock (the goal's
measure; the best of ``--repeats`` runs counts) and images per CPU-second (the work itself: on a shared machine
the wall clock also counts waiting for other people's jobs). synthfer renders on one intra-op thread whatever
``--threads`` says (see ``_one_thread`` in ablate/data/synthfer/render.py), so the goal is met on one of the two
cores.

    .venv/bin/python benchmarks/synthfer_speed.py [--size 64] [--threads 2] [--repeats 3] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import time

import torch

from ablate.data.synthfer import render_split, synthfer_counts

GOAL = 2000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="the caller's torch thread setting")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    counts = synthfer_counts(args.scale)["train"]
    n = sum(counts)
    best_wall = best_cpu = 0.0
    for repeat in range(args.repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        images, _ = render_split(repeat, "train", counts, args.size)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        rate_wall, rate_cpu = n / wall, n / cpu
        best_wall, best_cpu = max(best_wall, rate_wall), max(best_cpu, rate_cpu)
        print(
            f"run {repeat + 1}: {n} images {tuple(images.shape[1:])} in {wall:.2f} s: "
            f"{rate_wall:.0f} images/s (cpu {cpu:.2f} s)"
        )
    print(
        f"synthfer at {args.size}x{args.size}, caller at {args.threads} threads: {best_wall:.0f} images/s wall clock "
        f"({best_wall / GOAL:.2f}x the {GOAL:.0f}/s goal); {best_cpu:.0f} images per CPU-second"
    )


if __name__ == "__main__":
    main()
