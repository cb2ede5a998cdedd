import pytest
import torch
import torchvision

from ablate.errors import ConfigError
from ablate.models import MODELS, build_model


@pytest.mark.parametrize("name", ["small_cnn", "resnet18"])
@pytest.mark.parametrize("side", [32, 48, 100])
def test_forward_returns_logits_and_unit_feature(name, side):
    model = build_model(name, 7, dropout=0.1).eval()
    logits, feature = model(torch.randn(2, 3, side, side))
    assert logits.shape == (2, 7)
    assert torch.allclose(feature.norm(dim=1), torch.ones(2), atol=1e-5)


def test_registry_names_and_unknown_model():
    assert {"small_cnn", "resnet18"} <= set(MODELS.names())
    with pytest.raises(ConfigError, match=r"unknown model 'vgg'; allowed: .*resnet18.*small_cnn"):
        build_model("vgg", 7)


def test_too_small_input_is_refused():
    with pytest.raises(ValueError, match="at least 32"):
        build_model("small_cnn", 7)(torch.randn(1, 3, 16, 16))


def test_dropout_range():
    with pytest.raises(ConfigError, match=r"model.dropout must be in \[0, 1\)"):
        build_model("small_cnn", 7, dropout=1.0)


def test_resnet18_loads_torchvision_state_dict(tmp_path):
    source = torchvision.models.resnet18(weights=None, num_classes=1000)
    path = tmp_path / "msceleb.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    model = build_model("resnet18", 7, weights=str(path))
    assert torch.equal(model.backbone[0].weight, source.conv1.weight)
    assert torch.equal(model.backbone[7][1].bn2.running_var, source.layer4[1].bn2.running_var)


def test_resnet18_weights_mismatch_names_keys(tmp_path):
    state = torchvision.models.resnet18(weights=None).state_dict()
    del state["layer4.1.bn2.weight"]
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(
        ConfigError,
        match=r"does not match the backbone: missing keys \['7.1.bn2.weight'\].*unexpected keys \['extra.weight'\]",
    ):
        build_model("resnet18", 7, weights=str(path))


def test_missing_weights_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        build_model("resnet18", 7, weights=str(tmp_path / "nope.pth"))
