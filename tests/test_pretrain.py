"""Self-supervised pretraining (ablate/training/pretrain.py): its loss, pool and cache, resuming, a trial's start."""

import math

import pytest
import torch

from ablate.config.run import load_config, preset_path
from ablate.data import load_data
from ablate.data.split import split_faces
from ablate.errors import ConfigError
from ablate.training import pretrain
from ablate.training.pretrain import entry_folder, nt_xent, pretrained_backbone, read_losses, training_pool
from ablate.training.trainer import Trainer

TINY = [
    "data.labels=null",
    "data.labels_per_class=3",
    "data.val_per_class=3",
    "data.options={scale: 0.03, image_size: 32}",
    "trainer.epochs=1",
    "trainer.steps_per_epoch=1",
    "trainer.batch_size=8",
    "trainer.eval_unlabeled=16",
    "model.weights=pretrain",
]


def tiny_config(**pretrain_settings):
    settings = {"epochs": 3, "steps_per_epoch": 6, "batch_size": 32, "device": "cpu", **pretrain_settings}
    inline = "{" + ", ".join(f"{k}: {v}" for k, v in settings.items()) + "}"
    return load_config(preset_path("supervised"), [*TINY, f"model.pretrain={inline}"])


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_nt_xent_on_a_hand_computed_case():
    """Two faces, views identical to each other and orthogonal across faces: each anchor has similarity 1 to its
    positive and 0 to the two negatives, so each term is -1/t + log(2 + e^(1/t))."""
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[2.0, 0.0], [0.0, 3.0]])  # lengths do not matter: the projections are normalised
    for t in (1.0, 0.5):
        assert nt_xent(z1, z2, t).item() == pytest.approx(-1 / t + math.log(2 + math.exp(1 / t)), rel=1e-6)


def test_the_pool_is_the_labeled_and_unlabeled_faces_never_validation_or_test(cache):
    config = tiny_config()
    faces = load_data(config["data"])
    pool = training_pool(faces, config["data"])
    split = split_faces(faces, config["data"])
    assert pool.tolist() == sorted(split.labeled.tolist() + split.unlabeled.tolist())
    held_out = set(split.validation.tolist()) | set(faces.indices("test").tolist())
    assert len(split.validation) > 0 and not held_out & set(pool.tolist())
    assert set(pool.tolist()) | set(split.validation.tolist()) == set(faces.indices("train").tolist())


def test_every_method_of_a_study_shares_its_baselines_entry(cache):
    """FixMatch's settings (one weak view, the labeled faces in the unlabeled pool) neither duplicate a face in
    the pool nor change the key: its trials start from the backbone supervised-only's trials load. A strong-view
    setting does change it."""
    base = tiny_config()
    fixmatch = load_config(
        preset_path("supervised"),
        [
            *TINY,
            "model.pretrain={epochs: 3, steps_per_epoch: 6, batch_size: 32, device: cpu}",
            "data.labeled_in_unlabeled=true",
            "augment.weak_views=1",
        ],
    )
    faces = load_data(base["data"])
    pools = [training_pool(faces, c["data"]) for c in (base, fixmatch)]
    assert len(pools[1]) == len(set(pools[1].tolist())) and torch.equal(pools[0], pools[1])
    assert entry_folder(fixmatch, faces, pools[1]) == entry_folder(base, faces, pools[0])
    stronger = {**base, "augment": {**base["augment"], "cutout": 0.25}}
    assert entry_folder(stronger, faces, pools[0]) != entry_folder(base, faces, pools[0])


def test_pretraining_loss_falls_and_its_backbone_starts_a_trial(cache, capsys):
    config = tiny_config()
    faces = load_data(config["data"])
    path = pretrained_backbone(config, faces)
    folder = path.parent
    assert folder.parent == cache / "pretrain" and (folder / "loss.png").is_file()
    losses = read_losses(folder)
    assert len(losses) == 18
    first, last = sum(losses[:6]) / 6, sum(losses[-6:]) / 6
    assert last < first - 0.15, losses  # 3.996 -> 3.699 measured; chance level is log(63) = 4.14
    assert "epoch 3/3" in capsys.readouterr().err  # progress output

    built = path.stat().st_mtime_ns
    trainer = Trainer(config, faces)  # a trial: finds the entry, loads it strictly
    saved = torch.load(path, weights_only=True)
    own = trainer.model.backbone.state_dict()
    assert set(own) == set(saved)
    assert all(torch.equal(own[k].cpu(), saved[k]) for k in saved)
    assert path.stat().st_mtime_ns == built and "epoch" not in capsys.readouterr().err  # shared, not rebuilt


def test_a_corrupt_entry_is_built_again_with_one_line(cache, capsys):
    config = tiny_config(epochs=1, steps_per_epoch=2, batch_size=8)
    faces = load_data(config["data"])
    path = pretrained_backbone(config, faces)
    path.write_bytes(b"not a state dict")
    capsys.readouterr()
    before = torch.get_rng_state()
    assert pretrained_backbone(config, faces) == path
    assert torch.equal(torch.get_rng_state(), before)  # a trial's init does not depend on who built the entry
    lines = [line for line in capsys.readouterr().err.splitlines() if "unreadable" in line]
    assert len(lines) == 1 and str(path) in lines[0] and "building it again" in lines[0]
    assert set(torch.load(path, weights_only=True)) == set(Trainer(config, faces).model.backbone.state_dict())


def test_a_killed_pretraining_resumes_at_its_last_epoch_with_the_same_result(cache, tmp_path, monkeypatch, capsys):
    config = tiny_config(epochs=2, steps_per_epoch=3, batch_size=8)
    faces = load_data(config["data"])
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "whole"))
    whole = torch.load(pretrained_backbone(config, faces), weights_only=True)

    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "killed"))
    real_write = pretrain._write_curve

    def killed_after_first_epoch(folder, losses, steps):
        real_write(folder, losses, steps)
        raise KeyboardInterrupt  # as a kill after the epoch's checkpoint

    monkeypatch.setattr(pretrain, "_write_curve", killed_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        pretrained_backbone(config, faces)
    monkeypatch.setattr(pretrain, "_write_curve", real_write)
    resumed = torch.load(pretrained_backbone(config, faces), weights_only=True)
    assert "resuming" in capsys.readouterr().err
    assert all(torch.allclose(resumed[k].float(), whole[k].float(), atol=1e-5) for k in whole)


def test_pretrain_settings_without_pretrain_weights_are_refused():
    with pytest.raises(ConfigError, match=r"model.pretrain applies only with model.weights: pretrain"):
        load_config(preset_path("supervised"), ["model.pretrain={epochs: 2}"])


def test_the_command_builds_the_entry(cache, capsys):
    args = ["--config", "supervised", *(x for s in TINY[:-1] for x in ("--set", s))]
    args += ["--set", "model.pretrain={epochs: 1, steps_per_epoch: 2, batch_size: 8, device: cpu}"]
    assert pretrain.main(args) == 0
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert printed.endswith("backbone.pt") and str(cache) in printed
