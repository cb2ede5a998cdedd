"""The training loop: one loop whose loss is the weighted sum of the components a config enables.

Per step: a labeled batch of B images and an unlabeled batch of mu*B, drawn by index from the uint8 images
kept on the device; a weak view of the labeled images, two weak views (one with ``augment.weak_views: 1``) and a
strong view of the unlabeled ones, augmented there (within an epoch, the next step's batch is made in a background
thread while this one trains, ``trainer.overlap``); the forward passes (one over the concatenated views, or one per
view; a view that no component learns through runs without gradients, the weak views' on a free core when there
is one, ``trainer.background_forward``); then the components by role: the policy weighs the unlabeled samples,
each loss adds its weighted term, and after the optimiser step every component's ``after_step`` runs (the
teacher's update among them). The trainer asks the components what they are; it never names one. Every epoch
ends with the components' epoch hooks, an evaluation (of the teacher, when there is one) and a checkpointable
state. Step metrics stay on the device until the epoch ends.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ablate.augment import Augmenter
from ablate.components import Component, Context, EpochView, Role, StepBatch, build_components
from ablate.config.metrics import selection_metrics
from ablate.data import FaceSet
from ablate.data.split import split_faces
from ablate.errors import ConfigError
from ablate.models import build_model
from ablate.training.background_forward import BackgroundForward, why_not_in_background
from ablate.training.evaluation import Evaluator, Subsets
from ablate.training.prefetch import Prefetcher
from ablate.training.pretrain import PRETRAIN, pretrained_backbone
from ablate.training.runtime import Runtime, seed_everything
from ablate.training.step_metrics import EpochMeter


def lr_scheduler(optimizer: torch.optim.Optimizer, schedule: str, total: int):
    """The schedule of ``trainer.schedule`` over ``total`` steps, stepped once per step (None: a constant lr)."""
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    if schedule == "cosine_7_16":  # FixMatch's and USB's, without their optional warm-up (0 steps by default)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: math.cos(7 * math.pi * k / (16 * total)))
    return None


def parameter_groups(model: torch.nn.Module, weight_decay: float, decay_bn_bias: bool) -> list[dict[str, Any]]:
    """The optimiser's parameter groups: one with every parameter, or (``decay_bn_bias`` false) the weights that
    decay and the biases and batch-norm parameters (every parameter of one dimension or less, USB's rule) that
    do not."""
    params = [p for p in model.parameters() if p.requires_grad]
    if decay_bn_bias:
        return [{"params": params, "weight_decay": weight_decay}]
    decay = [p for name, p in model.named_parameters() if p.requires_grad and p.ndim > 1 and not name.endswith("bias")]
    kept = {id(p) for p in decay}
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": [p for p in params if id(p) not in kept], "weight_decay": 0.0},
    ]


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
class Drawn:
    """One step's batch: the positions drawn and the views made from them (all on the device)."""

    idx_l: torch.Tensor  # labeled images, indices into the whole data set
    pos_u: torch.Tensor  # unlabeled images, positions in the unlabeled subset
    idx_u: torch.Tensor  # the same, indices into the whole data set
    x_l: torch.Tensor
    w1: torch.Tensor
    w2: torch.Tensor
    strong: torch.Tensor


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
        self.config = copy.deepcopy(config)
        settings = self.settings = self.config["trainer"]
        self.runtime = Runtime.from_trainer_section(settings)
        self.device = self.runtime.device
        # what ran, for the results tables (auto's precision depends on the CPU, and bf16 rounds differently)
        self.config["trainer"]["device"] = self.device.type
        self.config["trainer"]["precision"] = "bf16" if self.runtime.autocast else "fp32"
        self.class_names = faces.class_names
        seed_everything(settings["seed"])

        subsets = self._subsets(faces)
        # The whole data set moves to the device once; batches are drawn by index there.
        self.images = faces.images.to(self.device)
        self.labels = faces.labels.to(self.device)
        self.soft = None if faces.soft_labels is None else faces.soft_labels.to(self.device)
        self.subsets = subsets
        self.generator = torch.Generator(device=self.device).manual_seed(settings["seed"])
        self.augmenter = Augmenter(faces.images.shape[-1], **self.config["augment"])
        self.model = self.runtime.prepare_model(build_model(self._model_section(faces), faces.num_classes))
        self.evaluator = Evaluator(
            self.images, self.labels, self.soft, subsets, self.class_names, self.augmenter, self.runtime,
            settings["eval_batch_size"],
        )  # fmt: skip

        ctx = Context(
            faces.num_classes, len(subsets.unlabeled), settings["steps_per_epoch"], settings["epochs"], self.device
        )
        self.components = build_components(self.config, ctx)
        for component in self.components:
            component.attach(self.model)
        self.policy = self._one(Role.POLICY)
        self.teacher = self._one(Role.TEACHER)
        self.losses = [c for c in self.components if c.role is Role.LOSS]
        self.uses_unlabeled = any(c.uses_unlabeled for c in self.components)
        self.grad_views = frozenset().union(*(c.grad_views for c in self.losses))
        self.weak_forward = self._background_forward()

        self.optimizer = self._make_optimizer()
        total = settings["epochs"] * settings["steps_per_epoch"]
        self.scheduler = lr_scheduler(self.optimizer, settings["schedule"], total)
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.meter = EpochMeter()
        # The first step (1-based) whose loss diverged, and that loss; kept on the device, read once per epoch.
        self.diverged_step = torch.zeros((), dtype=torch.long, device=self.device)
        self.diverged_loss = torch.zeros((), device=self.device)

    # ---- set-up -------------------------------------------------------------------------------------

    def _subsets(self, faces: FaceSet) -> Subsets:
        split = split_faces(faces, self.config["data"])
        probe_size = (
            len(split.unlabeled) if self.settings["eval_unlabeled"] is None else self.settings["eval_unlabeled"]
        )
        probe_generator = torch.Generator().manual_seed(self.settings["seed"] + 1)
        probe = torch.randperm(len(split.unlabeled), generator=probe_generator)[:probe_size].sort().values
        parts = (split.labeled, split.unlabeled, split.validation, faces.indices("test"), probe)
        return Subsets(*(part.to(self.device) for part in parts))

    def _model_section(self, faces: FaceSet) -> dict[str, Any]:
        """The model section, with ``weights: pretrain`` made the path of its cached pretrained backbone (built
        first when no trial has built it yet)."""
        section = self.config["model"]
        if section["weights"] != PRETRAIN:
            return section
        return {**section, "weights": str(pretrained_backbone(self.config, faces))}

    def _background_forward(self) -> BackgroundForward | None:
        """The weak views' forward in a background thread, where the settings ask for it and it applies."""
        setting = self.settings["background_forward"]
        needed = self.uses_unlabeled and not self.runtime.concat and "weak" not in self.grad_views
        if not (needed and self.runtime.background_forward):
            return None
        reason = why_not_in_background(self.model) or ("trainer.compile is on" if self.runtime.compile else None)
        if reason is None:
            return BackgroundForward(self.model, self.runtime.forward)
        if setting is True:
            raise ConfigError(f"trainer.background_forward: true cannot apply: {reason}; set it to auto or false")
        return None

    def _one(self, role: Role) -> Component | None:
        return next((c for c in self.components if c.role is role), None)

    def _make_optimizer(self) -> torch.optim.Optimizer:
        s = self.settings
        params = parameter_groups(self.model, s["weight_decay"], s["decay_bn_bias"])
        # fused: one kernel per step, and no per-parameter host read of the step count
        if s["optimizer"] == "adam":
            return torch.optim.Adam(params, lr=s["lr"], weight_decay=s["weight_decay"], fused=True)
        return torch.optim.SGD(
            params,
            lr=s["lr"],
            momentum=s["momentum"],
            nesterov=s["nesterov"],
            weight_decay=s["weight_decay"],
            fused=True,
        )

    @property
    def evaluated_model(self) -> torch.nn.Module:
        """The model evaluated: the teacher's when there is one, else the student."""
        return self.teacher.evaluation_model() if self.teacher is not None else self.model

    @property
    def pseudo_label_source(self) -> torch.nn.Module:
        """The model whose weak-view predictions give the pseudo-labels."""
        source = self.teacher.pseudo_label_model() if self.teacher is not None else None
        return self.model if source is None else source

    # ---- one step -----------------------------------------------------------------------------------

    def _draw(self, pool: torch.Tensor, n: int) -> torch.Tensor:
        return pool[torch.randint(len(pool), (n,), device=self.device, generator=self.generator)]

    def draw(self) -> Drawn:
        """The next step's batch: indices drawn and views made with the trainer's generator (its only user within
        an epoch, so a batch made in the background is the batch the step would have made)."""
        s, g = self.settings, self.generator
        idx_l = self._draw(self.subsets.labeled, s["batch_size"])
        # A config that uses no unlabeled data draws no unlabeled batch: nothing would read it.
        n_u = s["batch_size"] * s["mu"] if self.uses_unlabeled else 0
        pos_u = torch.randint(len(self.subsets.unlabeled), (n_u,), device=self.device, generator=g)
        idx_u = self.subsets.unlabeled[pos_u]
        x_l = self.augmenter.weak(self.images[idx_l], generator=g)
        raw_u = self.images[idx_u]
        w1 = self.augmenter.weak(raw_u, generator=g)
        # weak_views 1: the second view is empty, and makes neither a draw nor a forward
        w2 = self.augmenter.weak(raw_u, generator=g) if self.augmenter.weak_views == 2 else w1[:0]
        strong = self.augmenter.strong(raw_u, generator=g)
        return Drawn(idx_l, pos_u, idx_u, x_l, w1, w2, strong)

    def _forward_view(self, x: torch.Tensor, view: str) -> tuple[torch.Tensor, torch.Tensor]:
        grad = torch.enable_grad() if view in self.grad_views else torch.no_grad()
        with grad:
            return self.runtime.forward(self.model, x)

    def _views(self, x_l: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor, s: torch.Tensor) -> Views:
        if self.runtime.concat and len(w1):
            logits, feats = self.runtime.forward(self.model, torch.cat([x_l, w1, w2, s]))
            sizes = [len(x_l), len(w1), len(w2), len(s)]
            ll, lw1, lw2, ls = logits.split(sizes)
            _, fw1, fw2, _ = feats.split(sizes)
            return Views(ll, lw1, lw2, ls, fw1, fw2)
        # The weak views run last (in the background, when it is on: their batch norm statistics count after the
        # labeled and strong views' either way). Started only when there are weak views, so that it is always joined.
        weak_views = [w1, w2] if len(w2) else [w1]
        weak = self.weak_forward.start(weak_views) if self.weak_forward is not None and len(w1) else None
        ll, fl = self._forward_view(x_l, "labeled")
        if not len(w1):
            return Views(ll, ll[:0], ll[:0], ll[:0], fl[:0], fl[:0])
        ls, _ = self._forward_view(s, "strong")
        outputs = weak() if weak is not None else [self._forward_view(w, "weak") for w in weak_views]
        (lw1, fw1), (lw2, fw2) = outputs if len(outputs) == 2 else (outputs[0], (ll[:0], fl[:0]))
        return Views(ll, lw1, lw2, ls, fw1, fw2)

    def _weak_probs(self, views: Views, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
        """The weak view's softmax, or the mean of the two weak views' (``augment.weak_views``), from the teacher
        when it gives the pseudo-labels."""
        if self.pseudo_label_source is not self.model:
            with torch.no_grad():
                logits = [self.runtime.forward(self.pseudo_label_source, w)[0] for w in (w1, w2) if len(w)]
        else:
            logits = [views.logits_w1] + ([views.logits_w2] if len(w2) else [])
        return (sum(torch.softmax(z, 1) for z in logits) / len(logits)).detach()

    def step(self, step_in_epoch: int, drawn: Drawn | None = None) -> dict[str, Any]:
        """One optimiser step on ``drawn`` (made now when not given); returns its metrics as device tensors (read
        them once per epoch, not per step)."""
        s = self.settings
        self.model.train()
        d = self.draw() if drawn is None else drawn
        views = self._views(d.x_l, d.w1, d.w2, d.strong)
        done = self.epoch * s["steps_per_epoch"] + step_in_epoch
        batch = StepBatch(
            logits_l=views.logits_l,
            labels=self.labels[d.idx_l],
            logits_w1=views.logits_w1,
            logits_w2=views.logits_w2,
            logits_s=views.logits_s,
            feat_w1=views.feat_w1,
            feat_w2=views.feat_w2,
            u_index=d.pos_u,
            probs_u=self._weak_probs(views, d.w1, d.w2),
            progress=done / (s["epochs"] * s["steps_per_epoch"]),
            epoch=done / s["steps_per_epoch"],
            u_true=self.labels[d.idx_u],
            u_soft=None if self.soft is None else self.soft[d.idx_u],
        )
        metrics: dict[str, Any] = {}
        if self.policy is not None:
            batch.weight, found = self.policy.weigh(batch)
            metrics.update(found)
        total = views.logits_l.new_zeros(())
        for component in self.losses:
            loss, found = component.loss(batch)
            metrics.update(found)
            metrics[f"loss_{component.name}"] = loss.detach()
            total = total + component.hp["weight"] * loss
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        for component in self.components:
            component.after_step(batch, self.model)
        metrics["loss"] = total.detach()
        self._watch_divergence(metrics["loss"], done + 1)
        self.meter.add(metrics)
        return metrics

    def run_steps(self, start: int, stop: int, on_step: Callable[[int, dict[str, Any]], None] | None = None) -> None:
        """Steps ``start`` .. ``stop - 1`` of the current epoch; with ``overlap``, each next batch is made in the
        background while a step trains (never past ``stop``: the epoch's hooks use the generator after it).
        Both background threads end with the run of steps."""
        weak_thread = self.weak_forward if self.weak_forward is not None else contextlib.nullcontext()
        with Prefetcher(self.draw, enabled=self.runtime.overlap) as batches, weak_thread:
            for i in range(start, stop):
                step_metrics = self.step(i, batches.take(more=i + 1 < stop))
                if on_step is not None:
                    on_step(i, step_metrics)

    def _watch_divergence(self, loss: torch.Tensor, step: int) -> None:
        bound = self.settings["max_loss"]
        bad = ~torch.isfinite(loss) if bound is None else ~(loss <= bound)  # NaN fails every comparison
        first = bad & (self.diverged_step == 0)
        self.diverged_step = torch.where(first, step, self.diverged_step)
        self.diverged_loss = torch.where(first, loss, self.diverged_loss)

    def _raise_if_diverged(self) -> None:
        step = int(self.diverged_step)
        if step:
            epoch = math.ceil(step / self.settings["steps_per_epoch"])
            raise Diverged(step, epoch, float(self.diverged_loss), self.settings["max_loss"])

    # ---- epochs -------------------------------------------------------------------------------------

    def train_epoch(self, on_step: Callable[[int, dict[str, Any]], None] | None = None) -> dict[str, Any]:
        self.meter = EpochMeter()
        self.run_steps(0, self.settings["steps_per_epoch"], on_step)
        self._raise_if_diverged()
        self.epoch += 1
        metrics: dict[str, Any] = {"epoch": self.epoch, "step": self.epoch * self.settings["steps_per_epoch"]}
        metrics.update({k if k.startswith("train_") else f"train_{k}": v for k, v in self.meter.values().items()})
        view = EpochView(self._predict_for_components)
        for component in self.components:
            for key, value in component.end_epoch(self.epoch, view).items():
                metrics[self._class_key(key)] = value
        metrics.update(self.evaluate())
        # Best so far (ASHA and Optuna judge an early-stopped trial by it) and the test metrics at the best
        # validation epoch (what tables show).
        metrics.update(selection_metrics(self.history, metrics))
        self.history.append(metrics)
        return metrics

    def _predict_for_components(self, model: str, subset: str, augment: str) -> tuple[torch.Tensor, torch.Tensor]:
        if subset != "labeled":
            raise ValueError(f"subset {subset!r}: components may ask for 'labeled'")
        chosen = {"teacher": self.evaluated_model, "student": self.model}[model]
        index = self.subsets.labeled
        return self.evaluator.predict(chosen, index, augment, generator=self.generator), self.labels[index]

    def _class_key(self, key: str) -> str:
        """threshold_3 -> threshold_happiness: class names read better in the results tables."""
        prefix, _, index = key.rpartition("_")
        return f"{prefix}_{self.class_names[int(index)]}" if index.isdigit() else key

    def fit(self, on_epoch=None, on_step=None) -> list[dict[str, Any]]:
        while self.epoch < self.settings["epochs"]:
            metrics = self.train_epoch(on_step)
            if on_epoch is not None:
                on_epoch(metrics)
        return self.history

    # ---- evaluation ---------------------------------------------------------------------------------

    def evaluate(self) -> dict[str, Any]:
        metrics = self.evaluator.classification(self.evaluated_model)
        if self.policy is not None:
            progress = self.epoch / self.settings["epochs"]
            others = [c for c in self.components if c is not self.policy]
            metrics.update(
                self.evaluator.unlabeled(self.pseudo_label_source, self.policy, others, progress, self.epoch)
            )
        return metrics

    # ---- checkpoints --------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "components": {c.name: c.state_dict() for c in self.components},
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
        for component in self.components:
            component.load_state_dict(state["components"][component.name])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] is not None:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.history = state["history"]
