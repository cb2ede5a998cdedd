"""The training loop: one loop whose loss is the weighted sum of the components a config enables.

Per step: a labeled batch of B images and an unlabeled batch of mu*B, drawn by index from the uint8 images
kept on the device; a weak view of the labeled images, two weak views and a strong view of the unlabeled ones,
augmented there; one forward pass over the concatenated views (or four, as the reference code does); then each
enabled component, in ``ORDER``, adds its term. Every epoch ends with the components' epoch hooks, an
evaluation (with the EMA teacher when ``ema`` is on) and a checkpointable state.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ablate.augment import Augmenter
from ablate.components import COMPONENTS, ORDER, Context, StepBatch
from ablate.components.negative import negative_correctness
from ablate.components.threshold import threshold_mask
from ablate.data import FaceSet
from ablate.data.split import make_split
from ablate.metrics import classification_metrics, selection_metrics
from ablate.models import build_model
from ablate.params import Param

TRAINER_PARAMS = {
    "seed": Param(0, "the training seed: model init, batches, augmentation (the split has its own)"),
    "epochs": Param(10, "epochs to train", low=1),
    "steps_per_epoch": Param(100, "optimiser steps per epoch", low=1),
    "batch_size": Param(32, "labeled images per step", low=1),
    "mu": Param(7, "unlabeled images per labeled image in a step", low=1),
    "optimizer": Param(
        "adam", "adam (Ada-CM: lr 5e-4, no schedule) or sgd (momentum, cosine decay)", choices=("adam", "sgd")
    ),
    "lr": Param(5e-4, "learning rate", low=0.0, open_low=True),
    "momentum": Param(0.9, "sgd momentum", low=0.0, high=1.0, open_high=True),
    "nesterov": Param(True, "sgd: Nesterov momentum"),
    "weight_decay": Param(0.0, "weight decay", low=0.0),
    "schedule": Param("none", "learning-rate schedule over all steps", choices=("none", "cosine")),
    "forward": Param(
        "auto",
        "one forward over the concatenated views, or one per view (auto: concat on CUDA; "
        "separate on CPU, where one big batch measured 2x slower)",
        choices=("auto", "concat", "separate"),
    ),
    "device": Param("auto", "auto (CUDA when there is one), cpu or cuda", choices=("auto", "cpu", "cuda")),
    "precision": Param(
        "auto", "auto (bf16 autocast on CUDA, fp32 on CPU), fp32 or bf16", choices=("auto", "fp32", "bf16")
    ),
    "channels_last": Param("auto", "auto (on CUDA), true or false", choices=("auto", True, False), kind=object),
    "eval_batch_size": Param(512, "images per evaluation forward", low=1),
    "eval_unlabeled": Param(
        2000,
        "unlabeled images scored each epoch (mask rate, pseudo-label accuracy); null: all",
        low=0,
        nullable=True,
        kind=int,
    ),
    "max_loss": Param(
        1000.0,
        "a step whose loss is not finite or exceeds this ends the run as diverged (null: only non-finite losses)",
        low=0.0,
        open_low=True,
        nullable=True,
        kind=float,
    ),
}

MODEL_PARAMS = {
    "name": Param("small_cnn", "backbone: small_cnn (fast on CPU) or resnet18"),
    "dropout": Param(0.0, "dropout before the classifier", low=0.0, high=1.0, open_high=True),
    "weights": Param(None, "a backbone state dict to start from (e.g. MS-Celeb-1M ResNet-18)", kind=str),
}


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from ablate.errors import ConfigError

        raise ConfigError(
            "trainer.device: 'cuda' was asked for but this machine has no CUDA GPU; allowed here: 'auto', 'cpu'"
        )
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Diverged(RuntimeError):
    """The loss of a step was not finite (or above ``trainer.max_loss``): the run is not a result."""

    def __init__(self, step: int, epoch: int, loss: float, bound: float | None):
        self.step, self.epoch, self.loss = step, epoch, loss
        limit = "finite" if bound is None else f"finite and at most trainer.max_loss = {bound:g}"
        super().__init__(
            f"diverged: the loss was {loss:g} at step {step} (epoch {epoch}); it must stay {limit}. "
            "Lower trainer.lr or a loss weight"
        )


@dataclass
class Views:
    """The forward outputs a step needs."""

    logits_l: torch.Tensor
    logits_w1: torch.Tensor
    logits_w2: torch.Tensor
    logits_s: torch.Tensor
    feat_w1: torch.Tensor
    feat_w2: torch.Tensor


class Trainer:
    """Trains one config on one FaceSet; ``fit`` runs the remaining epochs and reports each one."""

    def __init__(self, config: dict[str, Any], faces: FaceSet):
        self.config = config
        tc = self.tc = config["trainer"]
        self.device = pick_device(tc["device"])
        cuda = self.device.type == "cuda"
        self.autocast = tc["precision"] == "bf16" or (tc["precision"] == "auto" and cuda)
        self.channels_last = tc["channels_last"] is True or (tc["channels_last"] == "auto" and cuda)
        self.concat = tc["forward"] == "concat" or (tc["forward"] == "auto" and cuda)
        self.class_names = faces.class_names
        seed_everything(tc["seed"])

        data = config["data"]
        train = faces.indices("train")
        split = make_split(
            faces.labels[train],
            faces.class_names,
            labels=data["labels"],
            labels_per_class=data["labels_per_class"],
            label_fraction=data["label_fraction"],
            split_seed=data["split_seed"],
            val_per_class=data["val_per_class"],
        )
        # The whole data set moves to the device once; batches are drawn by index there.
        self.images = faces.images.to(self.device)
        self.labels = faces.labels.to(self.device)
        self.soft = None if faces.soft_labels is None else faces.soft_labels.to(self.device)
        self.labeled = train[split.labeled].to(self.device)
        self.unlabeled = train[split.unlabeled].to(self.device)
        self.validation = train[split.validation].to(self.device)
        self.test = faces.indices("test").to(self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(tc["seed"])
        eval_generator = torch.Generator().manual_seed(tc["seed"] + 1)
        n_eval = len(self.unlabeled) if tc["eval_unlabeled"] is None else min(tc["eval_unlabeled"], len(self.unlabeled))
        self.unlabeled_probe = (
            torch.randperm(len(self.unlabeled), generator=eval_generator)[:n_eval].sort().values.to(self.device)
        )

        self.augmenter = Augmenter(faces.images.shape[-1], **config["augment"])
        mc = config["model"]
        self.model = build_model(mc["name"], faces.num_classes, dropout=mc["dropout"], weights=mc["weights"]).to(
            self.device
        )
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

        ctx = Context(faces.num_classes, len(self.unlabeled), tc["steps_per_epoch"], tc["epochs"], self.device)
        enabled = config["components"]
        self.components = {name: COMPONENTS.get(name)(enabled[name], ctx) for name in ORDER if enabled[name]["enabled"]}
        if "ema" in self.components:
            self.components["ema"].attach(self.model)
        self.uses_unlabeled = any(
            name in self.components for name in ("threshold", "pseudo_label", "contrastive", "negative")
        )

        self.optimizer = self._make_optimizer()
        total = tc["epochs"] * tc["steps_per_epoch"]
        self.scheduler = (
            torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / total)))
            if tc["schedule"] == "cosine"
            else None
        )
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        # The first step (1-based) whose loss diverged, and that loss; kept on the device, read once per epoch.
        self.diverged_step = torch.zeros((), dtype=torch.long, device=self.device)
        self.diverged_loss = torch.zeros((), device=self.device)

    # ---- set-up -------------------------------------------------------------------------------------

    def _make_optimizer(self) -> torch.optim.Optimizer:
        tc = self.tc
        params = self.model.parameters()
        if tc["optimizer"] == "adam":
            return torch.optim.Adam(params, lr=tc["lr"], weight_decay=tc["weight_decay"])
        return torch.optim.SGD(
            params, lr=tc["lr"], momentum=tc["momentum"], nesterov=tc["nesterov"], weight_decay=tc["weight_decay"]
        )

    @property
    def teacher(self) -> torch.nn.Module:
        """The model evaluated: the EMA teacher when ``ema`` is on, else the student."""
        return self.components["ema"].teacher if "ema" in self.components else self.model

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _forward(self, model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            logits, feature = model(self._prepare(x))
        return logits.float(), feature.float()

    # ---- one step -----------------------------------------------------------------------------------

    def _draw(self, pool: torch.Tensor, n: int) -> torch.Tensor:
        return pool[torch.randint(len(pool), (n,), device=self.device, generator=self.generator)]

    def _views(self, x_l: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor, s: torch.Tensor) -> Views:
        if self.concat:
            logits, feats = self._forward(self.model, torch.cat([x_l, w1, w2, s]))
            sizes = [len(x_l), len(w1), len(w2), len(s)]
            ll, lw1, lw2, ls = logits.split(sizes)
            _, fw1, fw2, _ = feats.split(sizes)
            return Views(ll, lw1, lw2, ls, fw1, fw2)
        if not len(w1):
            ll, fl = self._forward(self.model, x_l)
            empty_logits, empty_feats = ll[:0], fl[:0]
            return Views(ll, empty_logits, empty_logits, empty_logits, empty_feats, empty_feats)
        ll, _ = self._forward(self.model, x_l)
        lw1, fw1 = self._forward(self.model, w1)
        lw2, fw2 = self._forward(self.model, w2)
        ls, _ = self._forward(self.model, s)
        return Views(ll, lw1, lw2, ls, fw1, fw2)

    def _weak_probs(self, views: Views, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
        """The mean of the two weak views' softmax, from the teacher when it gives the pseudo-labels."""
        ema = self.components.get("ema")
        if ema is not None and ema.hp["teacher_pseudo_labels"]:
            with torch.no_grad():
                t1, _ = self._forward(ema.teacher, w1)
                t2, _ = self._forward(ema.teacher, w2)
            return (torch.softmax(t1, 1) + torch.softmax(t2, 1)) / 2
        return ((torch.softmax(views.logits_w1, 1) + torch.softmax(views.logits_w2, 1)) / 2).detach()

    def step(self, step_in_epoch: int) -> dict[str, float]:
        tc = self.tc
        self.model.train()
        idx_l = self._draw(self.labeled, tc["batch_size"])
        # Supervised-only configs draw no unlabeled batch: nothing would read it.
        n_u = tc["batch_size"] * tc["mu"] if self.uses_unlabeled else 0
        pos_u = torch.randint(len(self.unlabeled), (n_u,), device=self.device, generator=self.generator)
        idx_u = self.unlabeled[pos_u]
        g = self.generator
        x_l = self.augmenter.weak(self.images[idx_l], generator=g)
        raw_u = self.images[idx_u]
        w1, w2, s = (
            self.augmenter.weak(raw_u, generator=g),
            self.augmenter.weak(raw_u, generator=g),
            self.augmenter.strong(raw_u, generator=g),
        )

        views = self._views(x_l, w1, w2, s)
        done = self.epoch * tc["steps_per_epoch"] + step_in_epoch
        batch = StepBatch(
            logits_l=views.logits_l,
            labels=self.labels[idx_l],
            logits_w1=views.logits_w1,
            logits_w2=views.logits_w2,
            logits_s=views.logits_s,
            feat_w1=views.feat_w1,
            feat_w2=views.feat_w2,
            u_index=pos_u,
            probs_u=self._weak_probs(views, w1, w2),
            progress=done / (tc["epochs"] * tc["steps_per_epoch"]),
            epoch=done / tc["steps_per_epoch"],
            u_true=self.labels[idx_u],
            u_soft=None if self.soft is None else self.soft[idx_u],
        )
        for component in self.components.values():
            component.prepare(batch)
        total = views.logits_l.new_zeros(())
        metrics: dict[str, float] = {}
        for name, component in self.components.items():
            loss, extra = component.loss(batch)
            metrics.update(extra)
            if loss is not None:
                metrics[f"loss_{name}"] = loss.item()
                total = total + component.hp["weight"] * loss
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        for component in self.components.values():
            component.after_step(batch, self.model)
        metrics["loss"] = total.item()
        self._watch_divergence(total.detach(), done + 1)
        return metrics

    def _watch_divergence(self, loss: torch.Tensor, step: int) -> None:
        bound = self.tc["max_loss"]
        bad = ~torch.isfinite(loss) if bound is None else ~(loss <= bound)  # NaN fails every comparison
        first = bad & (self.diverged_step == 0)
        self.diverged_step = torch.where(first, step, self.diverged_step)
        self.diverged_loss = torch.where(first, loss, self.diverged_loss)

    def _raise_if_diverged(self) -> None:
        step = int(self.diverged_step)
        if step:
            raise Diverged(
                step, math.ceil(step / self.tc["steps_per_epoch"]), float(self.diverged_loss), self.tc["max_loss"]
            )

    # ---- epochs -------------------------------------------------------------------------------------

    def train_epoch(self, on_step: Callable[[dict[str, float]], None] | None = None) -> dict[str, Any]:
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for i in range(self.tc["steps_per_epoch"]):
            step_metrics = self.step(i)
            for key, value in step_metrics.items():
                sums[key] = sums.get(key, 0.0) + value
                counts[key] = counts.get(key, 0) + 1
            if on_step is not None:
                on_step(step_metrics)
        self._raise_if_diverged()
        self.epoch += 1
        metrics: dict[str, Any] = {"epoch": self.epoch, "step": self.epoch * self.tc["steps_per_epoch"]}
        metrics.update({f"train_{k}" if not k.startswith("train_") else k: sums[k] / counts[k] for k in sums})
        for component in self.components.values():
            for key, value in component.end_epoch(self.epoch).items():
                metrics[self._class_key(key)] = value
        metrics.update(self.evaluate())
        # Best so far (ASHA and Optuna judge an early-stopped trial by it) and the test metrics at the best
        # validation epoch (what tables show).
        metrics.update(selection_metrics(self.history, metrics))
        self.history.append(metrics)
        return metrics

    def _class_key(self, key: str) -> str:
        """threshold_3 -> threshold_happiness: class names read better in the results tables."""
        prefix, _, index = key.rpartition("_")
        return f"{prefix}_{self.class_names[int(index)]}" if index.isdigit() else key

    def fit(self, on_epoch: Callable[[dict[str, Any]], None] | None = None, on_step=None) -> list[dict[str, Any]]:
        while self.epoch < self.tc["epochs"]:
            metrics = self.train_epoch(on_step)
            if on_epoch is not None:
                on_epoch(metrics)
        return self.history

    # ---- evaluation ---------------------------------------------------------------------------------

    @torch.no_grad()
    def predict(self, model: torch.nn.Module, index: torch.Tensor) -> torch.Tensor:
        """Softmax probabilities of the un-augmented images at ``index``."""
        model.eval()
        out = []
        for chunk in index.split(self.tc["eval_batch_size"]):
            logits, _ = self._forward(model, self.augmenter.normalize(self.images[chunk]))
            out.append(torch.softmax(logits, dim=1))
        return torch.cat(out) if out else torch.zeros(0, len(self.class_names), device=self.device)

    def evaluate(self) -> dict[str, Any]:
        metrics = classification_metrics(
            self.predict(self.teacher, self.test), self.labels[self.test], self.class_names, "test"
        )
        if len(self.validation):
            metrics.update(
                classification_metrics(
                    self.predict(self.teacher, self.validation), self.labels[self.validation], self.class_names, "val"
                )
            )
        metrics.update(self._unlabeled_metrics())
        return metrics

    def _unlabeled_metrics(self) -> dict[str, float]:
        """Mask rate, pseudo-label accuracy and the negative component's correctness on the unlabeled set."""
        threshold = self.components.get("threshold")
        if threshold is None or not len(self.unlabeled_probe):
            return {}
        ema = self.components.get("ema")
        source = ema.teacher if ema is not None and ema.hp["teacher_pseudo_labels"] else self.model
        index = self.unlabeled[self.unlabeled_probe]
        probs = self.predict(source, index)
        true = self.labels[index]
        mask = threshold_mask(probs, threshold.thresholds)
        metrics = {"unlabeled_mask_rate": mask.mean().item()}
        if mask.sum() > 0:
            metrics["unlabeled_pseudo_acc"] = (
                (probs.argmax(1) == true).float() * mask
            ).sum().item() / mask.sum().item()
        negative = self.components.get("negative")
        below = mask < 0.5
        if negative is not None and below.any():
            candidates, complementary, _ = negative.label_sets(probs[below], self.epoch / self.tc["epochs"], self.epoch)
            soft = None if self.soft is None else self.soft[index][below]
            metrics.update(
                {
                    f"unlabeled_{k}": v
                    for k, v in negative_correctness(candidates, complementary, true[below], soft).items()
                }
            )
        return metrics

    # ---- checkpoints --------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "components": {name: c.state_dict() for name, c in self.components.items()},
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
            "history": copy.deepcopy(self.history),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = state["epoch"]
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        for name, component in self.components.items():
            component.load_state_dict(state["components"][name])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] is not None:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.history = state["history"]
