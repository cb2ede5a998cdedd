"""Backbones and their classifier heads, in a registry looked up by the config's ``model.name``.

Every model maps a normalised float image [B, 3, H, W] (any side from 32 up) to ``(logits, feature)``, with
a unit-norm ``feature`` for the contrastive loss. ``model.head`` picks how the two are made from the backbone's
globally average-pooled feature:

- ``linear``: logits = Linear(Dropout(pooled)); feature = L2-normalised pooled (no dropout).
- ``normalized``: Ada-CM's head (``models/backbone.py:23-32`` of hangyu94/Ada-CM): f = L2-normalise(Dropout(
  pooled)), logits = Linear(f) with a bias and no temperature, feature = f. The classifier reads a unit vector, so
  |logit_k| <= ||W_k|| + |b_k| whatever the image: the logits (and so the confidence the margins compare) are
  bounded by the classifier's weights.

A registered model builder takes ``(num_classes, dropout=..., head=...)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ablate.config.params import Param, resolve_section
from ablate.errors import ConfigError
from ablate.registry import Registry

MODELS: Registry = Registry("model")
register_model = MODELS.register

MIN_SIDE = 32

# The model section of a config. The backbone's name is checked against the registry when a config is resolved.
MODEL_PARAMS = {
    "name": Param("small_cnn", "backbone: small_cnn (fast on CPU) or resnet18"),
    "head": Param(
        "linear",
        "the classifier head: linear (a Linear on the pooled feature) or normalized (Ada-CM, models/backbone.py:23-32: "
        "pool, Dropout, L2-normalise, Linear with bias; the returned feature is the classifier's input)",
        choices=("linear", "normalized"),
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
        "a backbone state dict to start from (Ada-CM: MS-Celeb-1M ResNet-18, resnet18_msceleb.pth, "
        "models/backbone.py:18-19); a path every node can read",
        kind=str,
    ),
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


HEADS: dict[str, type[nn.Module]] = {"linear": LinearHead, "normalized": NormalizedHead}


class Classifier(nn.Module):
    """A feature-map backbone followed by the head ``head`` names."""

    def __init__(self, backbone: nn.Module, out_features: int, num_classes: int, dropout: float, head: str = "linear"):
        super().__init__()
        if head not in HEADS:
            raise ConfigError(f"model.head: unknown head {head!r}; allowed: {', '.join(HEADS)}")
        self.backbone = backbone
        self.head = HEADS[head](out_features, num_classes, dropout)

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
        if not k.removeprefix("module.").startswith(("fc.", "head."))
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
    if model["weights"] is not None:
        weights = Path(model["weights"]).expanduser()
        model["weights"] = str(weights if weights.is_absolute() else (base_dir or Path.cwd()) / weights)
    return model


def build_model(section: Mapping[str, Any], num_classes: int) -> Classifier:
    """The model a resolved ``model`` section describes; ``weights`` optionally loads a backbone state dict."""
    model = MODELS.get(section["name"])(num_classes, dropout=section["dropout"], head=section["head"])
    if section["weights"]:
        load_backbone_weights(model, section["weights"])
    return model
