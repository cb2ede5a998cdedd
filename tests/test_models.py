import pytest
import torch
import torch.nn.functional as F
import torchvision

from ablate.errors import ConfigError
from ablate.models import MODELS, LinearHead, NormalizedHead, build_model, resolve_model_section


def section(name, **given):
    return resolve_model_section({"name": name, **given})


@pytest.mark.parametrize("head", ["linear", "normalized"])
@pytest.mark.parametrize("name", ["small_cnn", "resnet18"])
@pytest.mark.parametrize("side", [32, 48, 100])
def test_forward_returns_logits_and_unit_feature(name, side, head):
    model = build_model(section(name, dropout=0.1, head=head), 7).eval()
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


# ---- the classifier heads -------------------------------------------------------------------------------


def _weight_bound(fc: torch.nn.Linear) -> torch.Tensor:
    """||W_k|| + |b_k| per class: what Cauchy-Schwarz allows a linear map of a unit vector."""
    return fc.weight.norm(dim=1) + fc.bias.abs()


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e4])
@pytest.mark.parametrize("train", [True, False])
def test_normalized_head_logits_are_bounded_by_the_weight_norms(scale, train):
    """Ada-CM's head reads a unit vector, so no input (however large its features) takes a logit past
    ||W_k|| + |b_k|; a big weight makes the bound tight enough to be reached, so a head that skipped the
    normalisation would break it."""
    torch.manual_seed(0)
    head = NormalizedHead(16, 5, dropout=0.5).train(train)
    with torch.no_grad():
        head.fc.weight.mul_(10.0)
    fmap = torch.randn(64, 16, 3, 3) * scale
    logits, _ = head(fmap)
    assert (logits.abs() <= _weight_bound(head.fc) + 1e-4).all()


def test_linear_head_logits_are_not_bounded_so_the_bound_test_can_fail():
    """The negative control of the test above: the linear head's logits grow with the feature."""
    torch.manual_seed(0)
    head = LinearHead(16, 5, dropout=0.0).eval()
    logits, _ = head(torch.randn(64, 16, 3, 3) * 1e4)
    assert (logits.abs() > _weight_bound(head.fc)).any()


def test_normalized_head_feature_is_the_classifiers_input_after_dropout():
    torch.manual_seed(0)
    head = NormalizedHead(32, 7, dropout=0.5).train()
    fmap = torch.rand(8, 32, 2, 2) + 0.1  # every pooled entry positive, so a zero can only come from dropout
    logits, feature = head(fmap)
    assert torch.allclose(logits, head.fc(feature), atol=1e-6)
    assert torch.allclose(feature.norm(dim=1), torch.ones(8), atol=1e-6)
    dropped = feature == 0
    assert 0 < dropped.float().mean() < 1  # dropout acted on the feature itself
    pooled = fmap.mean(dim=(2, 3))
    kept = pooled.masked_fill(dropped, 0.0)
    assert torch.allclose(feature, F.normalize(kept, dim=1), atol=1e-6)  # dropout's 1/(1-p) cancels in the norm


def test_normalized_head_in_eval_mode_is_the_normalised_pooled_feature():
    torch.manual_seed(0)
    head = NormalizedHead(32, 7, dropout=0.5).eval()
    fmap = torch.randn(4, 32, 3, 3)
    logits, feature = head(fmap)
    expected = F.normalize(fmap.mean(dim=(2, 3)), dim=1)
    assert torch.allclose(feature, expected, atol=1e-6)
    assert torch.allclose(logits, expected @ head.fc.weight.T + head.fc.bias, atol=1e-5)


def test_linear_head_feature_is_the_pooled_feature_without_dropout():
    torch.manual_seed(0)
    head = LinearHead(32, 7, dropout=0.5).train()
    fmap = torch.rand(8, 32, 2, 2) + 0.1
    _, feature = head(fmap)
    assert torch.allclose(feature, F.normalize(fmap.mean(dim=(2, 3)), dim=1), atol=1e-6)


@pytest.mark.parametrize("name", ["small_cnn", "resnet18"])
def test_model_head_option_builds_the_named_head(name):
    assert isinstance(build_model(section(name, head="normalized"), 7).head, NormalizedHead)
    linear = build_model(section(name), 7).head
    assert isinstance(linear, LinearHead) and not isinstance(linear, NormalizedHead)


def test_model_head_choices():
    with pytest.raises(ConfigError, match=r"model.head: 'cosine' is not allowed; allowed: 'linear', 'normalized'"):
        section("small_cnn", head="cosine")
