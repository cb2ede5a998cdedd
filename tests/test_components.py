"""The components' formulas on small hand-computed cases."""

import math

import pytest
import torch
import torch.nn.functional as F

from ablate.components import (
    COMPONENTS,
    Component,
    Context,
    EpochView,
    Role,
    StepBatch,
    check_enabled,
    register_component,
    step_order,
)
from ablate.components.contrastive import nt_xent
from ablate.components.ema import ema_update
from ablate.components.negative import (
    Negative,
    candidate_sets,
    complementary_count,
    complementary_loss,
    negative_correctness,
    partial_label_loss,
    select_complementary,
    update_confidence,
)
from ablate.components.policies import hard_mask
from ablate.components.policies.adaptive import adaptive_thresholds, correct_confidence_stats
from ablate.components.pseudo_label import pseudo_label_loss
from ablate.components.threshold import Threshold
from ablate.config.run import resolve_components
from ablate.errors import ConfigError

# ---- threshold ----------------------------------------------------------------------------------------


def test_adaptive_threshold_formula_floor_and_empty_class():
    conf_sum = torch.tensor([1.96, 0.0, 0.5])
    count = torch.tensor([2.0, 0.0, 1.0])
    t = adaptive_thresholds(conf_sum, count, epoch=5, floor=0.8, scale=0.97)
    # class 0: 0.97 * 0.98 / (1 + e^-5) = 0.944238...; class 1: no correct sample -> floor; class 2: 0.4817 -> floor
    assert t.tolist() == pytest.approx([0.97 * 0.98 / (1 + math.exp(-5)), 0.8, 0.8], abs=1e-6)
    assert t[0].item() == pytest.approx(0.944238, abs=1e-5)


def test_adaptive_threshold_epoch_factor():
    conf_sum, count = torch.tensor([1.0]), torch.tensor([1.0])
    # At t = 0 the factor is 1/2; with floor 0 the margin is scale / 2.
    assert adaptive_thresholds(conf_sum, count, epoch=0, floor=0.0, scale=0.97).item() == pytest.approx(0.485)
    assert adaptive_thresholds(conf_sum, count, epoch=1, floor=0.0, scale=0.97).item() == pytest.approx(
        0.97 / (1 + math.exp(-1))
    )


def test_mask_looks_up_the_threshold_of_the_predicted_class():
    probs = torch.tensor([[0.85, 0.10, 0.05], [0.10, 0.85, 0.05], [0.05, 0.05, 0.90]])
    thresholds = torch.tensor([0.80, 0.90, 0.90])
    assert hard_mask(probs, thresholds).tolist() == [1.0, 0.0, 1.0]


def test_correct_confidence_stats_counts_correct_samples_by_true_class():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
    labels = torch.tensor([0, 1, 1, 0])  # correct: samples 0 (0.7) and 2 (0.8)
    conf_sum, count = correct_confidence_stats(probs, labels, 3)
    assert conf_sum.tolist() == pytest.approx([0.7, 0.8, 0.0])
    assert count.tolist() == [1.0, 1.0, 0.0]


NO_VIEW = EpochView(lambda *args: pytest.fail("this policy must not ask for predictions"))


def _ctx(k=3, n_unlabeled=4):
    return Context(num_classes=k, num_unlabeled=n_unlabeled, steps_per_epoch=1, epochs=2, device=torch.device("cpu"))


def _batch(logits_l, labels, probs_u, **kw):
    n = len(probs_u)
    k = probs_u.shape[1]
    zeros = torch.zeros(n, k)
    defaults = dict(
        logits_w1=zeros,
        logits_w2=zeros,
        logits_s=zeros,
        feat_w1=zeros,
        feat_w2=zeros,
        u_index=torch.arange(n),
        progress=0.0,
        epoch=0.0,
    )
    defaults.update(kw)
    return StepBatch(logits_l=logits_l, labels=labels, probs_u=probs_u, **defaults)


def test_threshold_component_starts_at_floor_and_updates_after_the_epoch():
    hp = resolve_components({"threshold": {"enabled": True, "stats": "train_steps"}, "supervised": {"enabled": True}})[
        "threshold"
    ]
    comp = Threshold(hp, _ctx())
    assert comp.policy.thresholds().tolist() == pytest.approx([0.8] * 3)
    labeled = torch.tensor([[0.98, 0.01, 0.01], [0.96, 0.02, 0.02], [0.1, 0.1, 0.8]]).log()
    comp.after_step(_batch(labeled, torch.tensor([0, 0, 1]), torch.full((2, 3), 1 / 3)), model=None)
    metrics = comp.end_epoch(4, NO_VIEW)
    expected0 = 0.97 * 0.97 / (1 + math.exp(-4))  # mean of 0.98 and 0.96
    assert comp.policy.thresholds().tolist() == pytest.approx([expected0, 0.8, 0.8], abs=1e-6)
    assert metrics["threshold_0"] == pytest.approx(expected0, abs=1e-6)
    assert comp.policy.count.sum() == 0  # the epoch's statistics start afresh


def test_threshold_step_update_uses_a_running_window():
    hp = resolve_components(
        {
            "threshold": {"enabled": True, "stats": "train_steps", "update": "step", "window": 2},
            "supervised": {"enabled": True},
        }
    )["threshold"]
    comp = Threshold(hp, _ctx())
    probs_u = torch.full((2, 3), 1 / 3)
    for conf in (0.90, 0.98, 0.94):  # one correct class-0 sample per step; the window keeps the last two
        comp.after_step(
            _batch(
                torch.tensor([[conf, (1 - conf) / 2, (1 - conf) / 2]]).log(), torch.tensor([0]), probs_u, epoch=10.0
            ),
            None,
        )
    assert comp.policy.thresholds()[0].item() == pytest.approx(0.97 * 0.96 / (1 + math.exp(-10)), abs=1e-6)


def test_fixed_threshold_never_moves():
    hp = resolve_components(
        {"threshold": {"enabled": True, "policy": "fixed", "tau": 0.7}, "supervised": {"enabled": True}}
    )["threshold"]
    comp = Threshold(hp, _ctx())
    comp.after_step(_batch(torch.tensor([[5.0, 0, 0]]), torch.tensor([0]), torch.full((1, 3), 1 / 3)), None)
    comp.end_epoch(9, NO_VIEW)
    assert comp.policy.thresholds().tolist() == pytest.approx([0.7] * 3)


def test_labeled_eval_ema_statistics_come_from_the_teacher_on_the_labeled_set():
    """Ada-CM's code scores the whole labeled set with the EMA model after each epoch: a hand computation on a
    tiny labeled set whose teacher predictions are known."""
    hp = resolve_components(
        {"threshold": {"enabled": True, "stats": "labeled_eval_ema", "stats_augment": "none"},
         "supervised": {"enabled": True}}
    )["threshold"]  # fmt: skip
    comp = Threshold(hp, _ctx())
    teacher_probs = torch.tensor([[0.99, 0.005, 0.005], [0.95, 0.03, 0.02], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1]])
    labels = torch.tensor([0, 0, 1, 1])  # correct: 0.99 and 0.95 of class 0, 0.7 of class 1; sample 3 is wrong
    asked = []

    def predict(model, subset, augment):
        asked.append((model, subset, augment))
        return teacher_probs, labels

    # the steps' own labeled predictions are ignored under this source
    comp.after_step(_batch(torch.tensor([[0.0, 9.0, 0.0]]), torch.tensor([1]), torch.full((1, 3), 1 / 3)), None)
    comp.end_epoch(3, EpochView(predict))
    factor = 0.97 / (1 + math.exp(-3))
    assert asked == [("teacher", "labeled", "none")]
    assert comp.policy.thresholds().tolist() == pytest.approx([max(0.8, factor * 0.97), 0.8, 0.8], abs=1e-6)
    assert factor * 0.97 > 0.8 > factor * 0.7  # class 0 rises above the floor, class 1 stays on it


def test_adaptive_policy_defaults_to_ada_cms_rule_the_teachers_pass_over_the_weakly_augmented_labeled_set():
    """`policy: adaptive` alone is Ada-CM's rule (main.py:148): after epoch 2 the margins are the teacher's
    labeled-set confidences, 0.97 * 0.98 / (1 + e^-2) = 0.8372 for class 0; the steps' predictions are ignored."""
    hp = resolve_components({"threshold": {"enabled": True, "policy": "adaptive"}, "supervised": {"enabled": True}})
    assert hp["threshold"]["stats"] == "labeled_eval_ema" and hp["threshold"]["stats_augment"] == "weak"
    comp = Threshold(hp["threshold"], _ctx())
    asked = []

    def predict(model, subset, augment):
        asked.append((model, subset, augment))
        return torch.tensor([[0.98, 0.01, 0.01], [0.1, 0.1, 0.8]]), torch.tensor([0, 1])

    comp.after_step(_batch(torch.tensor([[0.0, 9.0, 0.0]]), torch.tensor([1]), torch.full((1, 3), 1 / 3)), None)
    comp.end_epoch(2, EpochView(predict))
    assert asked == [("teacher", "labeled", "weak")]
    assert comp.policy.thresholds().tolist() == pytest.approx([0.97 * 0.98 / (1 + math.exp(-2)), 0.8, 0.8], abs=1e-6)


# ---- pseudo-label ---------------------------------------------------------------------------------------


def test_pseudo_label_loss_averages_over_the_whole_unlabeled_batch():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [3.0, 0.0]])
    pseudo = torch.tensor([0, 0, 1, 1])
    mask = torch.tensor([1.0, 1.0, 0.0, 0.0])
    expected = (-math.log(math.exp(2) / (math.exp(2) + 1)) - math.log(1 / (1 + math.e))) / 4
    assert pseudo_label_loss(logits, pseudo, mask).item() == pytest.approx(expected, rel=1e-6)


# ---- contrastive ----------------------------------------------------------------------------------------


def test_nt_xent_against_a_direct_computation():
    z1 = F.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]), dim=1)
    z2 = F.normalize(torch.tensor([[0.9, 0.1], [0.5, 0.9], [-0.2, 1.0]]), dim=1)
    t = 0.5
    z = torch.cat([z1, z2])
    n = 3
    total = 0.0
    for i in range(2 * n):
        pos = (i + n) % (2 * n)
        denom = sum(math.exp(float(z[i] @ z[j]) / t) for j in range(2 * n) if j != i)
        total += -math.log(math.exp(float(z[i] @ z[pos]) / t) / denom)
    assert nt_xent(z1, z2, t).item() == pytest.approx(total / (2 * n), rel=1e-5)


def test_nt_xent_over_members_equals_nt_xent_of_the_members_alone():
    """Ada-CM's subset II: masking the samples above the threshold out of the whole batch gives exactly the
    NT-Xent of the samples below it."""
    g = torch.Generator().manual_seed(0)
    z1 = F.normalize(torch.randn(6, 4, generator=g), dim=1)
    z2 = F.normalize(torch.randn(6, 4, generator=g), dim=1)
    below = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    keep = below.bool()
    assert nt_xent(z1, z2, 0.07, below).item() == pytest.approx(nt_xent(z1[keep], z2[keep], 0.07).item(), rel=1e-5)


def test_nt_xent_weighs_anchors_by_membership():
    g = torch.Generator().manual_seed(1)
    z1, z2 = F.normalize(torch.randn(3, 4, generator=g), dim=1), F.normalize(torch.randn(3, 4, generator=g), dim=1)
    member = torch.tensor([1.0, 0.5, 0.25])
    z = torch.cat([z1, z2])
    total, weights = 0.0, 0.0
    for i in range(6):
        pos = (i + 3) % 6
        denom = sum(math.exp(float(z[i] @ z[j]) / 0.1) for j in range(6) if j != i)
        total += member[i % 3].item() * -math.log(math.exp(float(z[i] @ z[pos]) / 0.1) / denom)
        weights += member[i % 3].item()
    assert nt_xent(z1, z2, 0.1, member).item() == pytest.approx(total / weights, rel=1e-5)


def test_nt_xent_is_zero_without_members():
    z = F.normalize(torch.ones(3, 4), dim=1)
    assert nt_xent(z, z, 0.07, torch.zeros(3)).item() == 0.0
    assert torch.isfinite(nt_xent(z, z, 0.07, torch.tensor([1.0, 0.0, 0.0])))  # one member: its positive only


# ---- negative -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rho,members",
    [(0.4, [1]), (0.7, [1, 2]), (0.8, [1, 2]), (0.81, [0, 1, 2]), (0.99, [0, 1, 2])],  # 0.99 is capped at K-1 = 3
)
def test_candidate_set_is_the_fewest_top_classes_reaching_rho(rho, members):
    probs = torch.tensor([[0.15, 0.5, 0.3, 0.05]])
    expected = torch.zeros(1, 4, dtype=torch.bool)
    expected[0, members] = True
    assert torch.equal(candidate_sets(probs, rho), expected)


def test_schedule_end_points():
    assert complementary_count("linear", 0.0, 0.0, 7, start=1, step_epochs=1) == 1
    assert complementary_count("linear", 0.5, 5.0, 7, start=1, step_epochs=1) == 3  # 1 + floor(5 * 0.5)
    assert complementary_count("linear", 1.0, 10.0, 7, start=1, step_epochs=1) == 6
    assert complementary_count("step", 0.0, 0.0, 7, start=2, step_epochs=2) == 2
    assert complementary_count("step", 0.3, 4.0, 7, start=2, step_epochs=2) == 4
    assert complementary_count("step", 1.0, 100.0, 7, start=2, step_epochs=2) == 6
    assert complementary_count("none", 0.0, 0.0, 7, start=1, step_epochs=1) == 6


def test_linear_schedule_reaches_k_minus_1_at_the_last_step():
    """K = 7, start 1, N = 7 steps (progress s / 7): 1 + floor(5 s / 6) = 1, 1, 2, 3, 4, 5, 6; the last step gets
    all K - 1 = 6 complementary labels (without rescaling it would be 1 + floor(5 * 6 / 7) = 5)."""
    hp = resolve_components({"negative": {"enabled": True}, "threshold": {"enabled": True},
                             "supervised": {"enabled": True}})["negative"]  # fmt: skip
    ctx = Context(num_classes=7, num_unlabeled=4, steps_per_epoch=7, epochs=1, device=torch.device("cpu"))
    negative = Negative(hp, ctx)
    probs = torch.full((1, 7), 1 / 7)
    counts = [negative.label_sets(probs, s / 7, s / 7)[2] for s in range(7)]
    assert counts == [1, 1, 2, 3, 4, 5, 6]
    assert negative.label_sets(probs, 1.0, 1.0)[2] == 6  # the evaluation after the last epoch


def test_complementary_labels_are_the_least_probable_outside_the_set():
    probs = torch.tensor([[0.15, 0.5, 0.3, 0.05]])
    candidates = candidate_sets(probs, 0.7)  # {1, 2}
    assert select_complementary(probs, candidates, 1).nonzero()[:, 1].tolist() == [3]
    assert select_complementary(probs, candidates, 2).nonzero()[:, 1].tolist() == [0, 3]
    assert select_complementary(probs, candidates, 5).nonzero()[:, 1].tolist() == [0, 3]


def test_complementary_loss_is_mean_of_minus_log_one_minus_p():
    logits = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 3.0]])
    p = torch.softmax(logits, 1)
    chosen = torch.tensor([[True, False, True], [False, True, False]])
    expected = -(torch.log(1 - p[0, 0]) + torch.log(1 - p[0, 2]) + torch.log(1 - p[1, 1])) / 3
    assert complementary_loss(logits, chosen, torch.ones(2)).item() == pytest.approx(expected.item(), rel=1e-6)
    # a sample outside subset II (membership 0) takes no part
    only_first = -(torch.log(1 - p[0, 0]) + torch.log(1 - p[0, 2])) / 2
    assert complementary_loss(logits, chosen, torch.tensor([1.0, 0.0])).item() == pytest.approx(only_first.item())


def test_complementary_loss_is_finite_when_p_is_one():
    logits = torch.tensor([[200.0, 0.0, 0.0]])
    loss = complementary_loss(logits, torch.tensor([[True, False, False]]), torch.ones(1))
    assert torch.isfinite(loss) and loss.item() == pytest.approx(200 - math.log(2), rel=1e-4)


def test_complementary_loss_zero_without_pairs():
    assert complementary_loss(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.bool), torch.ones(2)).item() == 0.0


def test_confidence_table_update():
    table = torch.full((1, 4), 0.25)
    probs = torch.tensor([[0.3, 0.5, 0.15, 0.05]])
    candidates = torch.tensor([[True, True, False, False]])
    # restricted to S and renormalised: [0.5, 0.5, 0, 0]; argmax in S is class 1
    updated = update_confidence(table, probs, candidates, momentum=0.9)
    assert updated.tolist() == [pytest.approx([0.45, 0.55, 0.0, 0.0])]
    # a table with no mass on S restarts uniform on S; the argmax within S is class 2 although 0 is larger
    table = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    candidates = torch.tensor([[False, True, True, False]])
    probs = torch.tensor([[0.6, 0.1, 0.25, 0.05]])
    assert update_confidence(table, probs, candidates, momentum=0.8).tolist() == [pytest.approx([0.0, 0.4, 0.6, 0.0])]


def test_partial_label_loss():
    logits = torch.tensor([[1.0, 0.0, -1.0]])
    q = torch.tensor([[0.7, 0.3, 0.0]])
    log_p = torch.log_softmax(logits, 1)[0]
    expected = -(0.7 * log_p[0] + 0.3 * log_p[1])
    candidates = torch.tensor([[True, True, False]])
    assert partial_label_loss(logits, q, candidates, torch.ones(1)).item() == pytest.approx(expected.item(), rel=1e-6)
    # averaged over members: a second sample with membership 0 changes nothing
    two = partial_label_loss(logits.repeat(2, 1), q.repeat(2, 1), candidates.repeat(2, 1), torch.tensor([1.0, 0.0]))
    assert two.item() == pytest.approx(expected.item(), rel=1e-6)


def test_negative_correctness_against_hidden_labels():
    candidates = torch.tensor([[True, True, False], [True, False, False]])
    complementary = torch.tensor([[False, False, True], [False, True, True]])
    true = torch.tensor([1, 2])
    soft = torch.tensor([[0.2, 0.8, 0.0], [0.3, 0.0, 0.7]])
    m = {
        k: (r.num / r.den).item()
        for k, r in negative_correctness(candidates, complementary, true, soft, torch.ones(2)).items()
    }
    assert m["candidate_holds_true"] == 0.5
    assert m["complementary_truly_wrong"] == pytest.approx(2 / 3)  # sample 2's class 2 is its true class
    assert m["candidate_soft_mass"] == pytest.approx((1.0 + 0.3) / 2)
    assert m["complementary_soft_mass"] == pytest.approx((0.0 + 0.0 + 0.7) / 3)


# ---- ema ------------------------------------------------------------------------------------------------


def test_ema_update_moves_parameters_and_copies_buffers():
    teacher, student = torch.nn.BatchNorm1d(2), torch.nn.BatchNorm1d(2)
    with torch.no_grad():
        teacher.weight.fill_(1.0)
        student.weight.fill_(0.0)
        student.running_mean.fill_(3.0)
    ema_update(teacher, student, decay=0.9)
    assert teacher.weight.tolist() == pytest.approx([0.9, 0.9])
    assert teacher.running_mean.tolist() == [3.0, 3.0]


# ---- what components declare ------------------------------------------------------------------------


def test_every_component_declares_a_role_and_the_order_follows_the_roles():
    for name in COMPONENTS.names():
        assert isinstance(COMPONENTS.get(name).role, Role)
    order = step_order(["ema", "negative", "supervised", "threshold", "pseudo_label"])
    assert order[0] == "threshold" and order[-1] == "ema"  # policy first, teacher last
    assert set(order[1:-1]) == {"negative", "pseudo_label", "supervised"}


def test_a_loss_that_needs_another_component_runs_after_it():
    @register_component("test_first")
    class First(Component):
        pass

    @register_component("test_second")
    class Second(Component):
        needs = ("test_first",)

    try:
        assert (First.name, Second.name) == ("test_first", "test_second")  # the registry names what it registers
        assert step_order(["test_second", "test_first"]) == ["test_first", "test_second"]
    finally:
        for name in ("test_first", "test_second"):
            COMPONENTS.forget(name)
    assert "test_first" not in COMPONENTS and "test_second" not in COMPONENTS


def test_a_forgotten_name_is_an_error():
    with pytest.raises(KeyError, match="component 'nothing_here' is not registered"):
        COMPONENTS.forget("nothing_here")


def test_every_registered_component_and_policy_carries_its_registered_name():
    from ablate.components.policies import POLICIES

    for registry in (COMPONENTS, POLICIES):
        assert all(registry.get(name).name == name for name in registry.names())


@pytest.mark.parametrize(
    "enabled,message",
    [
        (["pseudo_label", "supervised"], "components.pseudo_label needs a policy component to be enabled"),
        (["threshold", "ema"], "enable at least one loss"),
    ],
)
def test_unmet_needs_and_no_loss_are_refused(enabled, message):
    with pytest.raises(ConfigError, match=message):
        check_enabled(enabled)


def test_policy_parameters_act_only_under_their_policy():
    params = Threshold.all_params()
    assert params["tau"].acts({"policy": "fixed"}) and not params["tau"].acts({"policy": "adaptive"})
    assert params["floor"].acts({"policy": "adaptive"}) and not params["floor"].acts({"policy": "fixed"})
    assert "weight" not in params  # a policy is not a loss: it has no weight
