"""FixMatch, FlexMatch, FreeMatch and SoftMatch as their code runs them (issue 22): one weak view, FixMatch's
cutout, learning-rate schedule and weight decay, FlexMatch's unlabeled pool; each on a hand-computed case."""

import math

import pytest
import torch

from ablate.augment import Augmenter
from ablate.config.run import load_config
from ablate.data import load_dataset
from ablate.errors import ConfigError
from ablate.training.trainer import Trainer, Views, parameter_groups

TINY = [
    "data.options={scale: 0.05, image_size: 32}",
    "data.val_per_class=2",
    "trainer.epochs=1",
    "trainer.steps_per_epoch=1",
    "trainer.batch_size=4",
    "trainer.mu=2",
    "trainer.eval_unlabeled=16",
    "trainer.forward=separate",
    "trainer.background_forward=false",
    "trainer.overlap=false",
]


@pytest.fixture(scope="module")
def faces():
    return load_dataset("synthfer", scale=0.05, image_size=32)


def fixmatch(*extra):
    return load_config("presets/fixmatch_fast.yaml", TINY + list(extra))


# ---- augment.weak_views -----------------------------------------------------------------------------------


def test_one_weak_view_gives_its_own_pseudo_label_not_the_two_view_mean(faces):
    """View 1 says class 0 with 0.6; view 2 says class 1 with 0.9. Two views: mean (0.35, 0.65), class 1 at 0.65;
    one view: (0.6, 0.4), class 0 at 0.6."""
    p1, p2 = torch.tensor([[0.6, 0.4]]), torch.tensor([[0.1, 0.9]])
    views = Views(p1, p1.log(), p2.log(), p1, p1, p2)
    two = Trainer(fixmatch("augment.weak_views=2"), faces)
    one = Trainer(fixmatch("augment.weak_views=1"), faces)
    both = two._weak_probs(views, torch.zeros(1), torch.zeros(1))
    assert torch.allclose(both, torch.tensor([[0.35, 0.65]]))
    single = one._weak_probs(views, torch.zeros(1), torch.zeros(0))
    assert torch.allclose(single, torch.tensor([[0.6, 0.4]]))
    assert both.argmax(1).item() == 1 and single.argmax(1).item() == 0


@pytest.mark.parametrize("weak_views, forwards", [(2, 4), (1, 3)])
def test_one_weak_view_makes_one_forward_fewer_and_feeds_the_policy_its_softmax(faces, monkeypatch, weak_views,
                                                                                 forwards):  # fmt: skip
    trainer = Trainer(fixmatch(f"augment.weak_views={weak_views}"), faces)
    calls = []
    trainer.model.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    seen = []
    weigh = trainer.policy.weigh
    monkeypatch.setattr(trainer.policy, "weigh", lambda batch: seen.append(batch) or weigh(batch))
    trainer.step(0)
    assert calls == [4, 8, 8, 8][:forwards]  # labeled, strong, then the weak view(s)
    batch = seen[0]
    assert len(batch.logits_w2) == (8 if weak_views == 2 else 0)
    probs = [torch.softmax(z, 1) for z in (batch.logits_w1, batch.logits_w2) if len(z)]
    assert torch.allclose(batch.probs_u, sum(probs) / len(probs))


def test_a_component_that_reads_two_weak_views_refuses_one():
    with pytest.raises(ConfigError, match=r"components.contrastive reads 2 weak views.*augment.weak_views is 1"):
        load_config("presets/adacm_fast.yaml", ["augment.weak_views=1"])


# ---- FixMatch's cutout: a fixed half side -------------------------------------------------------------------


def test_fixed_cutout_is_half_the_side_16_by_16_of_32_wherever_the_border_does_not_clip_it():
    """cutout 0.5 fixed at 32 px: every square that touches no border is 16 x 16 = 256 pixels (uniform: its side
    is U[0, 16], a third of that area on average); the clipped ones are 16 long on each side they do not touch."""
    x = torch.randint(1, 256, (256, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))

    def squares(side):
        aug = Augmenter(32, strong_ops=0, flip_p=0.0, crop_p=0.0, cutout=0.5, cutout_side=side)
        changed = (aug.strong(x, torch.Generator().manual_seed(1)) != aug.normalize(x)).any(1)
        for mask in changed:
            rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
            if len(rows):
                yield rows, cols, int(mask.sum())

    interior = 0
    for rows, cols, area in squares("fixed"):
        for lines in (rows, cols):
            assert len(lines) == 16 or lines.min() == 0 or lines.max() == 31
        if rows.min() > 0 and rows.max() < 31 and cols.min() > 0 and cols.max() < 31:
            assert area == 256
            interior += 1
    assert interior > 50
    uniform = [area for rows, cols, area in squares("uniform")]
    assert sum(uniform) / len(uniform) < 128  # U[0, 16]: E[side^2] = 256 / 3, before clipping


# ---- FixMatch's learning-rate schedule and weight decay ---------------------------------------------------


def test_cosine_7_16_schedule_ends_at_0_03_cos_7_pi_16(faces):
    """K = 4 steps from lr0 = 0.03: after step k the lr is 0.03 cos(7 pi k / 64); after the last, 0.03 cos(7 pi /
    16) = 0.0058527 (ablate's plain cosine ends at 0)."""
    config = fixmatch("trainer.optimizer=sgd", "trainer.lr=0.03", "trainer.schedule=cosine_7_16",
                      "trainer.epochs=2", "trainer.steps_per_epoch=2")  # fmt: skip
    trainer = Trainer(config, faces)
    lrs = []
    trainer.fit(on_step=lambda i, metrics: lrs.append(trainer.optimizer.param_groups[0]["lr"]))
    assert lrs == pytest.approx([0.03 * math.cos(7 * math.pi * k / 64) for k in (1, 2, 3, 4)], rel=1e-12)
    assert lrs[-1] == pytest.approx(0.0058527, abs=1e-7)


def test_weight_decay_can_skip_biases_and_batch_norm():
    """SGD with lr 1, weight decay 0.5 and zero gradients: a decayed tensor of 2s becomes 2 - 0.5 * 2 = 1, a
    skipped one stays 2. Decayed: the conv and linear weights; skipped: their biases and batch norm's weight and
    bias."""
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.Flatten(), torch.nn.Linear(2, 3)
    )
    conv, bn, _, linear = model
    skip = parameter_groups(model, 0.5, decay_bn_bias=False)
    assert [g["weight_decay"] for g in skip] == [0.5, 0.0]
    assert [id(p) for p in skip[0]["params"]] == [id(conv.weight), id(linear.weight)]
    assert {id(p) for p in skip[1]["params"]} == {id(conv.bias), id(bn.weight), id(bn.bias), id(linear.bias)}
    assert [len(g["params"]) for g in parameter_groups(model, 0.5, decay_bn_bias=True)] == [6]
    for p in model.parameters():
        p.data.fill_(2.0)
        p.grad = torch.zeros_like(p)
    torch.optim.SGD(skip, lr=1.0, weight_decay=0.5).step()
    assert conv.weight.unique().tolist() == [1.0] and linear.weight.unique().tolist() == [1.0]
    assert all(p.unique().tolist() == [2.0] for p in (conv.bias, bn.weight, bn.bias, linear.bias))


def test_the_trainer_builds_its_optimizer_from_those_groups(faces):
    trainer = Trainer(fixmatch("trainer.optimizer=sgd", "trainer.weight_decay=0.0005",
                               "trainer.decay_bn_bias=false"), faces)  # fmt: skip
    groups = trainer.optimizer.param_groups
    assert [g["weight_decay"] for g in groups] == [0.0005, 0.0]
    assert all(p.ndim > 1 for p in groups[0]["params"]) and all(p.ndim == 1 for p in groups[1]["params"])
    assert sum(len(g["params"]) for g in groups) == len(list(trainer.model.parameters()))
