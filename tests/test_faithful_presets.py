"""The faithful presets (Ada-CM's and FixMatch's official settings), their fast variants, and the fidelity ladder
between Ada-CM's two presets."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from ablate.config.params import flatten, load_yaml
from ablate.config.run import resolve_config
from ablate.config.study import build_study, merge
from ablate.data import load_dataset
from ablate.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ROOT / "presets"
LADDER = ROOT / "search_spaces" / "adacm_fidelity.yaml"


def resolved_preset(name: str, overrides: dict | None = None) -> dict:
    return resolve_config(merge(load_yaml(PRESETS / f"{name}.yaml"), overrides or {}))


# ---- Ada-CM ---------------------------------------------------------------------------------------------

# Ada-CM's official settings (hangyu94/Ada-CM at aca2b35) and where each comes from.
ADACM_OFFICIAL = {
    "model.name": "resnet18",  # models/backbone.py:16,21
    "model.head": "normalized",  # models/backbone.py:23-32
    "model.dropout": 0.5,  # models/backbone.py:23
    "data.options.image_size": 224,  # main.py:91
    "trainer.epochs": 20,  # main.py:28
    "trainer.steps_per_epoch": 800,  # main.py:49
    "trainer.batch_size": 16,  # main.py:32
    "trainer.mu": 1,  # main.py:109
    "trainer.optimizer": "adam",  # main.py:132
    "trainer.lr": 0.0005,  # main.py:34
    "trainer.weight_decay": 0.0,  # main.py:132
    "trainer.schedule": "none",  # main.py:330-335
    "trainer.forward": "separate",  # main.py:216-235
    "trainer.precision": "fp32",
    "augment.flip_p": 0.5,  # main.py:95
    "augment.pad_mode": "zeros",  # main.py:93
    "augment.crop_p": 0.5,  # main.py:92-94
    "augment.strong_ops": 3,  # dataset/raf.py:16
    "augment.op_p": 1.0,  # dataset/randaugment.py:172-174
    "augment.cutout": 0.5,  # dataset/randaugment.py:175
    "augment.magnitude": None,  # dataset/randaugment.py:173
    "augment.strong_order": "ops_first",  # dataset/raf.py:16
    "augment.cutout_fill": "adacm",  # dataset/randaugment.py:136
    "augment.interpolation": "nearest",  # PIL's default in dataset/randaugment.py
    "components.supervised.weight": 0.5,  # main.py:238
    "components.threshold.policy": "adaptive",
    "components.threshold.floor": 0.8,  # main.py:140,379
    "components.threshold.scale": 0.97,  # main.py:379
    "components.threshold.stats": "labeled_eval_ema",  # main.py:148
    "components.threshold.stats_augment": "weak",  # main.py:108,148
    "components.pseudo_label.weight": 1.0,  # main.py:238
    "components.contrastive.weight": 0.1,  # main.py:238
    "components.contrastive.temperature": 0.07,  # losses.py:11
    "components.ema.decay": 0.999,  # main.py:53
    "components.ema.buffers": "average",  # main.py:342-354
    "components.ema.student_decay": 0.02 * 0.0005,  # main.py:344,356
    "components.ema.teacher_pseudo_labels": False,  # main.py:216-219
}


def test_adacm_preset_carries_the_official_settings():
    config = flatten(resolved_preset("adacm"))
    for key, value in ADACM_OFFICIAL.items():
        assert config[key] == pytest.approx(value) if isinstance(value, float) else config[key] == value, key
    assert config["augment.pad_fraction"] * 224 == pytest.approx(8)  # RandomCrop(224, padding=8)
    assert all(config[f"components.{c}.enabled"] for c in ("supervised", "threshold", "pseudo_label", "contrastive"))
    assert not config["components.negative.enabled"]


# What adacm_fast changes, and nothing else (its header says why).
ADACM_FAST_CHANGES = {
    "model.name": "small_cnn",
    "model.head": "linear",
    "model.dropout": 0.0,
    "data.options.image_size": 64,  # synthfer's default size instead of 224
    "data.options.channel_order": "rgb",
    "trainer.epochs": 10,
    "trainer.steps_per_epoch": 100,
    "trainer.batch_size": 32,
    "trainer.mu": 7,
    "trainer.forward": "auto",
    "trainer.precision": "auto",
    "augment.pad_mode": "reflect",
    "augment.strong_ops": 2,
    "augment.strong_order": "geometry_first",
    "augment.cutout_fill": "mean",
    "augment.interpolation": "bilinear",
    "components.threshold.stats": "train_steps",
    "components.ema.buffers": "copy",
    "components.ema.student_decay": 0.0,
}


def test_adacm_fast_differs_from_the_official_preset_only_where_its_header_says():
    official, fast = flatten(resolved_preset("adacm")), flatten(resolved_preset("adacm_fast"))
    expected = ADACM_FAST_CHANGES
    changed = {key for key in official.keys() | fast.keys() if official.get(key) != fast.get(key)}
    assert changed == set(expected)
    assert {key: fast.get(key) for key in changed} == expected


# ---- FixMatch -------------------------------------------------------------------------------------------

FIXMATCH_REFERENCE = {
    "trainer.optimizer": "sgd",
    "trainer.lr": 0.03,
    "trainer.momentum": 0.9,
    "trainer.nesterov": True,
    "trainer.weight_decay": 0.0005,
    "trainer.decay_bn_bias": False,  # google fixmatch.py:122; kekmodel train.py:243-249
    "trainer.schedule": "cosine_7_16",  # google fixmatch.py:92-93; kekmodel train.py:43-55
    "trainer.batch_size": 64,
    "trainer.mu": 7,
    "components.threshold.policy": "fixed",
    "components.threshold.tau": 0.95,
    "components.supervised.weight": 1.0,
    "components.pseudo_label.weight": 1.0,
    "components.ema.decay": 0.999,
    "components.ema.buffers": "copy",
    "components.ema.student_decay": 0.0,
    "augment.strong_ops": 2,
    "augment.op_p": 0.5,
    "augment.flip_p": 0.5,
    "augment.crop_p": 1.0,
    "augment.pad_mode": "reflect",
    "augment.pad_fraction": 0.125,
    "augment.weak_views": 1,  # kekmodel train.py:368-370; google fixmatch.py:113
    "augment.cutout": 0.5,
    "augment.cutout_side": "fixed",  # kekmodel dataset/randaugment.py:219
    "data.labeled_in_unlabeled": True,  # kekmodel dataset/cifar.py:91-92
}


def test_fixmatch_preset_carries_the_reference_settings():
    config = flatten(resolved_preset("fixmatch"))
    assert {key: config[key] for key in FIXMATCH_REFERENCE} == FIXMATCH_REFERENCE
    assert config["trainer.epochs"] * config["trainer.steps_per_epoch"] == 2**20
    assert not config["components.contrastive.enabled"] and not config["components.negative.enabled"]


# ---- FlexMatch, FreeMatch, SoftMatch: USB's settings ------------------------------------------------------

# microsoft/Semi-supervised-learning at 1ef4cbe: config/classic_cv/<method>/<method>_cifar10_40_0.yaml, train.py,
# semilearn/core/utils/build.py, semilearn/datasets/cv_datasets/cifar.py, semilearn/datasets/augmentation/
USB_COMMON = {
    "data.labeled_in_unlabeled": True,  # include_lb_to_ulb (train.py:151-156)
    "trainer.epochs": 1024,
    "trainer.steps_per_epoch": 1024,  # num_train_iter 2^20
    "trainer.batch_size": 64,
    "trainer.mu": 7,  # uratio
    "trainer.optimizer": "sgd",
    "trainer.lr": 0.03,
    "trainer.momentum": 0.9,
    "trainer.nesterov": True,  # build.py:183
    "trainer.weight_decay": 0.0005,
    "trainer.decay_bn_bias": False,  # bn_wd_skip (build.py:183,199-206)
    "trainer.schedule": "cosine_7_16",  # build.py:217-241
    "trainer.forward": "concat",  # use_cat
    "trainer.precision": "fp32",  # amp False
    "augment.weak_views": 1,
    "augment.flip_p": 0.5,
    "augment.crop_p": 1.0,
    "augment.pad_fraction": 0.125,  # crop_ratio 0.875
    "augment.pad_mode": "reflect",
    "augment.strong_order": "geometry_first",
    "augment.strong_ops": 3,  # RandAugment(3, 5) (cifar.py:55)
    "augment.magnitude": None,
    "augment.op_p": 1.0,
    "augment.cutout": 0.5,
    "augment.cutout_side": "uniform",  # augmentation/randaugment.py:200-201
    "augment.cutout_fill": "adacm",  # (125, 123, 114), randaugment.py:138
    "components.supervised.weight": 1.0,
    "components.pseudo_label.weight": 1.0,  # ulb_loss_ratio
    "components.ema.decay": 0.999,  # ema_m
    "components.ema.buffers": "copy",  # core/utils/misc.py:157-158
    "components.ema.student_decay": 0.0,
    "components.ema.teacher_pseudo_labels": False,
}
USB_METHODS = {
    "flexmatch": {
        "components.threshold.policy": "flexmatch",
        "components.threshold.tau": 0.95,  # p_cutoff
        "components.threshold.flexmatch_warmup": True,  # thresh_warmup
        "components.threshold.flexmatch_mapping": "convex",  # flexmatch/utils.py:53
    },
    "freematch": {
        "components.threshold.policy": "freematch",
        "components.threshold.freematch_ema": 0.999,  # ema_p
        "components.fairness.enabled": True,
        "components.fairness.weight": 0.001,  # ent_loss_ratio
    },
    "softmatch": {
        "components.threshold.policy": "softmatch",
        "components.threshold.softmatch_ema": 0.999,  # ema_p
        "components.threshold.softmatch_n_sigma": 2.0,  # n_sigma
        "components.threshold.softmatch_alignment": True,  # dist_align, dist_uniform
    },
}


@pytest.mark.parametrize("method", sorted(USB_METHODS))
def test_usb_presets_carry_usbs_settings(method):
    config = flatten(resolved_preset(method))
    expected = {**USB_COMMON, **USB_METHODS[method]}
    assert {key: config[key] for key in expected} == expected
    enabled = {key.split(".")[1] for key, value in config.items() if key.endswith(".enabled") and value}
    losses = {"fairness"} if method == "freematch" else set()
    assert enabled == {"supervised", "threshold", "pseudo_label", "ema"} | losses


def test_threshold_study_variants_take_their_presets_policy_views_and_pool():
    """search_spaces/threshold_policies.yaml is built on the presets: each variant's policy settings, weak views and
    unlabeled pool are its preset's (its budget, optimiser and augmentation are the study's own)."""
    raw = load_yaml(ROOT / "search_spaces" / "threshold_policies.yaml")
    base_raw = {k: raw[k] for k in ("data", "model", "trainer", "components")}
    presets = {"fixmatch": "fixmatch", "flexmatch": "flexmatch", "freematch": "freematch", "softmatch": "softmatch",
               "adacm": "adacm", "lion": "adacm"}  # LION's margins are Ada-CM's official rule here  # fmt: skip
    for variant, preset in presets.items():
        for name in (variant, f"{variant}_neg") if variant != "lion" else (variant,):
            got = flatten(resolve_config(merge(base_raw, raw["variants"][name])))
            want = flatten(resolved_preset(preset))
            keys = [k for k in want if k.startswith("components.threshold.")]
            keys += ["augment.weak_views", "data.labeled_in_unlabeled"]
            assert {k: got[k] for k in keys} == {k: want[k] for k in keys}, name
            assert got["components.negative.enabled"] == (name.endswith("_neg") or name == "lion")


# ---- every preset runs ----------------------------------------------------------------------------------

TINY = {
    "data": {"options": {"scale": 0.05, "image_size": 32}, "val_per_class": 2},
    "trainer": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 8, "mu": 2, "eval_unlabeled": 16},
}


@pytest.fixture(scope="module")
def faces():
    return load_dataset("synthfer", scale=0.05, image_size=32)


@pytest.mark.parametrize("name", sorted(p.stem for p in PRESETS.glob("*.yaml")))
def test_every_preset_trains_an_epoch(faces, name):
    tiny = TINY
    if "labels_per_class" in load_yaml(PRESETS / f"{name}.yaml")["data"]:  # leaf's 14: the tiny set has 14 fear faces
        tiny = merge(TINY, {"data": {"labels_per_class": 10}})
    history = Trainer(resolved_preset(name, tiny), faces).fit()
    assert len(history) == 1 and 0.0 <= history[0]["test_acc"] <= 1.0


# ---- the fidelity ladder --------------------------------------------------------------------------------

# The scale every rung shares; the rungs differ only in the other keys.
SCALE_KEYS = ("data.", "trainer.", "model.weights")


def _ladder():
    raw = load_yaml(LADDER)
    study = build_study(raw, LADDER)
    base_raw = {k: raw[k] for k in ("data", "model", "trainer", "augment", "components")}
    rungs = study.params["variant"]["grid"]
    flat = {name: flatten(merge(base_raw, raw["variants"][name])) for name in rungs}
    return study, rungs, flat


def _method(config: dict) -> dict:
    return {k: v for k, v in flatten(config).items() if not k.startswith(SCALE_KEYS)}


def test_fidelity_ladder_validates_with_the_selection_and_seeds_asked_for():
    study, rungs, _ = _ladder()
    assert study.search["metric"] == "best_val_acc"
    assert study.base["data"]["val_per_class"] == 20 and study.base["data"]["labels"] == 1000
    assert study.base["data"]["name"] == "fer2013"
    assert study.params["trainer.seed"] == {"grid": [0, 1, 2]}
    assert list(study.variants) == rungs  # the grid walks the ladder in its order


# Each rung after the first applies one of issue 14's differences: the settings that make it, and nothing else.
RUNG_CHANGES = {
    "head": {"model.head", "model.dropout"},
    "stats": {"components.threshold.stats"},
    "augment": {"augment.strong_ops", "augment.strong_order", "augment.pad_mode", "augment.cutout_fill",
                "augment.interpolation"},
    "ema": {"components.ema.buffers", "components.ema.student_decay"},
    "small_cnn": {"model.name"},
}  # fmt: skip


def test_each_rung_applies_one_difference_and_never_changes_the_scale():
    _, rungs, flat = _ladder()
    assert rungs == ["official", *RUNG_CHANGES]
    for before, after in itertools.pairwise(rungs):
        changed = {k for k in flat[before].keys() | flat[after].keys() if flat[before].get(k) != flat[after].get(k)}
        assert changed == RUNG_CHANGES[after], after
        assert not any(key.startswith(SCALE_KEYS) for key in changed), (after, changed)


def test_the_ladder_runs_from_the_official_preset_to_the_fast_one():
    """Its first rung is presets/adacm.yaml's method and its last presets/adacm_fast.yaml's, at the common scale."""
    _, rungs, _ = _ladder()
    raw = load_yaml(LADDER)
    base_raw = {k: raw[k] for k in ("data", "model", "trainer", "augment", "components")}
    first = _method(resolve_config(merge(base_raw, raw["variants"][rungs[0]])))
    last = _method(resolve_config(merge(base_raw, raw["variants"][rungs[-1]])))
    # the EMA decay is scaled to the ladder's run length (its header says why): the one method setting apart
    official, fast = _method(resolved_preset("adacm")), _method(resolved_preset("adacm_fast"))
    assert first == {**official, "components.ema.decay": 0.99}
    assert last == {**fast, "components.ema.decay": 0.99}
