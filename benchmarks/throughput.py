"""Training steps/s and images/s: ablate's device-resident pipeline against the reference pipeline.

(a) ablate: a real ``Trainer`` from the LION preset (presets/lion.yaml: supervised, adaptive threshold,
    pseudo-label, negative learning with disambiguation, EMA teacher), with the trainer's own settings unless
    ``--set`` changes them: what a user gets. The uint8 data set is on the device, batches are drawn by index
    there, the weak and strong views are made there (ablate/augment.py). On a CPU the trainer's ``auto`` settings
    are channels-last, bf16 autocast where the CPU has native bf16 (fp32 elsewhere), one forward per view, the
    next step's batch made in a background thread when torch's threads leave a core free (``trainer.overlap``),
    and the weak views' no-grad forward in another when the process has twice torch's threads in cores
    (``trainer.background_forward``). The steps run through ``Trainer.run_steps``, as an epoch runs them.
(b) reference: benchmarks/reference_pipeline.py, built like Ada-CM / FixMatch-pytorch: JPEG bytes decoded with
    PIL in DataLoader worker processes, torchvision transforms per image, four separate fp32 forward passes
    (NCHW), and a simpler loss (CE + thresholded pseudo-label CE), so the comparison is if anything unfair to
    ablate.

Same model, data (synthfer, the same labeled/unlabeled split), batch sizes (B labeled, mu*B unlabeled) and
optimiser (Adam, lr 5e-4). ``--threads N`` sets torch's intra-op threads of the main process for both pipelines;
the reference's DataLoader workers (``--workers`` per loader, 1 torch thread each, torch's default) and ablate's
background thread come on top, as each design has them; ``--cores N`` pins all of it (the workers inherit the
mask) to N cores, which is what a trial packed with ``resources.cpu = N`` has. Both run in the same process, one
after the other, per setting (model, threads, side), ``--repeats`` times in alternating order; the median is
shown. Warm-up steps (worker start-up, ``torch.compile``'s compilation) are not timed; ablate's warm-up time is
printed, since it holds the compile time. images/s counts the images drawn per step, B + mu*B (the unlabeled
ones each give three views).

``--levers`` measures ablate alone, adding one lever at a time (the lever table of benchmarks/RESULTS.md): the
training step, then torch.compile on top (an option, off by default), with its compile time and the steps after
which it would pay off, and an evaluation with and without batch norm folded into the convolutions. Run it with
``TORCHINDUCTOR_CACHE_DIR`` set to an empty folder to see the compile time with a cold cache.

    python benchmarks/throughput.py --sizes 48 112 --threads 1 2 --repeats 3               # CPU, small_cnn
    python benchmarks/throughput.py --models resnet18 --sizes 112 --threads 1 2 --repeats 3
    python benchmarks/throughput.py --cores 1 --threads 1 --repeats 3   # one core for everything: a packed trial
    python benchmarks/throughput.py --levers --sizes 48 112 --threads 1 2 --repeats 3
    python benchmarks/throughput.py --device cuda --models resnet18 --sizes 112 224 --mu 7  # GPU
    python benchmarks/throughput.py --models small_cnn resnet18 efficientnet_lite0 --sizes 64 112 --threads 2 \
        --pretraining          # the pretrained start's backbone beside the others, and SimCLR's steps

``--pretraining`` also times SimCLR steps (``ablate.training.pretrain.simclr_step``, 2 strong views of
``--pretrain-batch`` faces) of each setting's backbone, and adds a summary line per setting:
``pretrain small_cnn 64px threads=2: pretraining/training step rate = N.NNx (R steps/s)``.

The last lines of the output are one summary per setting, for scripts:
``throughput small_cnn 48px threads=1: ablate/reference = N.NNx``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch

from ablate.augment import Augmenter
from ablate.config.run import load_config, preset_path
from ablate.data import FaceSet, load_data
from ablate.data.split import split_faces
from ablate.training.trainer import Trainer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_pipeline import ReferencePipeline

# --levers: ablate with each lever added to the ones above it (the overrides of each rung); the next to last rung
# is the trainer's defaults (each "auto" as this machine decides it: the two background threads only where torch's
# threads leave cores free), the last one an option.
OFF = ["trainer.channels_last=false", "trainer.overlap=false", "trainer.fuse_eval=false"]
FP32 = ["trainer.background_forward=false", "trainer.precision=fp32"]
ON = ["trainer.channels_last=true", "trainer.overlap=auto"]
LEVERS: list[tuple[str, list[str]]] = [
    ("plain (NCHW, fp32, no overlap)", [*OFF, *FP32]),
    ("+ channels-last", ["trainer.channels_last=true", "trainer.overlap=false", "trainer.fuse_eval=false", *FP32]),
    ("+ overlap (auto)", [*ON, *FP32]),
    ("+ background weak forward (auto)", [*ON, "trainer.precision=fp32"]),
    ("+ bf16 autocast (auto)", ON),
    ("+ torch.compile (an option)", [*ON, "trainer.compile=true"]),
]
DEFAULTS, COMPILED = LEVERS[-2][0], LEVERS[-1][0]
MODEL_NAMES = ("small_cnn", "resnet18", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_text() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


@dataclass
class Run:
    seconds: float  # for the timed steps
    warmup_seconds: float  # for the warm-up steps (compilation included)
    peak: str
    evaluation_seconds: float | None = None


def timed(run: Callable[[int, int], object], warmup: int, steps: int, device: torch.device) -> tuple[float, float]:
    """(seconds of ``steps`` steps, seconds of the ``warmup`` untimed ones before them); ``run(start, stop)``."""
    start = time.perf_counter()
    run(0, warmup)
    sync(device)
    middle = time.perf_counter()
    run(warmup, warmup + steps)
    sync(device)
    return time.perf_counter() - middle, middle - start


def ablate_config(args: argparse.Namespace, model: str, side: int, extra: list[str]) -> dict:
    overrides = [
        f"model.name={model}",
        f"data.options={{scale: {args.scale}, image_size: {side}}}",
        f"trainer.batch_size={args.batch}",
        f"trainer.mu={args.mu}",
        f"trainer.device={args.device}",
        "trainer.epochs=1",
        f"trainer.steps_per_epoch={args.warmup + args.steps}",
        *args.set,
        *extra,
    ]
    return load_config(preset_path("lion"), overrides)


def peak_memory(device: torch.device) -> str:
    return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB" if device.type == "cuda" else "-"


def reset_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def run_ablate(
    args: argparse.Namespace, config: dict, faces: FaceSet, device: torch.device, evaluate: bool = False
) -> Run:
    reset_memory(device)
    trainer = Trainer(config, faces)
    seconds, warmup = timed(trainer.run_steps, args.warmup, args.steps, device)
    evaluation = None
    if evaluate:  # once to warm up, then timed: the test, validation and unlabeled-probe forwards of an epoch
        trainer.evaluate()
        start = time.perf_counter()
        trainer.evaluate()
        sync(device)
        evaluation = time.perf_counter() - start
    return Run(seconds, warmup, peak_memory(device), evaluation)


def run_reference(args: argparse.Namespace, config: dict, faces: FaceSet, device: torch.device) -> Run:
    split = split_faces(faces, config["data"])  # the split the Trainer trains on
    pad = Augmenter(faces.images.shape[-1], **config["augment"]).pad[0]
    reset_memory(device)
    reference = ReferencePipeline(
        faces.images,
        faces.labels,
        split.labeled,
        split.unlabeled,
        model=config["model"],
        num_classes=faces.num_classes,
        batch_size=args.batch,
        mu=args.mu,
        workers=args.workers,
        device=device,
        total_steps=args.warmup + args.steps,
        pad=pad,
    )
    try:
        seconds, warmup = timed(lambda a, b: [reference.step() for _ in range(a, b)], args.warmup, args.steps, device)
    finally:
        reference.close()
    return Run(seconds, warmup, peak_memory(device))


def run_pretrain(args: argparse.Namespace, config: dict, faces: FaceSet, device: torch.device) -> Run:
    """SimCLR pretraining steps (ablate.training.pretrain's own step) of the setting's backbone on its faces."""
    from ablate.models import build_model
    from ablate.training.pretrain import resolve_pretrain_section, simclr_net, simclr_step

    settings = resolve_pretrain_section({"batch_size": args.pretrain_batch})
    reset_memory(device)
    torch.manual_seed(0)
    backbone = build_model({**config["model"], "weights": None}, faces.num_classes).backbone
    net, optimiser = simclr_net(backbone, settings, faces.images.shape[-2:], device)
    augmenter = Augmenter(faces.images.shape[-1], **config["augment"])
    images = faces.images.to(device)
    pool = split_faces(faces, config["data"]).unlabeled.to(device)
    generator = torch.Generator(device=device).manual_seed(0)
    net.train()

    def steps(a: int, b: int) -> None:
        for _ in range(a, b):
            simclr_step(net, optimiser, augmenter, images, pool, generator, settings)

    seconds, warmup = timed(steps, args.warmup, args.steps, device)
    return Run(seconds, warmup, peak_memory(device))


def alternate(runners: dict[str, Callable[[], Run]], repeats: int) -> dict[str, list[Run]]:
    """Each runner ``repeats`` times, the order reversed on every other repeat (so a change in the machine's load
    does not favour one of them)."""
    results: dict[str, list[Run]] = {name: [] for name in runners}
    names = list(runners)
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else names[::-1]:
            results[name].append(runners[name]())
    return results


def rate(args: argparse.Namespace, runs: list[Run]) -> float:
    """The median steps/s over the repeats."""
    return statistics.median(args.steps / r.seconds for r in runs)


def per_repeat(args: argparse.Namespace, runs: list[Run]) -> str:
    return " ".join(f"{args.steps / r.seconds:.3f}" for r in runs)


def describe_machine(device: torch.device) -> str:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = f", GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    return f"CPU {cpu} ({os.cpu_count()} cores){gpu}; torch {torch.__version__}"


def settings(args: argparse.Namespace):
    for model in args.models:
        for threads in args.threads:
            for side in args.sizes:
                yield model, threads, side


def setting_name(args: argparse.Namespace, model: str, side: int, threads: int) -> str:
    """How a setting is named in the output and the summary lines."""
    cores = f" cores={args.cores}" if args.cores is not None else ""
    return f"{model} {side}px threads={threads}{cores}"


def compare(args: argparse.Namespace, device: torch.device, data: Callable[[dict], FaceSet]) -> list[str]:
    """ablate against the reference at every setting; returns the summary lines."""
    per_step = args.batch * (1 + args.mu)
    summaries, table = [], []
    for model, threads, side in settings(args):
        torch.set_num_threads(threads)
        config = ablate_config(args, model, side, [])
        faces = data(config)
        before = load_text()
        runners = {
            "ablate": partial(run_ablate, args, config, faces, device),
            "reference": partial(run_reference, args, config, faces, device),
        }
        if args.pretraining:
            runners["pretrain"] = partial(run_pretrain, args, config, faces, device)
        results = alternate(runners, args.repeats)
        a, r = rate(args, results["ablate"]), rate(args, results["reference"])
        warm = statistics.median(run.warmup_seconds for run in results["ablate"])
        where = setting_name(args, model, side, threads)
        print(
            f"{where}: ablate {a:.3f} steps/s ({a * per_step:.1f} images/s, warm-up {warm:.1f} s for {args.warmup} "
            f"steps), reference {r:.3f} steps/s ({r * per_step:.1f} images/s): {a / r:.2f}x "
            f"[steps/s per repeat: ablate {per_repeat(args, results['ablate'])}; reference "
            f"{per_repeat(args, results['reference'])}] load {before} -> {load_text()}",
            flush=True,
        )
        table.append((model, side, threads, a * per_step, r * per_step, a / r, warm))
        summaries.append(f"throughput {where}: ablate/reference = {a / r:.2f}x")
        if args.pretraining:
            pre, views = rate(args, results["pretrain"]), 2 * args.pretrain_batch
            print(
                f"{where}: SimCLR pretraining {pre:.3f} steps/s ({pre * views:.1f} views/s of {args.pretrain_batch} "
                f"faces x 2) [per repeat: {per_repeat(args, results['pretrain'])}]",
                flush=True,
            )
            summaries.append(f"pretrain {where}: pretraining/training step rate = {pre / a:.2f}x ({pre:.3f} steps/s)")
    print()
    print(f"{'model':>18} {'side':>5} {'threads':>7} {'ablate img/s':>13} {'reference img/s':>16} {'ratio':>7}")
    for model, side, threads, a, r, ratio, _ in table:
        print(f"{model:>18} {side:>5} {threads:>7} {a:>13.1f} {r:>16.1f} {ratio:>6.2f}x")
    return summaries


def levers(args: argparse.Namespace, device: torch.device, data: Callable[[dict], FaceSet]) -> list[str]:
    """ablate alone, one lever added at a time; returns the summary lines."""
    per_step = args.batch * (1 + args.mu)
    summaries = []
    for model, threads, side in settings(args):
        torch.set_num_threads(threads)
        configs = {name: ablate_config(args, model, side, extra) for name, extra in LEVERS}
        faces = data(configs[LEVERS[0][0]])
        before = load_text()
        results = alternate(
            {name: partial(run_ablate, args, c, faces, device, evaluate=True) for name, c in configs.items()},
            args.repeats,
        )
        where = setting_name(args, model, side, threads)
        print(f"{where} (load {before} -> {load_text()}):")
        rates = {name: rate(args, runs) for name, runs in results.items()}
        first = rates[LEVERS[0][0]]
        previous = first
        for name, value in rates.items():
            warm = statistics.median(run.warmup_seconds for run in results[name])
            print(
                f"  {name:<32} {value:.3f} steps/s ({value * per_step:.1f} images/s) {value / previous:.2f}x over the "
                f"row above, {value / first:.2f}x over plain; warm-up {warm:.1f} s for {args.warmup} steps "
                f"[per repeat: {per_repeat(args, results[name])}]"
            )
            previous = value
        eager, compiled = DEFAULTS, COMPILED
        extra = statistics.median(r.warmup_seconds for r in results[compiled]) - statistics.median(
            r.warmup_seconds for r in results[eager]
        )
        saved = 1 / rates[eager] - 1 / rates[compiled]
        pays = f"after {extra / saved:.0f} steps" if saved > 0 else "never (no step is faster)"
        first_compile = results[compiled][0].warmup_seconds
        print(
            f"  torch.compile: first warm-up {first_compile:.1f} s (the cache as this process found it), later "
            f"{extra:.1f} s more than eager's warm-up; saves {saved * 1000:.0f} ms per step: pays off {pays}"
        )
        evaluations = {name: statistics.median(r.evaluation_seconds for r in runs) for name, runs in results.items()}
        plain_eval, folded = evaluations[LEVERS[0][0]], evaluations[LEVERS[2][0]]
        unfolded, default_eval = evaluations[LEVERS[1][0]], evaluations[DEFAULTS]
        print(
            "  evaluation (an epoch's test, validation and unlabeled-probe forwards): plain "
            f"{plain_eval:.2f} s, channels-last {unfolded:.2f} s, channels-last + batch norm folded {folded:.2f} s "
            f"({unfolded / folded:.2f}x from folding), the defaults {default_eval:.2f} s "
            f"({plain_eval / default_eval:.2f}x in all)"
        )
        default = rates[DEFAULTS]
        summaries.append(f"levers {where}: defaults / plain = {default / first:.2f}x")
    return summaries


def main(argv: list[str] | None = None) -> int:
    cuda = torch.cuda.is_available()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--models", nargs="+", choices=MODEL_NAMES, default=["small_cnn"])
    p.add_argument(
        "--pretraining",
        action="store_true",
        help="also time SimCLR pretraining steps (ablate pretrain's) of each setting's backbone",
    )
    p.add_argument("--pretrain-batch", type=int, default=128, help="faces per pretraining step (default 128)")
    p.add_argument("--sizes", type=int, nargs="+", default=[48, 112], help="image sides (default: 48 112)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch threads, each a setting (1 2)")
    p.add_argument("--batch", type=int, default=32, help="labeled images per step, B (default 32, the main job's)")
    p.add_argument("--mu", type=int, default=3, help="unlabeled images per labeled one (default 3, the main job's)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per run (default 20)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    p.add_argument("--repeats", type=int, default=3, help="runs of each pipeline, alternating; the median (3)")
    p.add_argument("--workers", type=int, default=None, help="reference DataLoader workers per loader (cuda 16, cpu 2)")
    p.add_argument("--scale", type=float, default=0.2, help="synthfer's size relative to RAF-DB (default 0.2)")
    p.add_argument(
        "--cores",
        type=int,
        default=None,
        help="pin the whole benchmark, the reference's DataLoader workers included, to this many cores: what a "
        "trial with resources.cpu = N gets when trials are packed (default: the process's whole mask)",
    )
    p.add_argument("--levers", action="store_true", help="ablate alone, adding one lever at a time")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an override of ablate's config")
    args = p.parse_args(argv)
    if args.device == "cuda" and not cuda:
        p.error("--device cuda: this machine has no CUDA GPU; use --device cpu")
    if args.workers is None:
        args.workers = 16 if args.device == "cuda" else 2
    device = torch.device(args.device)
    if args.cores is not None:
        mask = sorted(os.sched_getaffinity(0))
        if not 1 <= args.cores <= len(mask):
            p.error(f"--cores {args.cores}: allowed 1 to {len(mask)} (the cores this process may use)")
        os.sched_setaffinity(0, mask[: args.cores])  # child processes (DataLoader workers) inherit it

    print(describe_machine(device) + (f"; pinned to cores {sorted(os.sched_getaffinity(0))}" if args.cores else ""))
    print(
        f"B {args.batch}, mu {args.mu} ({args.batch * (1 + args.mu)} images/step), {args.warmup} warm-up + "
        f"{args.steps} timed steps, {args.repeats} repeat(s) in alternating order, reference workers {args.workers} "
        f"per loader, ablate overrides {args.set or 'none'}; load average {load_text()}",
        flush=True,
    )
    cache: dict[str, FaceSet] = {}

    def data(config: dict) -> FaceSet:
        key = repr(config["data"])
        if key not in cache:
            cache.clear()  # one data set at a time: the 112 px set is large
            cache[key] = load_data(config["data"])
        return cache[key]

    summaries = (levers if args.levers else compare)(args, device, data)
    print(f"load average at the end: {load_text()}")
    for line in summaries:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
