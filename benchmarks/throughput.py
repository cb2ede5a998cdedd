"""Training steps/s and images/s: ablate's device-resident pipeline against the reference pipeline.

(a) ablate: a real ``Trainer`` from the LION preset (presets/lion.yaml: supervised, adaptive threshold,
    pseudo-label, negative learning with disambiguation, EMA teacher). The uint8 data set is on the device,
    batches are drawn by index there, the weak and strong views are made there (ablate/augment.py), and one
    forward pass runs over the concatenated views; bf16 autocast and channels-last on CUDA (the trainer's
    ``auto`` settings). ``--compile`` wraps the student model with ``torch.compile``.
(b) reference: benchmarks/reference_pipeline.py, built like Ada-CM / FixMatch-pytorch: JPEG bytes decoded with
    PIL in DataLoader workers, torchvision transforms per image, four separate fp32 forward passes, and a
    simpler loss (CE + thresholded pseudo-label CE), so the comparison is if anything unfair to ablate.

Same model, data (synthfer, same labeled/unlabeled split), batch sizes (B labeled, mu*B unlabeled) and optimiser
(Adam, lr 5e-4). Both run in the same process, one after the other, per image side (with --repeats, in
alternating order, and the median is shown); the warm-up steps (which include worker start-up and
torch.compile's compilation) are not timed. images/s counts the images drawn per step, B + mu*B (the
unlabeled ones each give three views).

    python benchmarks/throughput.py                                   # GPU: resnet18, sides 112 and 224
    python benchmarks/throughput.py --model small_cnn --sizes 112 --batch 16 --mu 3 --steps 5 --device cpu
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import torch

from ablate.augment import Augmenter
from ablate.data import load_data
from ablate.run_config import load_config, preset_path
from ablate.trainer import Trainer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_pipeline import ReferencePipeline


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_steps(step: Callable[[int], object], warmup: int, steps: int, device: torch.device) -> float:
    """Seconds taken by ``steps`` calls of ``step`` after ``warmup`` untimed ones."""
    for i in range(warmup):
        step(i)
    sync(device)
    start = time.perf_counter()
    for i in range(steps):
        step(warmup + i)
    sync(device)
    return time.perf_counter() - start


def ablate_config(args: argparse.Namespace, side: int) -> dict:
    overrides = [
        f"model.name={args.model}",
        f"data.options={{scale: {args.scale}, image_size: {side}}}",
        f"trainer.batch_size={args.batch}",
        f"trainer.mu={args.mu}",
        f"trainer.device={args.device}",
        "trainer.forward=concat",
        "trainer.epochs=1",
        f"trainer.steps_per_epoch={args.warmup + args.steps}",
        *args.set,
    ]
    return load_config(preset_path("lion"), overrides)


def peak_memory(device: torch.device) -> str:
    return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB" if device.type == "cuda" else "-"


def reset_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def run_ablate(args: argparse.Namespace, config: dict, faces, device: torch.device) -> tuple[float, str]:
    """(seconds for args.steps steps, peak GPU memory) of ablate's Trainer."""
    reset_memory(device)
    trainer = Trainer(config, faces)
    if args.compile:
        trainer.model = torch.compile(trainer.model)  # the optimiser and the EMA teacher share its parameters
    seconds = timed_steps(trainer.step, args.warmup, args.steps, device)
    return seconds, peak_memory(device)


def run_reference(args: argparse.Namespace, config: dict, faces, device: torch.device) -> tuple[float, str]:
    """(seconds for args.steps steps, peak GPU memory) of the reference pipeline, on the Trainer's split."""
    probe = Trainer({**config, "trainer": {**config["trainer"], "device": "cpu"}}, faces)  # the same split, on the host
    labeled, unlabeled = probe.labeled, probe.unlabeled
    pad = Augmenter(faces.images.shape[-1], **config["augment"]).pad[0]
    del probe
    reset_memory(device)
    reference = ReferencePipeline(
        faces.images,
        faces.labels,
        labeled,
        unlabeled,
        model=args.model,
        num_classes=faces.num_classes,
        batch_size=args.batch,
        mu=args.mu,
        workers=args.workers,
        device=device,
        total_steps=args.warmup + args.steps,
        pad=pad,
    )
    try:
        seconds = timed_steps(lambda _: reference.step(), args.warmup, args.steps, device)
    finally:
        reference.close()
    return seconds, peak_memory(device)


def bench_side(args: argparse.Namespace, side: int, device: torch.device) -> dict[str, list[tuple[float, str]]]:
    """{pipeline: [(seconds for args.steps steps, peak GPU memory) per repeat]} at one image side.

    The two pipelines run one after the other, each built afresh, in alternating order over the repeats (so a
    change in the machine's load does not favour one of them).
    """
    config = ablate_config(args, side)
    faces = load_data(config["data"])
    runners = {"ablate": run_ablate, "reference": run_reference}
    results: dict[str, list[tuple[float, str]]] = {"ablate": [], "reference": []}
    for repeat in range(args.repeats):
        order = ["ablate", "reference"] if repeat % 2 == 0 else ["reference", "ablate"]
        for name in order:
            results[name].append(runners[name](args, config, faces, device))
    return results


def describe_machine(device: torch.device) -> str:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = f", GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    return f"CPU {cpu} ({os.cpu_count()} cores, torch uses {torch.get_num_threads()} threads){gpu}"


def main(argv: list[str] | None = None) -> int:
    cuda = torch.cuda.is_available()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if cuda else "cpu")
    p.add_argument("--model", choices=("resnet18", "small_cnn"), default="resnet18")
    p.add_argument("--sizes", type=int, nargs="+", default=[112, 224], help="image sides (default: 112 224)")
    p.add_argument("--batch", type=int, default=32, help="labeled images per step, B (default 32, the presets')")
    p.add_argument("--mu", type=int, default=7, help="unlabeled images per labeled one (default 7)")
    p.add_argument("--steps", type=int, default=50, help="timed steps per pipeline (default 50)")
    p.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="runs of each pipeline, in alternating order; the median is shown (default 1)",
    )
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 5; 10 with --compile)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="DataLoader workers per loader of the reference (default: 16 on cuda, 2 on cpu)",
    )
    p.add_argument("--compile", action="store_true", help="wrap ablate's model with torch.compile")
    p.add_argument(
        "--scale", type=float, default=0.1, help="synthfer's size relative to RAF-DB (default 0.1: 1,532 images)"
    )
    p.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads of the main process (default: torch's choice)"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another override of ablate's config, e.g. trainer.forward=separate",
    )
    args = p.parse_args(argv)
    if args.device == "cuda" and not cuda:
        p.error("--device cuda: this machine has no CUDA GPU; use --device cpu")
    if args.workers is None:
        args.workers = 16 if args.device == "cuda" else 2
    if args.warmup is None:
        args.warmup = 10 if args.compile else 5
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    per_step = args.batch * (1 + args.mu)
    print(describe_machine(device))
    print(
        f"model {args.model}, B {args.batch}, mu {args.mu} ({per_step} images/step), {args.warmup} warm-up + {args.steps} timed steps, "
        f"{args.repeats} repeat(s), reference workers {args.workers} per loader, compile {args.compile}, "
        f"ablate overrides {args.set or 'none'}, load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    rows = []
    for side in args.sizes:
        results = bench_side(args, side, device)
        rates = {}
        for name, runs in results.items():
            steps_s = statistics.median(args.steps / seconds for seconds, _ in runs)
            rates[name] = (steps_s, steps_s * per_step, runs[-1][1], [args.steps / seconds for seconds, _ in runs])
        rows.append((side, rates))
        a, r = rates["ablate"], rates["reference"]
        print(
            f"side {side}: ablate {a[0]:.3f} steps/s, {a[1]:.1f} images/s (peak {a[2]}); "
            f"reference {r[0]:.3f} steps/s, {r[1]:.1f} images/s (peak {r[2]}); ratio {a[1] / r[1]:.2f}x "
            f"[steps/s per repeat: ablate {' '.join(f'{x:.3f}' for x in a[3])}, reference {' '.join(f'{x:.3f}' for x in r[3])}]",
            flush=True,
        )

    print()
    print(f"{'side':>5} {'pipeline':>10} {'steps/s':>9} {'images/s':>10} {'peak mem':>10}")
    for side, rates in rows:
        for name, (steps_s, images_s, mem, _) in rates.items():
            print(f"{side:>5} {name:>10} {steps_s:>9.3f} {images_s:>10.1f} {mem:>10}")
        print(f"{side:>5} {'ratio':>10} {rates['ablate'][0] / rates['reference'][0]:>8.2f}x (ablate / reference)")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
