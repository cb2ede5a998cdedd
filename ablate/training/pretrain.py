"""Self-supervised pretraining of a backbone on the study's own training faces, without their labels, cached.

``model.weights: pretrain`` starts a trial from a backbone pretrained by the method ``model.pretrain.method``
names on the training pool of the config's data and split: the labeled and unlabeled faces together (labels
unread), never a validation or test face. ``python -m ablate.pretrain --config FILE [--set k=v]`` builds the
same entry ahead of a study; a trial whose entry exists loads it.

The method is SimCLR (Chen et al. 2020): two strong views of each face (ablate/augment's device-resident
RandAugment, flip, crop and cutout, ``augment.*`` as the trials have them), backbone, pooled feature, a
projection MLP, and the NT-Xent loss between the 2N projections. Chosen because it needs nothing the trials do
not already have (the views are the strong views, made on the device with no host round trip) and no second
network (MoCo's queue and momentum encoder, BYOL's target) or decoder (masked reconstruction, which also fits a
convolutional backbone poorly); its known weakness, wanting big batches, is shared by every contrastive method.

An entry is a folder ``$ABLATE_CACHE/pretrain/<model>-<key>`` (the data cache's root, ablate/data/cache.py),
its key a hash of the method's settings, the backbone, the strong views' augmentation and the pool's pixels (so
the data, its options and the split are all in it): every trial of a study, and later studies, with the same key
share it. ``backbone.pt`` (the backbone's state dict) marks it done; ``checkpoint.pt`` after each epoch makes a killed
pretraining resume at its last epoch; ``loss.csv`` and ``loss.png`` hold the loss of every step; ``settings.json``
what made it. A lock file lets one process build while the others wait. An entry that cannot be read is built
again, with one line saying so.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import fcntl
import hashlib
import json
import logging
import math
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ablate.augment import Augmenter
from ablate.config.params import Param, resolve_section
from ablate.data import FaceSet
from ablate.data.cache import cache_root
from ablate.data.split import split_faces
from ablate.errors import ConfigError
from ablate.io import atomic_torch_save, atomic_write_text

log = logging.getLogger("ablate.pretrain")

PRETRAIN = "pretrain"  # the model.weights value that asks for it
METHODS = ("simclr",)
# Bump when what an entry holds or how it is made changes, so that old entries are no longer matched.
PRETRAIN_VERSION = 1

PRETRAIN_PARAMS = {
    "method": Param("simclr", "the self-supervised method: simclr (two strong views, NT-Xent)", choices=METHODS),
    "epochs": Param(10, "pretraining epochs", low=1),
    "steps_per_epoch": Param(100, "optimiser steps per epoch", low=1),
    "batch_size": Param(128, "faces per step (2x as many views)", low=2),
    "lr": Param(1e-3, "Adam's learning rate (cosine decay over all steps)", low=0.0, open_low=True),
    "weight_decay": Param(1e-6, "Adam's weight decay (SimCLR: 1e-6)", low=0.0),
    "temperature": Param(0.5, "NT-Xent's temperature (SimCLR's CIFAR-10 setting: 0.5)", low=0.0, open_low=True),
    "projection_dim": Param(128, "the projection's output size (SimCLR: 128)", low=1),
    "hidden_dim": Param(512, "the projection MLP's hidden size", low=1),
    "seed": Param(0, "the pretraining seed: init, batches, views (trials of any seed share the entry)"),
    "device": Param("auto", "auto (CUDA when there is one), cpu or cuda", choices=("auto", "cpu", "cuda")),
}


def resolve_pretrain_section(given: Mapping[str, Any] | None) -> dict[str, Any]:
    return resolve_section("model.pretrain", given, PRETRAIN_PARAMS)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss: for each of the 2N projections, cross-entropy of its cosine similarities / temperature to
    the 2N - 1 others, the positive being the other view of its face; the mean over the 2N."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    n = len(z1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    positive = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, positive)


def training_pool(faces: FaceSet, data_section: Mapping[str, Any]) -> torch.Tensor:
    """The faces pretraining may see: the split's labeled and unlabeled ones (the training set less the
    validation hold-out), sorted; never a validation or test face."""
    split = split_faces(faces, data_section)
    # unique: with data.labeled_in_unlabeled the unlabeled set holds the labeled faces too, and a method's pool
    # layout must not change its start
    return torch.cat([split.labeled, split.unlabeled]).unique()


class Projector(nn.Module):
    """SimCLR's projection g: Linear, batch norm, ReLU, Linear (the loss reads its output; trials never)."""

    def __init__(self, features: int, hidden: int, out: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, out))

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.net(torch.flatten(F.adaptive_avg_pool2d(fmap, 1), 1))


def _digest(*parts: Any) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        if isinstance(part, torch.Tensor):
            hasher.update(part.contiguous().numpy().tobytes())
        else:
            hasher.update(json.dumps(part, sort_keys=True, default=str).encode())
        hasher.update(b"\0")
    return hasher.hexdigest()[:20]


def entry_folder(config: Mapping[str, Any], faces: FaceSet, pool: torch.Tensor) -> Path:
    """``$ABLATE_CACHE/pretrain/<model>-<key>``; the key hashes what changes the result (not the trial's seed)."""
    model = config["model"]
    settings = {k: v for k, v in model["pretrain"].items() if k != "device"}
    key = _digest(PRETRAIN_VERSION, model["name"], settings, strong_view_settings(config), pool, faces.images[pool])
    return cache_root() / "pretrain" / f"{model['name']}-{key}"


def strong_view_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The augment settings SimCLR's strong views read: all but ``weak_views``, a method's setting (FixMatch's 1,
    LION's 2), so that every method of a study starts from the one entry its supervised-only baseline loads."""
    return {k: v for k, v in config["augment"].items() if k != "weak_views"}


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One builder per entry: the others wait here (the OS drops the lock of a killed holder)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _readable(path: Path, expected: set[str] | None = None) -> dict | None:
    """The saved dict at ``path``, or None (with one line) when it is absent, damaged or of other keys."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or (expected is not None and set(state) != expected):
            raise ValueError("not the state dict of this backbone")
        return state
    except Exception as error:
        reason = (str(error).strip().splitlines() or [""])[0]  # torch's messages run to many lines
        print(f"pretrain: the cache entry {path} is unreadable ({type(error).__name__}: {reason}); building it again",
              file=sys.stderr)  # fmt: skip
        path.unlink(missing_ok=True)
        return None


def pretrained_backbone(config: Mapping[str, Any], faces: FaceSet) -> Path:
    """The ``backbone.pt`` of the config's entry: read when it is there, else pretrained (resuming a killed run).
    The global generators are left as they were, so that a trial's own init is the same on a hit and a miss."""
    with torch.random.fork_rng(devices=range(torch.cuda.device_count()) if torch.cuda.is_initialized() else []):
        return _pretrained_backbone(config, faces)


def _pretrained_backbone(config: Mapping[str, Any], faces: FaceSet) -> Path:
    from ablate.models import build_model

    pool = training_pool(faces, config["data"])
    folder = entry_folder(config, faces, pool)
    final = folder / "backbone.pt"
    model = build_model({**config["model"], "weights": None}, faces.num_classes)
    expected = set(model.backbone.state_dict())
    if _readable(final, expected) is not None:
        return final
    with _locked(folder):
        if _readable(final, expected) is None:  # another process may have built it while this one waited
            _pretrain(config, faces, pool, model, folder)
    return final


def _pretrain(config: Mapping[str, Any], faces: FaceSet, pool: torch.Tensor, model: nn.Module, folder: Path) -> None:
    from ablate.training.runtime import pick_device

    s = config["model"]["pretrain"]
    device = pick_device(s["device"])
    torch.manual_seed(s["seed"])
    net, optimiser = simclr_net(model.backbone, s, faces.images.shape[-2:], device)
    total = s["epochs"] * s["steps_per_epoch"]
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=total)
    generator = torch.Generator(device=device).manual_seed(s["seed"])
    augmenter = Augmenter(faces.images.shape[-1], **config["augment"])
    images, pool = faces.images.to(device), pool.to(device)
    atomic_write_text(folder / "settings.json", json.dumps(_settings(config, faces, pool), indent=2) + "\n")

    epoch, losses = 0, []
    checkpoint = _readable(folder / "checkpoint.pt")
    if checkpoint is not None:
        net.load_state_dict(checkpoint["net"])
        optimiser.load_state_dict(checkpoint["optimiser"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        generator.set_state(checkpoint["generator"])
        epoch, losses = checkpoint["epoch"], checkpoint["losses"]
        print(f"pretrain: resuming {folder} at epoch {epoch + 1}/{s['epochs']}", file=sys.stderr)
    name = f"pretrain {s['method']} {config['model']['name']}"
    net.train()
    while epoch < s["epochs"]:
        start = time.perf_counter()
        epoch_losses = torch.zeros(s["steps_per_epoch"], device=device)
        for step in range(s["steps_per_epoch"]):
            epoch_losses[step] = simclr_step(net, optimiser, augmenter, images, pool, generator, s)
            scheduler.step()
        values = epoch_losses.tolist()  # one read per epoch
        if not all(math.isfinite(v) for v in values):
            raise ConfigError(f"{name}: the loss diverged in epoch {epoch + 1}; lower model.pretrain.lr")
        losses.extend(values)
        epoch += 1
        state = {"net": net.state_dict(), "optimiser": optimiser.state_dict(), "scheduler": scheduler.state_dict(),
                 "generator": generator.get_state(), "epoch": epoch, "losses": losses}  # fmt: skip
        atomic_torch_save(folder / "checkpoint.pt", state)
        _write_curve(folder, losses, s["steps_per_epoch"])
        print(f"{name}: epoch {epoch}/{s['epochs']} loss {sum(values) / len(values):.4f} "
              f"({time.perf_counter() - start:.1f} s)", file=sys.stderr, flush=True)  # fmt: skip
    atomic_torch_save(folder / "backbone.pt", {k: v.cpu() for k, v in net["backbone"].state_dict().items()})
    (folder / "checkpoint.pt").unlink(missing_ok=True)


def simclr_net(
    backbone: nn.Module, settings: Mapping[str, Any], image_size: Sequence[int], device: torch.device
) -> tuple[nn.ModuleDict, torch.optim.Optimizer]:
    """The backbone with SimCLR's projection MLP on its pooled feature (channels-last, on ``device``), and Adam."""
    with torch.no_grad():
        features = backbone(torch.zeros(2, 3, *image_size)).shape[1]
    projector = Projector(features, settings["hidden_dim"], settings["projection_dim"])
    net = nn.ModuleDict({"backbone": backbone, "projector": projector}).to(device, memory_format=torch.channels_last)
    return net, torch.optim.Adam(net.parameters(), lr=settings["lr"], weight_decay=settings["weight_decay"])


def simclr_step(
    net: nn.ModuleDict,
    optimiser: torch.optim.Optimizer,
    augmenter: Augmenter,
    images: torch.Tensor,
    pool: torch.Tensor,
    generator: torch.Generator,
    settings: Mapping[str, Any],
) -> torch.Tensor:
    """One SimCLR step on ``batch_size`` faces drawn from ``images[pool]``: two strong views each, backbone,
    projection, NT-Xent, an optimiser step; the loss, detached (not read, so the step never waits on the device)."""
    draw = torch.randint(len(pool), (settings["batch_size"],), device=pool.device, generator=generator)
    raw = images[pool[draw]]
    v1, v2 = augmenter.strong(raw, generator=generator), augmenter.strong(raw, generator=generator)
    v = torch.cat([v1, v2]).contiguous(memory_format=torch.channels_last)
    z = net["projector"](net["backbone"](v))
    loss = nt_xent(*z.split(len(raw)), settings["temperature"])
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    return loss.detach()


def _settings(config: Mapping[str, Any], faces: FaceSet, pool: torch.Tensor) -> dict[str, Any]:
    return {"version": PRETRAIN_VERSION, "model": config["model"]["name"], "pretrain": config["model"]["pretrain"],
            "data": config["data"], "augment": strong_view_settings(config), "pool_size": len(pool),
            "image_size": list(faces.images.shape[-2:])}  # fmt: skip


def _write_curve(folder: Path, losses: list[float], steps_per_epoch: int) -> None:
    rows = ["step,epoch,loss"] + [f"{i + 1},{i // steps_per_epoch + 1},{v:.6f}" for i, v in enumerate(losses)]
    atomic_write_text(folder / "loss.csv", "\n".join(rows) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the analysis extra draws it; the csv holds the same numbers
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(range(1, len(losses) + 1), losses, lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("NT-Xent loss")
    ax.set_title(folder.name)
    fig.tight_layout()
    with contextlib.suppress(OSError):
        fig.savefig(folder / "loss.png", dpi=100)
    plt.close(fig)


def read_losses(folder: Path) -> list[float]:
    with open(folder / "loss.csv") as f:
        return [float(row["loss"]) for row in csv.DictReader(f)]


def run(args: argparse.Namespace) -> Path:
    from ablate.config.run import load_config, preset_path
    from ablate.data import load_data

    config = load_config(preset_path(args.config), [*args.set, f"model.weights={PRETRAIN}"])
    path = pretrained_backbone(config, load_data(config["data"]))
    print(path)
    return path


def main(argv: list[str] | None = None) -> int:
    from ablate.cli import guarded

    p = argparse.ArgumentParser(prog="python -m ablate.pretrain", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="a preset name (lion) or a config file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    return guarded(run, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
