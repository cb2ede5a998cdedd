"""LEAF (zfkarl/LEAF): the decoupled pseudo-label loss and the gated mixture-of-experts head, on hand-computed cases."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from ablate.components import Context, StepBatch
from ablate.components.leaf_pseudo_label import LeafPseudoLabel, decoupled_loss, leaf_unlabeled_loss
from ablate.errors import ConfigError
from ablate.models import GatedMixture, LeafHead, build_model, resolve_model_section

PRESETS = Path(__file__).resolve().parents[1] / "presets"

# Two faces, seven classes. The averaged weak logits are log p, so the softmax gives p back.
P_A = [0.6, 0.35, 0.02, 0.01, 0.01, 0.005, 0.005]  # c_2 = 0.95 >= 0.9 at once: one positive, class 0
P_B = [0.1, 0.4, 0.3, 0.15, 0.03, 0.01, 0.01]  # sorted 0.4, 0.3, 0.15, 0.1: c_3 = 0.85 < 0.9, so max_k = 3
Z_A = [2.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # the strong view's logits
Z_B = [0.0, 1.5, 0.5, -1.0, 0.0, 0.0, 2.0]


def _inputs():
    weak = torch.tensor([P_A, P_B]).log()
    strong = torch.tensor([Z_A, Z_B], requires_grad=True)
    return strong, weak


def _concave(m: float, q: float) -> float:
    return math.log(1 + 50 * (m - q)) / math.log(1 + 50 * m)


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def _lse(values) -> float:
    return math.log(sum(math.exp(v) for v in values))


# Face A: positives {0}; m = (0.6 + 0.35) / 2, q = 0.35. Face B: positives {1, 2, 3}; m = 0.95 / 4, q = 0.1.
W_A = _concave(0.475, 0.35)
W_B = _concave(0.2375, 0.1)
L_A = _softplus(-2.0 + _lse([1, 0, 0, 0, 0, 0]))
L_B = _softplus(_lse([-1.5, -0.5, 1.0]) + _lse([0, 0, 0, 2]))
CE = (_lse(Z_A) - Z_A[0] + _lse(Z_B) - Z_B[1]) / 2  # the plain cross-entropy against the argmax, 0 and 1


def test_positives_stop_one_class_before_the_cumulative_threshold_and_at_most_three():
    """Face A: c_2 = 0.95 reaches 0.9, so only class 0 is positive (reading the threshold on the positives
    themselves would give {0, 1}); face B never reaches it within three positives: its top three, {1, 2, 3}."""
    strong, weak = _inputs()
    _, _, positive = decoupled_loss(strong, weak)
    assert positive[0].nonzero().flatten().tolist() == [0]
    assert positive[1].nonzero().flatten().tolist() == [1, 2, 3]


def test_concave_weight_and_loss_values_by_hand():
    strong, weak = _inputs()
    per_face, weight, _ = decoupled_loss(strong, weak)
    assert weight.tolist() == pytest.approx([W_A, W_B], rel=1e-5)  # 0.6174, 0.8076
    assert per_face.tolist() == pytest.approx([L_A, L_B], rel=1e-5)
    # The other weightings of the official code, on the same m and q.
    _, linear, _ = decoupled_loss(strong, weak, weighting="linear")
    assert linear.tolist() == pytest.approx([(0.475 - 0.35) / 0.475, (0.2375 - 0.1) / 0.2375], rel=1e-5)
    _, convex, _ = decoupled_loss(strong, weak, weighting="convex")
    assert convex.tolist() == pytest.approx([0.125 / 0.825, 0.1375 / 0.3375], rel=1e-5)


def test_a_lower_cumulative_threshold_or_max_k_changes_the_positives():
    strong, weak = _inputs()
    _, _, positive = decoupled_loss(strong, weak, cumulative=0.69)  # face B: c_2 = 0.7 reaches it: one positive
    assert positive[1].nonzero().flatten().tolist() == [1]
    _, weight, positive = decoupled_loss(strong, weak, max_k=2)  # face B capped at two: m = 0.85 / 3, q = 0.15
    assert positive[1].nonzero().flatten().tolist() == [1, 2]
    assert weight[1].item() == pytest.approx(_concave(0.85 / 3, 0.15), rel=1e-5)


def test_official_mask_scales_the_batch_mean_per_sample_selects_faces():
    """mask [1, 0]: officially Lu = mean(l w) x (CE / mean(l w)) x mean(mask) = CE / 2 and the unconfident face B
    still learns; per sample, Lu = CE x l_A w_A / (l_A w_A + l_B w_B) and face B gets no gradient."""
    mask = torch.tensor([1.0, 0.0])
    labels = torch.tensor([0, 1])
    strong, weak = _inputs()
    official, _, _ = leaf_unlabeled_loss(strong, weak, labels, mask, "official")
    assert official.item() == pytest.approx(CE / 2, rel=1e-5)
    official.backward()
    assert strong.grad[1].abs().sum() > 0
    # The gradient is the decoupled loss's, scaled by the (constant) ratio times the mask's mean.
    ratio = CE / ((L_A * W_A + L_B * W_B) / 2)
    probe, _ = _inputs()
    per_face, weight, _ = decoupled_loss(probe, weak)
    ((per_face * weight).mean() * ratio * 0.5).backward()
    assert torch.allclose(strong.grad, probe.grad, rtol=1e-4, atol=1e-6)

    strong, weak = _inputs()
    per_sample, _, _ = leaf_unlabeled_loss(strong, weak, labels, mask, "per_sample")
    assert per_sample.item() == pytest.approx(CE * L_A * W_A / (L_A * W_A + L_B * W_B), rel=1e-5)
    per_sample.backward()
    assert strong.grad[1].abs().sum() == 0 and strong.grad[0].abs().sum() > 0


def _batch(strong, weak, weight):
    probs = weak.softmax(dim=1)
    n = len(strong)
    return StepBatch(
        logits_l=strong, labels=torch.zeros(n, dtype=torch.long), logits_w1=weak, logits_w2=weak, logits_s=strong,
        feat_w1=torch.zeros(n, 4), feat_w2=torch.zeros(n, 4), u_index=torch.arange(n), probs_u=probs,
        progress=0.0, epoch=0.0, weight=weight,
    )  # fmt: skip


def test_component_defaults_are_the_official_loss_and_refuse_too_few_classes():
    ctx = Context(num_classes=7, num_unlabeled=10, steps_per_epoch=1, epochs=1, device=torch.device("cpu"))
    hp = {key: param.default for key, param in LeafPseudoLabel.all_params().items()}
    strong, weak = _inputs()
    loss, metrics = LeafPseudoLabel(hp, ctx).loss(_batch(strong, weak, torch.tensor([1.0, 0.0])))
    assert loss.item() == pytest.approx(CE / 2, rel=1e-5)
    assert metrics["leaf_positives"].item() == pytest.approx(2.0)  # (1 + 3) / 2
    assert metrics["leaf_weight"].item() == pytest.approx((W_A + W_B) / 2, rel=1e-5)
    with pytest.raises(ConfigError, match="max_k"):
        LeafPseudoLabel(hp, Context(3, 10, 1, 1, torch.device("cpu")))


# ---- the gated mixture and the head ---------------------------------------------------------------------------


def _marked_experts(mixture: GatedMixture, dim: int) -> None:
    """Expert e outputs x + 10 e (its layers zero but the last bias), so the output tells which expert ran."""
    with torch.no_grad():
        for e, expert in enumerate(mixture.experts):
            for layer in (expert.fc[0], expert.fc[2]):
                layer.weight.zero_()
                layer.bias.zero_()
            expert.fc[2].bias.fill_(10.0 * e)


def test_top1_routing_follows_the_gate_logits_and_noise_acts_only_in_training():
    dim = 3
    mixture = GatedMixture(dim, experts=3, k=1, noise=True, shared=False)
    _marked_experts(mixture, dim)
    with torch.no_grad():
        mixture.w_gate.copy_(torch.eye(3) * 100)  # face x goes to expert argmax(x)
        mixture.w_noise.fill_(-100.0)  # noise std softplus(-100 x) + 0.01: tiny beside the gaps below
    x = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.2]])
    expected = x + torch.tensor([[0.0], [20.0], [10.0]])
    index, gates = mixture.eval().route(x)
    assert index.flatten().tolist() == [0, 2, 1] and gates.flatten().tolist() == [1.0, 1.0, 1.0]
    assert torch.allclose(mixture(x), expected)
    assert torch.allclose(mixture.train()(x), expected)

    # The official start: zero gate weights. Eval routes every face alike; training spreads them at random.
    fresh = GatedMixture(dim, experts=8, k=1, noise=True, shared=False)
    faces = torch.randn(256, dim)
    assert fresh.eval().route(faces)[0].unique().numel() == 1
    torch.manual_seed(0)
    assert fresh.train().route(faces)[0].unique().numel() == 8
    assert fresh.train().route(faces)[0].unique().numel() == 8
    quiet = GatedMixture(dim, experts=8, k=1, noise=False, shared=False).train()
    assert quiet.route(faces)[0].unique().numel() == 1


def test_top2_mixes_in_log_space_and_top1_gates_get_no_gradient():
    dim = 2
    mixture = GatedMixture(dim, experts=3, k=2, noise=False, shared=False).eval()
    _marked_experts(mixture, dim)
    with torch.no_grad():
        mixture.w_gate.copy_(torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0]]))
    x = torch.tensor([[1.0, 0.0]])  # logits (2, 1, 0): experts 0 and 1, gates softmax(2, 1)
    g0 = 1 / (1 + math.exp(-1))
    y = [math.log(g0 * math.exp(v) + (1 - g0) * math.exp(v + 10)) for v in (1.0, 0.0)]
    assert mixture(x).flatten().tolist() == pytest.approx(y, rel=1e-5)

    one = GatedMixture(dim, experts=3, k=1, noise=True, shared=False).train()
    one(torch.randn(5, dim)).sum().backward()
    assert one.w_gate.grad.abs().sum() == 0 and one.w_noise.grad.abs().sum() == 0


@pytest.mark.parametrize(("name", "dim"), [("small_cnn", 128), ("resnet18", 512)])
def test_leaf_head_shapes_on_every_backbone(name, dim):
    model = build_model(resolve_model_section({"name": name, "head": "leaf", "dropout": 0.5}), 7).eval()
    assert isinstance(model.head, LeafHead)
    logits, feature = model(torch.randn(3, 3, 32, 32))
    assert logits.shape == (3, 7) and feature.shape == (3, dim)
    assert torch.allclose(feature.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(logits, model.head.fc(model.head.instance(feature)), atol=1e-5)
    # Shared experts (official): one module in all eight slots; independent: eight.
    assert len({id(e) for e in model.head.semantic.experts}) == 1
    independent = build_model(resolve_model_section({"name": name, "head": "leaf", "moe_shared": False}), 7)
    assert len({id(e) for e in independent.head.instance.experts}) == 8


def test_leaf_head_refuses_more_routes_than_experts():
    with pytest.raises(ConfigError, match="moe_k"):
        resolve_model_section({"head": "leaf", "moe_experts": 2, "moe_k": 3})


# ---- the presets ------------------------------------------------------------------------------------------------


def _preset(name: str) -> dict:
    from ablate.config.params import flatten, load_yaml
    from ablate.config.run import resolve_config

    return flatten(resolve_config(load_yaml(PRESETS / f"{name}.yaml")))


def _changes(a: dict, b: dict) -> dict:
    return {key: b.get(key) for key in a.keys() | b.keys() if a.get(key) != b.get(key)}


def test_leaf_presets_are_adacms_with_leafs_two_additions_and_its_own_settings():
    """leaf.yaml = adacm.yaml + the head + the decoupled loss + LEAF's 1600 steps, 14 labels per class
    (Code_LEAF/main.py:50,52) and RGB images; leaf_fast.yaml = adacm_fast.yaml + the head + the decoupled loss."""
    assert _changes(_preset("adacm"), _preset("leaf")) == {
        "model.head": "leaf",
        "components.pseudo_label.enabled": False,
        "components.leaf_pseudo_label.enabled": True,
        "trainer.steps_per_epoch": 1600,
        "data.labels": None,
        "data.labels_per_class": 14,
        "data.options.channel_order": "rgb",  # LEAF opens images with PIL, Ada-CM with cv2 (BGR)
    }
    assert _changes(_preset("adacm_fast"), _preset("leaf_fast")) == {
        "model.head": "leaf",
        "components.pseudo_label.enabled": False,
        "components.leaf_pseudo_label.enabled": True,
    }
    leaf = _preset("leaf")
    assert {k: leaf[k] for k in ("model.moe_experts", "model.moe_k", "model.moe_noise", "model.moe_shared")} == {
        "model.moe_experts": 8, "model.moe_k": 1, "model.moe_noise": True, "model.moe_shared": True,
    }  # fmt: skip
    assert leaf["components.leaf_pseudo_label.mask"] == "official"
