import pytest
import torch
import torchvision

from ablate.errors import ConfigError
from ablate.models import MODELS, build_model, resolve_model_section


def section(name, **given):
    return resolve_model_section({"name": name, **given})


@pytest.mark.parametrize("name", ["small_cnn", "resnet18"])
@pytest.mark.parametrize("side", [32, 48, 100])
def test_forward_returns_logits_and_unit_feature(name, side):
    model = build_model(section(name, dropout=0.1), 7).eval()
    logits, feature = model(torch.randn(2, 3, side, side))
    assert logits.shape == (2, 7)
    assert torch.allclose(feature.norm(dim=1), torch.ones(2), atol=1e-5)


def test_registry_names_and_unknown_model():
    assert {"small_cnn", "resnet18"} <= set(MODELS.names())
    with pytest.raises(ConfigError, match=r"model.name: unknown model 'vgg'; allowed: .*resnet18.*small_cnn"):
        section("vgg")


def test_too_small_input_is_refused():
    with pytest.raises(ValueError, match="at least 32"):
        build_model(section("small_cnn"), 7)(torch.randn(1, 3, 16, 16))


def test_dropout_range():
    with pytest.raises(ConfigError, match=r"model.dropout: 1.0 is out of range; allowed: a float in \[0, 1\)"):
        section("small_cnn", dropout=1.0)


def test_resnet18_loads_torchvision_state_dict(tmp_path):
    source = torchvision.models.resnet18(weights=None, num_classes=1000)
    path = tmp_path / "msceleb.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    model = build_model(section("resnet18", weights=str(path)), 7)
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
        build_model(section("resnet18", weights=str(path)), 7)


def test_missing_weights_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        build_model(section("resnet18", weights=str(tmp_path / "nope.pth")), 7)
