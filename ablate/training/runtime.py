"""Where and how a run computes: the device, mixed precision, memory format, compilation, the model copy that
evaluation runs, the seeding of every RNG, and the CPU threads of a process.

The CPU levers, each measured in benchmarks/RESULTS.md ("A fast CPU path"): channels-last (oneDNN's convolutions,
batch norm and max-pool run far faster on NHWC than on NCHW), bf16 autocast where the CPU computes bf16 natively
(the same mixed precision as on CUDA: fp32 weights, optimiser and losses), at evaluation a copy of the model with
each batch norm folded into the convolution before it, run under ``torch.inference_mode``, and the threads and
cores of a trial's process. ``torch.compile`` of the training forward is an option, off by default: on the CPU
measured it cost a minute of compilation (cold cache) and made no step faster.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import math
import os
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ablate.errors import ConfigError


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "trainer.device: 'cuda' was asked for but this machine has no CUDA GPU; allowed here: 'auto', 'cpu'"
        )
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def usable_cpus() -> int:
    """The cores this process may run on (its affinity mask), which on a shared node is less than os.cpu_count()."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def native_cpu_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (AVX-512 BF16 or AMX), where oneDNN's bf16 convolutions run at
    about twice fp32's rate; elsewhere bf16 is emulated and slower than fp32."""
    cpu = torch.cpu
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private: absent in some torch versions
    return any(getattr(cpu, name, lambda: False)() for name in checks)


def _auto(value: Any, when_auto: bool) -> bool:
    return value is True or (value == "auto" and when_auto)


@dataclass(frozen=True)
class Runtime:
    """The trainer section's device settings, with ``auto`` decided.

    On CUDA: bf16 autocast, channels-last and one concatenated forward. On a CPU: bf16 autocast where the CPU has
    native bf16 (fp32 elsewhere), channels-last, one forward per view (one big batch was measured 2x slower than
    four smaller ones), the next step's views made in a background thread when the process has a core that torch's
    threads leave free, and the weak views' forward in another when it has twice torch's threads in cores.
    Evaluation folds batch norm into the convolutions on both. ``compile`` only when asked for.
    """

    device: torch.device
    autocast: bool
    channels_last: bool
    concat: bool
    compile: bool = False
    fuse_eval: bool = False
    overlap: bool = False
    background_forward: bool = False
    _compiled: dict[int, tuple[nn.Module, nn.Module]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_trainer_section(cls, tc: dict[str, Any]) -> Runtime:
        device = pick_device(tc["device"])
        cuda = device.type == "cuda"
        return cls(
            device=device,
            autocast=tc["precision"] == "bf16" or (tc["precision"] == "auto" and (cuda or native_cpu_bf16())),
            channels_last=_auto(tc["channels_last"], True),
            concat=tc["forward"] == "concat" or (tc["forward"] == "auto" and cuda),
            compile=tc["compile"],
            fuse_eval=_auto(tc["fuse_eval"], True),
            overlap=_auto(tc["overlap"], not cuda and usable_cpus() > torch.get_num_threads()),
            background_forward=_auto(
                tc["background_forward"],
                not cuda and not tc["compile"] and usable_cpus() >= 2 * torch.get_num_threads(),
            ),
        )

    def prepare_model(self, model: nn.Module) -> nn.Module:
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def forward(self, model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, feature) in fp32, whatever precision the model ran in; compiled when ``compile`` is on."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        run = self._compiled_model(model) if self.compile else model
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            logits, feature = run(x)
        return logits.float(), feature.float()

    def infer(self, model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """An evaluation forward of a model from ``inference_model``: eager, under ``torch.inference_mode``."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            logits, feature = model(x)
        return logits.float(), feature.float()

    def inference_model(self, model: nn.Module) -> nn.Module:
        """The model that evaluation runs: ``model`` itself, or (``fuse_eval``) an eval-mode copy whose batch norms
        are folded into the convolutions before them (the same function up to rounding, one pass fewer per
        layer). The copy is made on each call, so it holds the weights of that moment."""
        if not self.fuse_eval:
            return model
        folded = fold_batch_norms(model)
        return folded.to(memory_format=torch.channels_last) if self.channels_last else folded

    def _compiled_model(self, model: nn.Module) -> nn.Module:
        """``torch.compile(model)``, made once per model. Compiled code is shared by every instance of the same
        architecture in a process (dynamo guards on the structure, not on the instance), and inductor's kernels
        are cached on disk across processes, so the trials of a study compile once per machine."""
        entry = self._compiled.get(id(model))
        if entry is None or entry[0] is not model:
            entry = (model, torch.compile(model, dynamic=False))
            self._compiled[id(model)] = entry
        return entry[1]


# ---- batch norm folded into convolutions, for evaluation ------------------------------------------------------


def fold_batch_norms(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` in which every batch norm that directly follows a convolution or a linear layer
    (and is read by nothing else) is folded into it.

    Each module that torch.fx can trace is folded as a graph (so the pattern is found in nn.Sequential stacks and in
    ResNet blocks alike); one that cannot (a forward that branches on a shape) is left as it is and its children are
    tried instead. ``model`` itself is not changed.
    """
    return _fold(copy.deepcopy(model).eval())


def _fold(module: nn.Module) -> nn.Module:
    from torch.fx.experimental.optimization import fuse
    from torch.fx.proxy import TraceError

    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules()):
        return module
    try:
        return fuse(module, inplace=True)
    except (TraceError, TypeError, NotImplementedError, RuntimeError):
        for name, child in module.named_children():
            setattr(module, name, _fold(child))
        return module


# ---- threads and cores of a process ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ThreadPlan:
    """What ``configure_threads`` did: torch's intra-op threads and the cores the process was pinned to (empty:
    not pinned)."""

    threads: int
    cores: tuple[int, ...]


# The core claims of this process (locked file descriptors) and its affinity mask before it was pinned.
_claims: list[int] = []
_mask_before: set[int] = set()


def claims_folder() -> Path:
    """Where the processes of one machine claim cores: one lock file per core (``$ABLATE_CORES_DIR``, by default a
    folder of the user's in the temporary directory)."""
    given = os.environ.get("ABLATE_CORES_DIR")
    return Path(given) if given else Path(tempfile.gettempdir()) / f"ablate-cores-{os.getuid()}"


def configure_threads(cpus: float, pin: bool = True) -> ThreadPlan:
    """Give this process ``cpus`` cores' worth of CPU threads, for a trial that holds ``resources.cpu = cpus``.

    torch's intra-op threads (and OMP_NUM_THREADS / MKL_NUM_THREADS, for any child process such as inductor's
    compile workers) are ``max(1, floor(cpus))``, and the inter-op pool (unused by a trial) is 1 thread, so the
    trials that Ray packs on a node never oversubscribe its cores. With ``pin``, and a whole number of cores, the
    process also claims that many free cores of its affinity mask (an exclusive lock file per core, which the
    kernel releases when the process ends) and binds all its threads to them, so packed trials do not migrate
    between cores; when too few cores are free it stays unpinned. Safe to call again (a Ray actor that runs one
    trial after another): the previous claim is released first.
    """
    if not isinstance(cpus, (int, float)) or isinstance(cpus, bool) or not math.isfinite(cpus) or cpus <= 0:
        raise ConfigError(f"resources.cpu: {cpus!r}; allowed: a number > 0 (cores per trial)")
    threads = max(1, math.floor(cpus))
    torch.set_num_threads(threads)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    # Possible only before the first inter-op work of the process; later it stays as it was.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    release_cores()
    cores: tuple[int, ...] = ()
    if pin and float(cpus).is_integer() and hasattr(os, "sched_setaffinity"):
        cores = _claim_cores(threads)
        if cores:
            _mask_before.update(os.sched_getaffinity(0))
            _bind_process(cores)
    return ThreadPlan(threads, cores)


def release_cores() -> None:
    """Give back this process's core claims and its affinity mask from before it was pinned."""
    if _mask_before:
        _bind_process(tuple(sorted(_mask_before)))
        _mask_before.clear()
    while _claims:
        os.close(_claims.pop())


def _claim_cores(n: int) -> tuple[int, ...]:
    """``n`` cores of the process's mask that no other process holds, locked; () when fewer are free."""
    folder = claims_folder()
    folder.mkdir(parents=True, exist_ok=True)
    taken: list[tuple[int, int]] = []
    for core in sorted(os.sched_getaffinity(0)):
        fd = os.open(folder / f"core{core}.lock", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        taken.append((core, fd))
        if len(taken) == n:
            break
    if len(taken) < n:  # not enough free cores: pinning would pile trials onto the same ones
        for _, fd in taken:
            os.close(fd)
        return ()
    _claims.extend(fd for _, fd in taken)
    return tuple(core for core, _ in taken)


def _bind_process(cores: tuple[int, ...]) -> None:
    """Every thread of the process on ``cores``; threads started later inherit it from their creator."""
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # the thread ended meanwhile
            os.sched_setaffinity(int(tid), cores)
