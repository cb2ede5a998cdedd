"""FlexMatch, FreeMatch and SoftMatch against their papers' formulas on small hand-computed cases, FreeMatch's
fairness loss against a direct port of USB's, their checkpoints, and their runs beside LION's negative learning."""

from __future__ import annotations

import io
import math

import pytest
import torch

from ablate.components import Context, EpochView, StepBatch, build_components
from ablate.components.fairness import fairness_loss
from ablate.components.policies import POLICIES
from ablate.components.policies.flexmatch import learning_effect, record_counts
from ablate.components.policies.softmatch import truncated_gaussian_weight, uniform_alignment
from ablate.components.threshold import Threshold
from ablate.config.run import load_config, resolve_components
from ablate.data import load_dataset
from ablate.errors import ConfigError
from ablate.training.trainer import Trainer

NO_VIEW = EpochView(lambda *args: pytest.fail("this policy must not ask for predictions"))


def _ctx(k=3, n_unlabeled=6):
    return Context(num_classes=k, num_unlabeled=n_unlabeled, steps_per_epoch=1, epochs=2, device=torch.device("cpu"))


def _threshold(policy: str, k=3, n_unlabeled=6, **hp) -> Threshold:
    given = {"threshold": {"enabled": True, "policy": policy, **hp}, "supervised": {"enabled": True}}
    return Threshold(resolve_components(given)["threshold"], _ctx(k, n_unlabeled))


def _batch(probs_u, u_index=None):
    n, k = probs_u.shape
    zeros = torch.zeros(n, k)
    return StepBatch(
        logits_l=torch.zeros(1, k), labels=torch.zeros(1, dtype=torch.long), logits_w1=zeros, logits_w2=zeros,
        logits_s=zeros, feat_w1=zeros, feat_w2=zeros, probs_u=probs_u,
        u_index=torch.arange(n) if u_index is None else torch.tensor(u_index), progress=0.0, epoch=0.0,
    )  # fmt: skip


def _probs(*rows):
    return torch.tensor(rows, dtype=torch.float32)


# ---- FlexMatch -------------------------------------------------------------------------------------------------


def test_flexmatch_first_step_lets_every_sample_pass():
    """beta starts at 0, so every threshold is 0 and the first mask is all ones (USB's warm-up)."""
    comp = _threshold("flexmatch")
    weight, _ = comp.weigh(_batch(_probs([0.4, 0.3, 0.3], [0.34, 0.33, 0.33], [0.99, 0.005, 0.005])))
    assert weight.tolist() == [1.0, 1.0, 1.0]


# Step 1 over N = 6 unlabeled samples, tau = 0.9: samples 0 and 1 confidently class 0, sample 3 confidently
# class 2, sample 2 not confident. Records: {0: 0, 1: 0, 3: 2}, three unused. sigma = [2, 0, 1].
STEP1 = _probs([0.95, 0.03, 0.02], [0.92, 0.04, 0.04], [0.2, 0.5, 0.3], [0.05, 0.04, 0.91])
STEP1_INDEX = [0, 1, 2, 3]


@pytest.mark.parametrize(
    "mapping, warmup, expected",
    [
        # warm-up: beta = sigma / max(max sigma = 2, unused = 3) = [2/3, 0, 1/3]
        ("convex", True, [0.9 * (2 / 3) / (2 - 2 / 3), 0.0, 0.9 * (1 / 3) / (2 - 1 / 3)]),  # [0.45, 0, 0.18]
        ("linear", True, [0.9 * 2 / 3, 0.0, 0.9 * 1 / 3]),  # [0.6, 0, 0.3]
        # no warm-up: beta = sigma / max sigma = [1, 0, 1/2]
        ("convex", False, [0.9 * 1.0, 0.0, 0.9 * 0.5 / 1.5]),  # [0.9, 0, 0.3]
        ("linear", False, [0.9, 0.0, 0.45]),
    ],
)
def test_flexmatch_thresholds_after_one_step(mapping, warmup, expected):
    comp = _threshold("flexmatch", tau=0.9, flexmatch_mapping=mapping, flexmatch_warmup=warmup)
    comp.weigh(_batch(STEP1, STEP1_INDEX))
    assert comp.policy.thresholds().tolist() == pytest.approx(expected, abs=1e-6)
    assert comp.end_epoch(1, NO_VIEW)["threshold_0"] == pytest.approx(expected[0], abs=1e-6)


def test_flexmatch_masks_with_the_thresholds_from_before_the_step_then_records_it():
    comp = _threshold("flexmatch", tau=0.9)
    comp.weigh(_batch(STEP1, STEP1_INDEX))  # thresholds now [0.45, 0, 0.18]
    # Step 2: sample 2 becomes confidently class 0, sample 1 confidently class 2 (its record is overwritten),
    # sample 0 is unconfident (its record stays), samples 4 and 5 are unconfident classes 0 and 2.
    step2 = _probs([0.3, 0.4, 0.3], [0.02, 0.02, 0.96], [0.93, 0.05, 0.02], [0.42, 0.41, 0.17], [0.25, 0.25, 0.5])
    weight, _ = comp.weigh(_batch(step2, [0, 1, 2, 4, 5]))
    # Judged by the step-1 thresholds [0.45, 0, 0.18]: 0.4 >= 0 (class 1), 0.96 >= 0.18, 0.93 >= 0.45,
    # 0.42 < 0.45 (class 0), 0.5 >= 0.18 (class 2; the thresholds after this step, 0.9 for class 2, would fail it).
    assert weight.tolist() == [1.0, 1.0, 1.0, 0.0, 1.0]
    # Records {0: 0, 1: 2, 2: 0, 3: 2}, unused {4, 5}: sigma = [2, 0, 2], beta = sigma / max(2, 2) = [1, 0, 1].
    assert comp.policy.records[:6].tolist() == [0, 2, 0, 2, -1, -1]
    assert comp.policy.thresholds().tolist() == pytest.approx([0.9, 0.0, 0.9], abs=1e-6)
    assert comp.end_epoch(1, NO_VIEW)["flexmatch_unused"] == pytest.approx(2 / 6)


def test_flexmatch_learning_effect_keeps_beta_until_something_is_recorded_without_warmup():
    counts = record_counts(torch.tensor([-1, -1, -1]), 3)
    assert counts.tolist() == [3.0, 0.0, 0.0, 0.0]
    assert learning_effect(counts, warmup=False).tolist() == [0.0, 0.0, 0.0]  # no 0 / 0
    comp = _threshold("flexmatch", flexmatch_warmup=False, n_unlabeled=3)
    comp.weigh(_batch(_probs([0.5, 0.3, 0.2], [0.4, 0.4, 0.2]), [0, 1]))  # nothing confident
    assert comp.policy.thresholds().tolist() == [0.0, 0.0, 0.0]


# ---- FreeMatch -------------------------------------------------------------------------------------------------


def test_freematch_starts_at_one_over_c():
    comp = _threshold("freematch")
    policy = comp.policy
    assert policy.tau.item() == pytest.approx(1 / 3)
    assert policy.p_model.tolist() == pytest.approx([1 / 3] * 3)
    assert policy.label_hist.tolist() == pytest.approx([1 / 3] * 3)
    assert policy.thresholds().tolist() == pytest.approx([1 / 3] * 3)


def test_freematch_emas_and_maxnorm_thresholds_after_two_steps():
    comp = _threshold("freematch", freematch_ema=0.9)
    policy = comp.policy
    # Step 1: max-confidence mean (0.35 + 0.95) / 2 = 0.65, class means [0.65, 0.18, 0.17], both argmax class 0.
    w1, _ = comp.weigh(_batch(_probs([0.35, 0.33, 0.32], [0.95, 0.03, 0.02])))
    assert policy.tau.item() == pytest.approx(0.9 / 3 + 0.1 * 0.65)  # 0.365
    assert policy.p_model.tolist() == pytest.approx([0.365, 0.318, 0.317])
    assert policy.label_hist.tolist() == pytest.approx([0.4, 0.3, 0.3])
    # The current batch is in the thresholds it is judged by: T = 0.365 * [0.365, 0.318, 0.317] / 0.365, so
    # 0.35 < 0.365 fails (against the initial 1/3 it would have passed).
    assert w1.tolist() == [0.0, 1.0]
    # Step 2: max-confidence mean (0.6 + 0.8) / 2 = 0.7, class means [0.5, 0.15, 0.35], argmax classes 2 and 0.
    w2, _ = comp.weigh(_batch(_probs([0.2, 0.2, 0.6], [0.8, 0.1, 0.1])))
    tau2 = 0.9 * 0.365 + 0.1 * 0.7  # 0.3985
    p2 = [0.9 * 0.365 + 0.05, 0.9 * 0.318 + 0.015, 0.9 * 0.317 + 0.035]  # [0.3785, 0.3012, 0.3203]
    assert policy.tau.item() == pytest.approx(tau2)
    assert policy.p_model.tolist() == pytest.approx(p2)
    assert policy.label_hist.tolist() == pytest.approx([0.9 * 0.4 + 0.05, 0.9 * 0.3, 0.9 * 0.3 + 0.05])
    expected = [tau2 * p / max(p2) for p in p2]  # MaxNorm: the largest class threshold equals tau
    assert policy.thresholds().tolist() == pytest.approx(expected)
    assert w2.tolist() == [1.0, 1.0]  # 0.6 >= 0.3372, 0.8 >= 0.3985


def _usb_entropy_loss(mask, logits_s, prob_model, label_hist):
    """A direct port of USB's freematch.py:16-44 (boolean selection, bincount, replace_inf_to_zero)."""

    def replace_inf_to_zero(val):
        val[val == float("inf")] = 0.0
        return val

    logits_s = logits_s[mask.bool()]
    prob_s = logits_s.softmax(dim=-1)
    _, pred_label_s = torch.max(prob_s, dim=-1)
    hist_s = torch.bincount(pred_label_s, minlength=logits_s.shape[1]).to(logits_s.dtype)
    hist_s = hist_s / hist_s.sum()
    prob_model, label_hist = prob_model.reshape(1, -1), label_hist.reshape(1, -1)
    mod_prob_model = prob_model * replace_inf_to_zero(1 / label_hist).detach()
    mod_prob_model = mod_prob_model / mod_prob_model.sum(dim=-1, keepdim=True)
    mod_mean_prob_s = prob_s.mean(dim=0, keepdim=True) * replace_inf_to_zero(1 / hist_s).detach()
    mod_mean_prob_s = mod_mean_prob_s / mod_mean_prob_s.sum(dim=-1, keepdim=True)
    return (mod_prob_model * torch.log(mod_mean_prob_s + 1e-12)).sum(dim=1).mean()


def test_fairness_loss_on_a_hand_case():
    # Passing strong-view predictions [0.8, 0.2] and [0.3, 0.7]: h_bar = [0.5, 0.5], p_bar = [0.55, 0.45], so
    # SumNorm(p_bar / h_bar) = [0.55, 0.45]; p~ = [0.6, 0.4], h~ = [0.8, 0.2]: SumNorm(p~ / h~) = [3/11, 8/11].
    logits = _probs([0.8, 0.2], [0.3, 0.7], [0.1, 0.9]).log()
    mask = torch.tensor([1.0, 1.0, 0.0])  # the third sample does not pass: it must not count
    loss = fairness_loss(logits, mask, torch.tensor([0.6, 0.4]), torch.tensor([0.8, 0.2]))
    assert loss.item() == pytest.approx(3 / 11 * math.log(0.55) + 8 / 11 * math.log(0.45), abs=1e-6)  # -0.74378


def test_fairness_loss_class_absent_from_the_histogram_counts_zero():
    # Both passing samples predict class 0: h_bar = [1, 0] -> 1/0 -> 0, so SumNorm(p_bar / h_bar) = [1, 0].
    logits = _probs([0.8, 0.2], [0.6, 0.4]).log()
    loss = fairness_loss(logits, torch.ones(2), torch.tensor([0.6, 0.4]), torch.tensor([0.5, 0.5]))
    assert loss.item() == pytest.approx(0.6 * math.log(1 + 1e-12) + 0.4 * math.log(1e-12), rel=1e-5)


def test_fairness_loss_equals_usbs_and_so_does_its_gradient():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 5, generator=generator, requires_grad=True)
    mask = (torch.rand(16, generator=generator) > 0.4).float()
    p_model = torch.softmax(torch.randn(5, generator=generator), 0)
    label_hist = torch.softmax(torch.randn(5, generator=generator), 0)
    ours = fairness_loss(logits, mask, p_model, label_hist)
    (grad_ours,) = torch.autograd.grad(ours, logits)
    usb = _usb_entropy_loss(mask, logits, p_model, label_hist)
    (grad_usb,) = torch.autograd.grad(usb, logits)
    assert ours.item() == pytest.approx(usb.item(), rel=1e-5)
    torch.testing.assert_close(grad_ours, grad_usb, rtol=1e-4, atol=1e-7)


def test_fairness_loss_is_zero_with_finite_gradient_when_nothing_passes():
    logits = torch.randn(4, 3, requires_grad=True)
    loss = fairness_loss(logits, torch.zeros(4), torch.full((3,), 1 / 3), torch.full((3,), 1 / 3))
    (grad,) = torch.autograd.grad(loss, logits)
    assert loss.item() == 0.0 and torch.equal(grad, torch.zeros_like(grad))


def test_fairness_reads_the_freematch_policy_and_refuses_the_others():
    base = {"supervised": {"enabled": True}, "pseudo_label": {"enabled": True}, "fairness": {"enabled": True}}
    config = {"components": resolve_components({**base, "threshold": {"enabled": True, "policy": "freematch"}})}
    built = {c.name: c for c in build_components(config, _ctx())}
    assert built["fairness"].policy is built["threshold"].policy
    for other in ("fixed", "adaptive", "flexmatch", "softmatch"):
        refused = rf"components\.fairness needs components\.threshold\.policy: freematch.*got '{other}'"
        with pytest.raises(ConfigError, match=refused):  # when the config is resolved, before anything is built
            resolve_components({**base, "threshold": {"enabled": True, "policy": other}})


# ---- SoftMatch -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "confidence, n_sigma, expected",
    [
        (0.5, 1.0, 1.0),  # at mu
        (0.9, 1.0, 1.0),  # above mu
        (0.3, 1.0, math.exp(-0.5)),  # the paper's formula: exp(-(0.3 - 0.5)^2 / (2 * 0.04))
        (0.3, 2.0, math.exp(-2.0)),  # USB's n_sigma = 2: standard deviation sigma / 2
        (0.1, 1.0, math.exp(-2.0)),
    ],
)
def test_softmatch_weight_at_below_and_above_mu(confidence, n_sigma, expected):
    weight = truncated_gaussian_weight(torch.tensor([confidence]), torch.tensor(0.5), torch.tensor(0.04), n_sigma)
    assert weight.item() == pytest.approx(expected, rel=1e-6)


def _max_row(c, k=4):
    """A probability row over k classes whose maximum is c (on class 0)."""
    return [c] + [(1 - c) / (k - 1)] * (k - 1)


def test_softmatch_emas_after_two_steps_and_the_weight_uses_them():
    comp = _threshold("softmatch", k=4, softmatch_ema=0.9, softmatch_alignment=False, softmatch_n_sigma=1.0)
    policy = comp.policy
    assert policy.mu.item() == pytest.approx(0.25) and policy.var.item() == pytest.approx(1.0)
    # Step 1: confidences 0.4, 0.6, 0.8: mean 0.6, unbiased variance (0.04 + 0 + 0.04) / 2 = 0.04.
    comp.weigh(_batch(_probs(_max_row(0.4), _max_row(0.6), _max_row(0.8))))
    assert policy.mu.item() == pytest.approx(0.9 * 0.25 + 0.1 * 0.6)  # 0.285
    assert policy.var.item() == pytest.approx(0.9 * 1.0 + 0.1 * 0.04)  # 0.904
    # Step 2: confidences 0.3, 0.9: mean 0.6, unbiased variance (0.09 + 0.09) / 1 = 0.18.
    weight, metrics = comp.weigh(_batch(_probs(_max_row(0.3), _max_row(0.9))))
    mu2, var2 = 0.9 * 0.285 + 0.1 * 0.6, 0.9 * 0.904 + 0.1 * 0.18  # 0.3165, 0.8316
    assert policy.mu.item() == pytest.approx(mu2) and policy.var.item() == pytest.approx(var2)
    # The step's weight uses the updated mu and sigma: 0.3 is below mu2, 0.9 above.
    assert weight.tolist() == pytest.approx([math.exp(-((0.3 - mu2) ** 2) / (2 * var2)), 1.0])
    assert metrics["mask_rate"].item() == pytest.approx(weight.mean().item())
    epoch = comp.end_epoch(1, NO_VIEW)
    assert epoch == pytest.approx({"softmatch_mu": mu2, "softmatch_sigma": math.sqrt(var2)})
    assert comp.policy.thresholds() is None


def test_uniform_alignment_on_a_hand_case():
    # p_model = [0.7, 0.3]: [0.9, 0.1] * [0.5 / 0.7, 0.5 / 0.3] = [0.642857, 0.166667] -> [0.794118, 0.205882]
    aligned = uniform_alignment(_probs([0.9, 0.1], [0.5, 0.5]), torch.tensor([0.7, 0.3]))
    torch.testing.assert_close(aligned, _probs([0.794118, 0.205882], [0.3, 0.7]), rtol=0, atol=1e-5)


def test_softmatch_alignment_feeds_the_weight_only_and_its_ema_starts_from_the_first_batch():
    comp = _threshold("softmatch", k=2, softmatch_ema=0.9, softmatch_n_sigma=1.0)
    policy = comp.policy
    probs = _probs([0.9, 0.1], [0.5, 0.5])
    batch = _batch(probs.clone())
    comp.weigh(batch)
    # The first batch's mean is p_model itself (no EMA from uniform); aligned, the rows are [0.794118, 0.205882]
    # and [0.3, 0.7], whose maxima give mu.
    assert policy.p_model.tolist() == pytest.approx([0.7, 0.3])
    assert policy.mu.item() == pytest.approx(0.9 * 0.5 + 0.1 * (0.794118 + 0.7) / 2, abs=1e-6)
    # The aligned argmax of the second sample is class 1; its pseudo-label stays the raw argmax, class 0.
    assert torch.equal(batch.probs_u, probs) and batch.pseudo_labels.tolist() == [0, 0]
    # Second batch: p_model = 0.9 * [0.7, 0.3] + 0.1 * [0.2, 0.8].
    comp.weigh(_batch(_probs([0.2, 0.8], [0.2, 0.8])))
    assert policy.p_model.tolist() == pytest.approx([0.65, 0.35])


def test_softmatch_weights_with_and_without_alignment():
    """With decay 0 the estimates are the last batch's. Raw: confidences 0.9 and 0.8, mu = 0.85, var = 0.005, so
    a probe at 0.55 weighs exp(-0.3^2 / 0.01) = exp(-9). Aligned by p_model = [0.85, 0.15], the batch's maxima
    are 0.6136 and 0.5862 (mu = 0.5999) and the probe becomes [0.1774, 0.8226]: above mu, weight 1."""
    aligned = _threshold("softmatch", k=2, softmatch_ema=0.0, softmatch_n_sigma=1.0)
    raw = _threshold("softmatch", k=2, softmatch_ema=0.0, softmatch_n_sigma=1.0, softmatch_alignment=False)
    for comp in (aligned, raw):
        comp.weigh(_batch(_probs([0.9, 0.1], [0.8, 0.2])))
    probe = _probs([0.55, 0.45])
    assert raw.weights(probe).item() == pytest.approx(math.exp(-9.0), rel=1e-4)
    assert aligned.policy.mu.item() == pytest.approx((0.6136364 + 0.5862069) / 2, abs=1e-6)
    assert aligned.weights(probe).item() == 1.0


# ---- every new policy ------------------------------------------------------------------------------------------

NEW_POLICIES = ("flexmatch", "freematch", "softmatch")


# Settings under which three steps move each policy's state far enough to change its weights of a probe.
MOVING = {
    "flexmatch": {"tau": 0.9, "flexmatch_warmup": False},
    "freematch": {"freematch_ema": 0.5},
    "softmatch": {"softmatch_ema": 0.5},
}


@pytest.mark.parametrize("policy", NEW_POLICIES)
def test_policy_state_survives_a_checkpoint(policy):
    generator = torch.Generator().manual_seed(1)
    trained = _threshold(policy, k=4, n_unlabeled=20, **MOVING[policy])
    for _ in range(3):
        probs = torch.softmax(3 * torch.randn(8, 4, generator=generator), dim=1)
        trained.weigh(_batch(probs, torch.randint(20, (8,), generator=generator).tolist()))
    fresh = _threshold(policy, k=4, n_unlabeled=20, **MOVING[policy])
    probe = torch.softmax(3 * torch.randn(32, 4, generator=generator), dim=1)
    assert not torch.equal(fresh.weights(probe), trained.weights(probe))  # the state matters for this probe
    fresh.load_state_dict(trained.state_dict())
    assert torch.equal(fresh.weights(probe), trained.weights(probe))
    more = torch.softmax(torch.randn(8, 4, generator=generator), dim=1)
    assert torch.equal(fresh.weigh(_batch(more))[0], trained.weigh(_batch(more))[0])  # and it goes on alike


def test_policy_parameters_are_declared_and_act_only_under_their_policy():
    params = Threshold.all_params()
    assert params["tau"].acts({"policy": "flexmatch"}) and params["tau"].acts({"policy": "fixed"})
    for name in NEW_POLICIES:
        own = [key for key in POLICIES.get(name).params if key.startswith(name)]
        assert own, f"{name} declares no parameters of its own"
        for key in own:
            assert params[key].acts({"policy": name}) and not params[key].acts({"policy": "adaptive"})


@pytest.fixture(scope="module")
def faces():
    return load_dataset("synthfer", scale=0.05, image_size=32)


# scale 0.05 has 14 fear faces: the presets' 10 labeled and 2 for validation
TINY = ["data.val_per_class=2", "trainer.epochs=1", "trainer.steps_per_epoch=2", "trainer.batch_size=8", "trainer.mu=2",
        "trainer.eval_unlabeled=32"]  # fmt: skip


@pytest.mark.parametrize("policy", NEW_POLICIES)
@pytest.mark.parametrize("preset", ["fixmatch", "lion"])
def test_each_policy_trains_with_a_preset_and_beside_lions_negative_learning(faces, policy, preset):
    """``--config fixmatch|lion --set components.threshold.policy=X``: one epoch runs, every loss is finite, and
    the policy's per-epoch metrics reach the epoch's row."""
    config = load_config(f"presets/{preset}.yaml", [*TINY, f"components.threshold.policy={policy}"])
    metrics = Trainer(config, faces).train_epoch()
    losses = {k: v for k, v in metrics.items() if k.startswith("train_loss")}
    assert all(math.isfinite(v) for v in losses.values())
    assert ("train_loss_negative" in losses) == (preset == "lion")
    if policy == "softmatch":
        assert {"softmatch_mu", "softmatch_sigma"} <= set(metrics)
    else:
        assert all(f"threshold_{name}" in metrics for name in faces.class_names)


@pytest.mark.parametrize("policy", NEW_POLICIES)
def test_a_run_resumed_from_a_checkpoint_matches_an_uninterrupted_one(faces, policy):
    """The policy's state travels through a saved checkpoint: epoch 2 after a resume is epoch 2 of a straight run."""
    extra = ["components.fairness.enabled=true"] if policy == "freematch" else []
    config = load_config(
        "presets/lion.yaml", [*TINY, "trainer.epochs=2", f"components.threshold.policy={policy}", *extra]
    )
    full = Trainer(config, faces).fit()
    first = Trainer(config, faces)
    first.train_epoch()
    saved = io.BytesIO()
    torch.save(first.state_dict(), saved)
    saved.seek(0)
    resumed = Trainer(config, faces)
    resumed.load_state_dict(torch.load(saved, weights_only=True))
    assert resumed.fit() == full


def test_freematch_with_its_fairness_loss_trains(faces):
    overrides = [*TINY, "components.threshold.policy=freematch", "components.fairness.enabled=true"]
    metrics = Trainer(load_config("presets/fixmatch.yaml", overrides), faces).train_epoch()
    assert math.isfinite(metrics["train_loss_fairness"])


def test_fairness_with_another_policy_is_refused_before_training():
    refused = r"presets/lion.yaml: components\.fairness needs components\.threshold\.policy"
    with pytest.raises(ConfigError, match=refused):
        load_config("presets/lion.yaml", [*TINY, "components.fairness.enabled=true"])


@pytest.mark.parametrize("policy", NEW_POLICIES)
def test_the_policy_and_fairness_read_nothing_back_during_a_step(faces, policy):
    """The policy's weighing and updates and the fairness loss stay on the device. Scoped to these components, so
    that it holds whatever the rest of the step does (tests/test_host_sync.py checks the whole step)."""
    from test_host_sync import HostReads  # pytest puts tests/ on the path (no __init__.py there)

    extra = ["components.fairness.enabled=true"] if policy == "freematch" else []
    config = load_config("presets/lion.yaml", [*TINY, f"components.threshold.policy={policy}", *extra])
    trainer = Trainer(config, faces)
    trainer.train_epoch()
    seen: list[str] = []
    for component in (c for c in trainer.components if c.name in ("threshold", "fairness")):
        for hook in ("weigh", "weights", "loss", "after_step"):
            original = getattr(component, hook)

            def watched(*args, _original=original, **kwargs):
                with HostReads() as reads:
                    out = _original(*args, **kwargs)
                seen.extend(reads.reads)
                return out

            setattr(component, hook, watched)
    for i in range(2):
        trainer.step(i)
    assert seen == [], f"a step read the device's data on the host: {sorted(set(seen))}"


def test_the_shipped_study_validates_and_every_variant_builds():
    """search_spaces/threshold_policies.yaml: 6 of its 11 variants x 3 seeds as shipped (each policy once, and
    LION), selected on validation; every variant's components build (the fairness loss sits only beside the
    freematch policy), with the policy it names."""
    from ablate.config.study import load_study, trial_config

    study = load_study("search_spaces/threshold_policies.yaml")
    assert study.search["metric"] == "best_val_acc" and study.base["data"]["val_per_class"] == 20
    assert study.params["trainer.seed"] == {"grid": [0, 1, 2]}
    shipped = study.params["variant"]["grid"]
    assert set(shipped) < set(study.variants) and {f"{v}_neg" for v in shipped if v != "lion"} <= set(study.variants)
    policies = {}
    for variant in study.variants:
        config = trial_config(study.base, study.variants, {"variant": variant, "trainer.seed": 0})
        built = {c.name: c for c in build_components(config, _ctx(k=7, n_unlabeled=10))}
        policies[variant] = config["components"]["threshold"]["policy"]
        assert ("negative" in built) == (variant.endswith("_neg") or variant == "lion")
        assert ("fairness" in built) == (policies[variant] == "freematch")
        assert ("contrastive" in built) == variant.startswith("adacm")
    assert set(policies.values()) == {"fixed", "flexmatch", "freematch", "softmatch", "adaptive"}
