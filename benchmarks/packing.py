"""Packing trials on one GPU through Ray Tune: aggregate images/s at 1, 2 and 4 concurrent trials (GPU fractions
1, 0.5 and 0.25), with each trial's peak GPU memory.

Each trial is a Ray Tune trial with resources {cpu: --cpus-per-trial, gpu: fraction}, set up as ablate/sweep/trial.py
sets up a study's trials (``ablate.training.runtime.configure_threads(cpu)``: torch threads = its CPUs, pinned to cores
of its own unless --no-pin; a trial with gpu < 1 caps its memory with torch.cuda.set_per_process_memory_fraction).
It builds a real ``Trainer`` from the LION preset with the trainer's own settings (on a GPU: data moved there
once, augmentation there, one concatenated forward, bf16 autocast, channels-last; on a CPU: channels-last,
torch.compile, one forward per view), runs warm-up steps (compilation included),
waits for its sibling trials at a file barrier so that all of them are timed together, then runs ``step()`` for
--seconds, recording when each step ends. The aggregate throughput is taken over the window in which every
trial of the case was timing (from the last trial's start to the first trial's end): the steps each trial ended
inside it, times B*(1+mu) images, over its length. Peak memory is torch.cuda.max_memory_allocated of each
trial over its whole life (data set, model, warm-up and timed steps), which is what its memory cap must hold.

Goals: on a GPU, 4 trials at 0.25 give >= 2.5x the images/s of 1 trial at 1.0 with small_cnn, >= 1.3x with
resnet18, at side 112; on a CPU (--cpu), 2 trials at cpu=1 on 2 cores give >= 1.8x the images/s of 1.

    python benchmarks/packing.py                       # GPU: small_cnn and resnet18 at 112, 1/2/4 trials
    python benchmarks/packing.py --cpu --models small_cnn --size 48 --batch 32 --mu 3 --repeats 3

With --repeats, the cases run that many times in alternating order (1, 2 trials; then 2, 1; ...) and the median
aggregate is shown. The last lines are one summary per model and case, for scripts:
``packing small_cnn 48px 2 trials at cpu=1: together / one trial = N.NNx``.

Without a CUDA GPU and without --cpu it prints that it needs a GPU and exits with code 2.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

GOALS = {"small_cnn": 2.5, "resnet18": 1.3}  # aggregate images/s of 4 trials at 0.25 over 1 trial at 1.0
EXIT_NO_GPU = 2
STEPS_PER_CHUNK = 5


def packing_trial(
    config: dict[str, Any], *, data: dict[str, Any], run_config: dict[str, Any], spec: dict[str, Any]
) -> None:
    """One Ray trial: a Trainer, warm-up, a barrier with its siblings, then timed steps."""
    import copy

    from ray import tune

    from ablate.sweep.trial import from_shared
    from ablate.training.runtime import configure_threads
    from ablate.training.trainer import Trainer

    gpu = spec["gpu"]
    run_config = copy.deepcopy(run_config)
    run_config["trainer"]["device"] = "cuda" if gpu > 0 else "cpu"
    plan = configure_threads(spec["cpu"], pin=spec["pin"])  # what ablate/sweep/trial.py does first
    if 0 < gpu < 1:
        # as ablate/sweep/trial.py: a trial sharing a GPU keeps to its share
        torch.cuda.set_per_process_memory_fraction(gpu)
    trainer = Trainer(run_config, from_shared(data))
    cuda = trainer.device.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(trainer.device)

    trainer.run_steps(0, spec["warmup"])
    sync()

    barrier = Path(spec["barrier"])
    (barrier / f"ready-{config['index']}").touch()
    deadline = time.time() + spec["barrier_timeout"]
    while len(list(barrier.glob("ready-*"))) < spec["trials"] and time.time() < deadline:
        time.sleep(0.05)

    def ended(i: int, metrics: dict[str, Any]) -> None:
        sync()
        ends.append(time.time())

    # Steps run as an epoch runs them (run_steps: the next batch made in the background when the trial's threads
    # leave a core free), in chunks so that the clock is read between them.
    start = time.time()
    ends: list[float] = []
    i = spec["warmup"]
    while time.time() - start < spec["seconds"]:
        trainer.run_steps(i, i + STEPS_PER_CHUNK, on_step=ended)
        i += STEPS_PER_CHUNK
    if cuda:
        peak = torch.cuda.max_memory_allocated(trainer.device) / 2**20
        reserved = torch.cuda.max_memory_reserved(trainer.device) / 2**20
    else:
        peak = reserved = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS, MiB
    tune.report(
        {
            "start": start,
            "ends": ends,
            "peak_mib": peak,
            "reserved_mib": reserved,
            "pid": os.getpid(),
            "cores": list(plan.cores),
            "threads": plan.threads,
        }
    )


def run_case(
    args: argparse.Namespace, data_ref: Any, run_config: dict[str, Any], trials: int, gpu: float, storage: Path
) -> list[dict[str, Any]]:
    """``trials`` concurrent trials at ``gpu`` each; their reported metrics."""
    from ray import tune

    barrier = Path(tempfile.mkdtemp(prefix="barrier-", dir=storage))
    spec = {
        "gpu": gpu,
        "cpu": args.cpus_per_trial,
        "warmup": args.warmup,
        "seconds": args.seconds,
        "trials": trials,
        "barrier": str(barrier),
        "barrier_timeout": 600,
        "pin": not args.no_pin,
    }
    trainable = tune.with_resources(
        tune.with_parameters(packing_trial, data=data_ref, run_config=run_config, spec=spec),
        {"cpu": args.cpus_per_trial, "gpu": gpu},
    )
    tuner = tune.Tuner(
        trainable,
        param_space={"index": tune.grid_search(list(range(trials)))},
        tune_config=tune.TuneConfig(max_concurrent_trials=trials, reuse_actors=False),
        run_config=tune.RunConfig(
            name=f"{run_config['model']['name']}-{trials}",
            storage_path=str(storage),
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )
    grid = tuner.fit()
    errors = [str(r.error) for r in grid if r.error is not None]
    if errors:
        raise RuntimeError(f"{len(errors)} trial(s) failed; first error:\n{errors[0]}")
    return [r.metrics for r in grid]


def aggregate(metrics: list[dict[str, Any]], images_per_step: int) -> tuple[float, float, list[float]]:
    """(aggregate images/s in the common window, window seconds, each trial's own images/s over its run)."""
    window_start = max(m["start"] for m in metrics)
    window_end = min(m["ends"][-1] for m in metrics if m["ends"])
    own = [len(m["ends"]) * images_per_step / (m["ends"][-1] - m["start"]) for m in metrics]
    if window_end <= window_start:
        raise RuntimeError("the trials' timed periods did not overlap (did Ray run them one after the other?)")
    steps = sum(sum(window_start < t <= window_end for t in m["ends"]) for m in metrics)
    return steps * images_per_step / (window_end - window_start), window_end - window_start, own


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--cpu", action="store_true", help="no GPU: CPU trials at cpu=1 each, 1 and 2 at once (exercises the code path)"
    )
    p.add_argument("--models", nargs="+", default=["small_cnn", "resnet18"], choices=("small_cnn", "resnet18"))
    p.add_argument("--size", type=int, default=112, help="image side (default 112)")
    p.add_argument("--repeats", type=int, default=1, help="runs of every case, in alternating order (default 1)")
    p.add_argument("--no-pin", action="store_true", help="leave the trials unpinned (threads per trial only)")
    p.add_argument("--batch", type=int, default=32, help="labeled images per step, B (default 32)")
    p.add_argument("--mu", type=int, default=7, help="unlabeled images per labeled one (default 7)")
    p.add_argument(
        "--trials",
        type=int,
        nargs="+",
        default=None,
        help="concurrent trials per case (default: 1 2 4 on GPU, 1 2 with --cpu)",
    )
    p.add_argument("--seconds", type=float, default=30.0, help="timed seconds per trial (default 30)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps per trial first (default 5)")
    p.add_argument(
        "--cpus-per-trial", type=float, default=None, help="Ray CPUs per trial (default: 2 on GPU, 1 with --cpu)"
    )
    p.add_argument("--scale", type=float, default=0.2, help="synthfer's size relative to RAF-DB (default 0.2)")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="another override of the trainer's config"
    )
    args = p.parse_args(argv)

    if not args.cpu and not torch.cuda.is_available():
        print(
            "packing.py measures trials sharing one GPU and needs a CUDA GPU; this machine has none.\n"
            "Run it on a GPU machine, or pass --cpu to exercise the same code path with CPU trials (cpu=1 each).",
            file=sys.stderr,
        )
        return EXIT_NO_GPU
    trials = args.trials or ([1, 2] if args.cpu else [1, 2, 4])
    if args.cpus_per_trial is None:
        args.cpus_per_trial = 1.0 if args.cpu else 2.0

    import ray

    from ablate.config.run import load_config, preset_path
    from ablate.data import load_data
    from ablate.sweep.trial import to_shared

    images_per_step = args.batch * (1 + args.mu)
    with open("/proc/cpuinfo") as cpuinfo:
        cpu_model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    gpu_name = "none (CPU trials)" if args.cpu else torch.cuda.get_device_name(0)
    print(
        f"CPU {cpu_model} ({os.cpu_count()} cores), GPU {gpu_name}; side {args.size}, B {args.batch}, mu {args.mu} "
        f"({images_per_step} images/step), {args.warmup} warm-up steps, {args.seconds:g} s timed per trial, "
        f"{args.cpus_per_trial:g} CPU per trial; load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )

    base = [
        "trainer.epochs=1",
        "trainer.steps_per_epoch=1000000",
        f"trainer.batch_size={args.batch}",
        f"trainer.mu={args.mu}",
        f"data.options={{scale: {args.scale}, image_size: {args.size}}}",
    ]
    configs = {m: load_config(preset_path("lion"), base + [f"model.name={m}"] + args.set) for m in args.models}
    faces = load_data(configs[args.models[0]]["data"])

    if args.cpu:
        ray.init(
            num_cpus=int(max(trials) * args.cpus_per_trial), num_gpus=0, include_dashboard=False, log_to_driver=False
        )
    else:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        if ray.cluster_resources().get("GPU", 0) < 1:
            ray.shutdown()
            print("packing.py: torch sees a CUDA GPU but Ray does not; check CUDA_VISIBLE_DEVICES", file=sys.stderr)
            return EXIT_NO_GPU
    rows = []
    try:
        data_ref = ray.put(to_shared(faces))
        with tempfile.TemporaryDirectory(prefix="ablate-packing-") as storage:
            for model in args.models:
                runs: dict[int, list[tuple[float, float, list[float], list[float], list]]] = {n: [] for n in trials}
                for repeat in range(args.repeats):
                    for n in trials if repeat % 2 == 0 else trials[::-1]:
                        gpu = 0.0 if args.cpu else 1.0 / n
                        before = os.getloadavg()[0]
                        metrics = run_case(args, data_ref, configs[model], n, gpu, Path(storage))
                        total, window, own = aggregate(metrics, images_per_step)
                        peaks = [m["peak_mib"] for m in metrics]
                        cores = [m["cores"] for m in metrics]
                        runs[n].append((total, window, own, peaks, cores))
                        print(
                            f"{model} x{n} at gpu {gpu:g}: {total:.1f} images/s together over {window:.1f} s; "
                            f"per trial {', '.join(f'{r:.1f}' for r in own)} images/s; peak "
                            f"{', '.join(f'{x:.0f}' for x in peaks)} MiB; cores {cores}; load average "
                            f"{before:.2f} -> {os.getloadavg()[0]:.2f}",
                            flush=True,
                        )
                for n in trials:
                    gpu = 0.0 if args.cpu else 1.0 / n
                    median = statistics.median(r[0] for r in runs[n])
                    middle = min(runs[n], key=lambda r: abs(r[0] - median))
                    rows.append((model, n, gpu, median, middle[1], middle[2], middle[3]))
    finally:
        ray.shutdown()

    memory = "peak RSS MiB" if args.cpu else "peak GPU MiB"
    print()
    print(
        f"{'model':>10} {'trials':>6} {'gpu':>5} {'images/s':>9} {'vs 1':>6} {'window s':>9} "
        f"{memory + ' per trial':>24}"
    )
    single = {model: total for model, n, _, total, *_ in rows if n == 1}
    for model, n, gpu, total, window, _, peaks in rows:
        ratio = f"{total / single[model]:.2f}x" if model in single else "-"
        print(
            f"{model:>10} {n:>6} {gpu:>5.2f} {total:>9.1f} {ratio:>6} {window:>9.1f} "
            f"{' '.join(f'{x:.0f}' for x in peaks):>24}"
        )
    if not args.cpu:
        for model in args.models:
            four = next((total for m, n, _, total, *_ in rows if m == model and n == 4), None)
            if four is not None and model in single:
                ratio = four / single[model]
                verdict = "met" if ratio >= GOALS[model] else "NOT met"
                print(f"goal {model}: 4 trials at 0.25 >= {GOALS[model]}x of 1 trial at 1.0: {ratio:.2f}x, {verdict}")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for model, n, gpu, total, *_ in rows:
        if model in single and n > 1:
            share = f"cpu={args.cpus_per_trial:g}" if args.cpu else f"gpu={gpu:g}"
            print(
                f"packing {model} {args.size}px {n} trials at {share}: "
                f"together / one trial = {total / single[model]:.2f}x"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
