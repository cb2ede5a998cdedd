"""Backbones and the normalised-feature head, in a registry looked up by the config's ``model.name``.

Every model maps a normalised float image [B, 3, H, W] (any side from 32 up) to ``(logits, feature)``:
the logits come from a linear classifier on the pooled, dropped-out feature; the feature is the pooled
feature L2-normalised, as Ada-CM's contrastive loss needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ablate.errors import ConfigError
from ablate.params import Param, resolve_section
from ablate.registry import Registry

MODELS: Registry = Registry("model")
register_model = MODELS.register

MIN_SIDE = 32

# The model section of a config. The backbone's name is checked against the registry when a config is resolved.
MODEL_PARAMS = {
    "name": Param("small_cnn", "backbone: small_cnn (fast on CPU) or resnet18"),
    "dropout": Param(0.0, "dropout before the classifier", low=0.0, high=1.0, open_high=True),
    "weights": Param(
        None, "a backbone state dict to start from (e.g. MS-Celeb-1M ResNet-18); a path every node can read", kind=str
    ),
}


class Head(nn.Module):
    """Global average pool, dropout, linear classifier; returns the L2-normalised feature beside the logits."""

    def __init__(self, in_features: int, num_classes: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, fmap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = torch.flatten(F.adaptive_avg_pool2d(fmap, 1), 1)
        return self.fc(self.dropout(pooled)), F.normalize(pooled.float(), dim=1)


class Classifier(nn.Module):
    """A feature-map backbone followed by the shared head."""

    def __init__(self, backbone: nn.Module, out_features: int, num_classes: int, dropout: float):
        super().__init__()
        self.backbone = backbone
        self.head = Head(out_features, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.shape[-1] < MIN_SIDE or x.shape[-2] < MIN_SIDE:
            raise ValueError(f"input side must be at least {MIN_SIDE}, got {tuple(x.shape[-2:])}")
        return self.head(self.backbone(x))


def _conv_bn_relu(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


@register_model("small_cnn")
def small_cnn(num_classes: int, dropout: float = 0.0, width: int = 32) -> Classifier:
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
    return Classifier(nn.Sequential(*layers), 4 * w, num_classes, dropout)


@register_model("resnet18")
def resnet18(num_classes: int, dropout: float = 0.0) -> Classifier:
    """torchvision's ResNet-18 trunk (no ImageNet download: pass ``weights: PATH`` for pretrained weights)."""
    from torchvision.models import resnet18 as tv_resnet18

    net = tv_resnet18(weights=None)
    backbone = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)
    return Classifier(backbone, 512, num_classes, dropout)


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
    model = MODELS.get(section["name"])(num_classes, dropout=section["dropout"])
    if section["weights"]:
        load_backbone_weights(model, section["weights"])
    return model
