"""What every component shares: the per-step batch it reads, what it declares about itself, and the registry.

A component says what it is and the trainer asks; the trainer never names one. Its ``role`` places it in a
step: a ``policy`` fills each unlabeled sample's weight in [0, 1] before any loss reads it (a hard mask is a
weight of 0 or 1), a ``loss`` adds a weighted term, a ``teacher`` keeps a model beside the student and is updated
after the optimiser step. It declares which other components or roles it ``needs``, whether it ``uses_unlabeled``
data, which views must keep gradients for it (``grad_views``) and what it reports per epoch (``reports``).
Adding a component is one module with one ``@register_component`` class.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch

from ablate.config.params import Param
from ablate.errors import ConfigError
from ablate.registry import Registry

COMPONENTS: Registry = Registry("component")
register_component = COMPONENTS.register


class Role(str, enum.Enum):
    """Where a component acts in a step; the order of the members is the order of a step."""

    POLICY = "policy"  # weighs the unlabeled samples (a confidence threshold or a soft weight)
    LOSS = "loss"  # a term of the loss
    TEACHER = "teacher"  # a model kept beside the student (the EMA), updated after the optimiser step


VIEWS = ("labeled", "weak", "strong")


class Ratio(NamedTuple):
    """A step metric kept as numerator and denominator, summed over the epoch before dividing: a ratio of
    sums needs no per-step branch on an empty denominator (which would be a host sync)."""

    num: torch.Tensor
    den: torch.Tensor


# A step metric: a 0-dim tensor (averaged over the epoch's steps), a Ratio, or a plain number.
StepMetrics = dict[str, "torch.Tensor | Ratio | float"]


@dataclass
class StepBatch:
    """One training step's outputs, shared by the components.

    Labeled: logits ``logits_l`` [B, K] of the weak view, ``labels`` [B]. Unlabeled (mu*B samples): logits and
    L2-normalised features of the two weak views and the strong view (the second weak view's are empty [0, ...]
    with ``augment.weak_views: 1``); ``u_index`` [Bu] their positions in the unlabeled set (for per-sample
    tables). ``probs_u`` is the detached softmax of the weak view, or the mean of the two weak views' (the
    teacher's, when a teacher gives the pseudo-labels); ``weight`` [Bu] in [0, 1] is set by the policy: how
    much each sample learns from its pseudo-label (1 above a hard threshold, 0 below). The samples below it (a
    weight of 1 - w) are the subset the contrastive and negative losses learn from. ``u_true`` / ``u_soft`` are
    hidden labels for metrics only: no loss may read them.
    """

    logits_l: torch.Tensor
    labels: torch.Tensor
    logits_w1: torch.Tensor
    logits_w2: torch.Tensor
    logits_s: torch.Tensor
    feat_w1: torch.Tensor
    feat_w2: torch.Tensor
    u_index: torch.Tensor
    probs_u: torch.Tensor
    progress: float  # fraction of training done, 0 at the first step, towards 1 at the last
    epoch: float  # epochs done, fractional within an epoch
    weight: torch.Tensor | None = None
    u_true: torch.Tensor | None = None
    u_soft: torch.Tensor | None = None

    @property
    def pseudo_labels(self) -> torch.Tensor:
        return self.probs_u.argmax(dim=1)

    @property
    def confidence(self) -> torch.Tensor:
        return self.probs_u.max(dim=1).values


@dataclass(frozen=True)
class Context:
    """What a component may know of the run when it is built."""

    num_classes: int
    num_unlabeled: int
    steps_per_epoch: int
    epochs: int
    device: torch.device


class EpochView:
    """What a component may ask of the trainer at the end of an epoch: predictions of a model on a subset.

    ``predict(model, subset, augment)``: model ``"teacher"`` (the evaluated model) or ``"student"``; subset
    ``"labeled"``; augment ``"none"`` or ``"weak"``. Returns (softmax probabilities [N, K], labels [N]).
    """

    def __init__(self, predict: Callable[[str, str, str], tuple[torch.Tensor, torch.Tensor]]):
        self.predict = predict


class Component:
    """A switchable part of the method, with its own hyper-parameters and state.

    Subclasses declare the class attributes below and override the hooks of their role: a ``policy``
    ``weigh``s the batch, a ``loss`` returns its term from ``loss``, a ``teacher`` gives ``evaluation_model``
    and ``pseudo_label_model``. Step metrics stay on the device (tensors or ``Ratio``s); the trainer brings
    them to the host once per epoch.
    """

    name: ClassVar[str]
    role: ClassVar[Role] = Role.LOSS
    params: ClassVar[dict[str, Param]] = {}
    default_weight: ClassVar[float] = 1.0
    needs: ClassVar[tuple[str, ...]] = ()  # components (by name) or roles ("policy") that must be enabled too
    uses_unlabeled: ClassVar[bool] = True
    grad_views: ClassVar[frozenset[str]] = frozenset()  # views whose forward keeps gradients for this component
    reports: ClassVar[tuple[str, ...]] = ()  # the metrics it reports, for --list-params and the docs
    weak_views: ClassVar[int] = 1  # weak views of each unlabeled image it reads (augment.weak_views must give them)

    def __init__(self, hp: dict[str, Any], ctx: Context):
        self.hp = hp
        self.ctx = ctx

    @classmethod
    def check_config(cls, components: dict[str, dict[str, Any]]) -> None:
        """When enabled: refuse (ConfigError) a combination with the other components' settings that cannot run,
        so that a study is refused before any trial starts. ``components`` is the resolved section."""

    @classmethod
    def report_names(cls) -> tuple[str, ...]:
        return cls.reports

    @classmethod
    def all_params(cls) -> dict[str, Param]:
        common = {"enabled": Param(False, "switch the component on")}
        if cls.role is Role.LOSS:
            common["weight"] = Param(cls.default_weight, "the loss term's weight", low=0.0)
        return {**common, **cls.params}

    # ---- hooks ---------------------------------------------------------------------------------------------

    def attach(self, model: torch.nn.Module) -> None:
        """Once, after the student model is built."""

    def bind(self, peers: dict[str, Component]) -> None:
        """Once, after every enabled component is built: a component that reads another's state (e.g. a loss
        that needs the policy's class-distribution estimate) keeps a reference to it here."""

    def weigh(self, batch: StepBatch) -> tuple[torch.Tensor, StepMetrics]:
        """A policy's weights of the unlabeled batch, in [0, 1], and its step metrics."""
        raise NotImplementedError(f"{self.name} is a {self.role.value}, not a policy")

    def weights(self, probs: torch.Tensor) -> torch.Tensor:
        """A policy's weights of any unlabeled probabilities under its current state (no update)."""
        raise NotImplementedError(f"{self.name} is a {self.role.value}, not a policy")

    def loss(self, batch: StepBatch) -> tuple[torch.Tensor, StepMetrics]:
        """A loss's term (before its weight) and its step metrics."""
        raise NotImplementedError(f"{self.name} is a {self.role.value}, not a loss")

    def evaluation_model(self) -> torch.nn.Module:
        raise NotImplementedError(f"{self.name} is a {self.role.value}, not a teacher")

    def pseudo_label_model(self) -> torch.nn.Module | None:
        """The model whose weak-view predictions give the pseudo-labels instead of the student's, if any."""
        return None

    def after_step(self, batch: StepBatch, model: torch.nn.Module) -> None:
        """After the optimiser step."""

    def end_epoch(self, epoch: int, view: EpochView) -> dict[str, Any]:
        """After each epoch (epoch counts from 1); returns metrics to log (keys ending _<class index> are
        renamed to the class's name)."""
        return {}

    def diagnose(self, probs: torch.Tensor, weight: torch.Tensor, true: torch.Tensor, soft: torch.Tensor | None,
                 progress: float, epoch: float) -> dict[str, float]:  # fmt: skip
        """Metrics on held-back unlabeled samples with their hidden labels (e.g. how right the negative labels
        are); called once per epoch with the policy's weights of ``probs``."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def _provided(enabled: Iterable[str]) -> set[str]:
    """The names and roles the enabled components provide."""
    return {name for name in enabled} | {COMPONENTS.get(name).role.value for name in enabled}


def check_enabled(enabled: list[str]) -> None:
    """Every need is met, at most one policy and one teacher, at least one loss; ConfigError otherwise."""
    provided = _provided(enabled)
    for name in enabled:
        for need in COMPONENTS.get(name).needs:
            if need not in provided:
                what = f"a {need} component" if need in {r.value for r in Role} else f"components.{need}"
                raise ConfigError(f"components.{name} needs {what} to be enabled")
    for role in (Role.POLICY, Role.TEACHER):
        several = [name for name in enabled if COMPONENTS.get(name).role is role]
        if len(several) > 1:
            raise ConfigError(f"components: at most one {role.value} may be enabled; got {', '.join(several)}")
    if not any(COMPONENTS.get(name).role is Role.LOSS for name in enabled):
        losses = [n for n in COMPONENTS.names() if COMPONENTS.get(n).role is Role.LOSS]
        raise ConfigError(f"components: enable at least one loss ({', '.join(losses)})")


def check_weak_views(enabled: Iterable[str], weak_views: int) -> None:
    """Every enabled component gets the weak views it reads; ConfigError naming the first that would not."""
    for name in enabled:
        needed = COMPONENTS.get(name).weak_views
        if needed > weak_views:
            raise ConfigError(
                f"components.{name} reads {needed} weak views of each unlabeled image; augment.weak_views is "
                f"{weak_views}. Set augment.weak_views: {needed} or disable {name}"
            )


def step_order(enabled: Iterable[str]) -> list[str]:
    """The order a step runs the enabled components in: by role (policy, loss, teacher), then so that a
    component comes after the components it needs, then by name."""
    roles = list(Role)
    ordered: list[str] = []
    pending = sorted(enabled, key=lambda n: (roles.index(COMPONENTS.get(n).role), n))
    while pending:
        ready = [n for n in pending if all(need in ordered or need not in pending for need in COMPONENTS.get(n).needs)]
        if not ready:
            raise ConfigError(f"components: {', '.join(pending)} need each other; no order can run them")
        ordered.append(ready[0])
        pending.remove(ready[0])
    return ordered


def build_components(config: dict[str, Any], ctx: Context) -> list[Component]:
    """The enabled components of a resolved config, built, in step order."""
    enabled = [name for name, hp in config["components"].items() if hp["enabled"]]
    built = [COMPONENTS.get(name)(config["components"][name], ctx) for name in step_order(enabled)]
    peers = {component.name: component for component in built}
    for component in built:
        component.bind(peers)
    return built
