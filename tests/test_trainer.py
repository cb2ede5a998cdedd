"""The loop on CPU: repeatable with a seed, resumable to the same metrics, and the one-run command."""

import json
import pathlib

import pytest
import torch

from ablate.config.metrics import classification_metrics
from ablate.config.run import load_config, resolve_config
from ablate.data import load_dataset
from ablate.errors import ConfigError
from ablate.training import command as train
from ablate.training.trainer import Trainer

TINY = [
    "data.options={scale: 0.05, image_size: 32}",
    "data.val_per_class=2",  # scale 0.05 has 14 fear faces: 10 labeled + 2 validation
    "trainer.epochs=2",
    "trainer.steps_per_epoch=2",
    "trainer.batch_size=8",
    "trainer.mu=2",
    "trainer.eval_unlabeled=64",
]


@pytest.fixture(scope="module")
def faces():
    return load_dataset("synthfer", scale=0.05, image_size=32)


def lion_config(*extra):
    return load_config("presets/lion.yaml", TINY + list(extra))


def test_same_config_and_seed_give_identical_metrics(faces):
    a = Trainer(lion_config(), faces).fit()
    b = Trainer(lion_config(), faces).fit()
    assert a == b
    c = Trainer(lion_config("trainer.seed=1"), faces).fit()
    assert c != a


def test_every_component_logs_its_loss(faces):
    config = lion_config("components.contrastive.enabled=true")
    metrics = Trainer(config, faces).fit()[-1]
    for name in ("supervised", "pseudo_label", "contrastive", "negative"):
        assert f"train_loss_{name}" in metrics
    for key in (
        "test_acc",
        "test_mean_class_acc",
        "test_acc_fear",
        "test_confusion",
        "threshold_fear",
        "unlabeled_mask_rate",
        "unlabeled_candidate_holds_true",
        "unlabeled_candidate_soft_mass",
        "best_test_acc",
    ):
        assert key in metrics, key


@pytest.mark.parametrize("forward", ["separate", "concat"])
def test_separate_forwards_run(faces, forward):
    history = Trainer(
        lion_config(f"trainer.forward={forward}", "trainer.epochs=1", "components.ema.teacher_pseudo_labels=true"),
        faces,
    ).fit()
    assert len(history) == 1


def test_the_cuda_settings_run_on_cpu(faces):
    """What ``auto`` picks on a GPU (bf16 autocast, channels-last, one concatenated forward), exercised here."""
    gpu_like = ("trainer.precision=bf16", "trainer.channels_last=true", "trainer.forward=concat", "trainer.epochs=1")
    trainer = Trainer(lion_config(*gpu_like), faces)
    assert trainer.runtime.autocast and trainer.runtime.channels_last and trainer.runtime.concat
    assert next(trainer.model.parameters()).dtype == torch.float32  # autocast, not a bf16 model
    conv = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    metrics = trainer.fit()[-1]
    assert all(
        torch.isfinite(torch.tensor(metrics[f"train_loss_{name}"]))
        for name in ("supervised", "pseudo_label", "negative")
    )
    cpu = Trainer(lion_config("trainer.epochs=1"), faces)
    # auto on CPU: separate forwards and channels-last (oneDNN's fast layout on a CPU too); bf16 only where the CPU
    # has it natively (tests/test_fast_path_runtime.py)
    assert not cpu.runtime.concat and cpu.runtime.channels_last


def test_resume_from_a_checkpoint_matches_an_uninterrupted_run(faces):
    config = lion_config("trainer.optimizer=sgd", "trainer.lr=0.03", "trainer.schedule=cosine")
    full = Trainer(config, faces).fit()
    first = Trainer(config, faces)
    first.train_epoch()
    state = first.state_dict()
    resumed = Trainer(config, faces)
    resumed.load_state_dict(state)
    assert resumed.fit() == full


def test_train_command_resumes_after_an_interruption(tmp_path, monkeypatch, capsys):
    args = ["--config", "presets/adacm.yaml", "--quiet"] + [a for s in TINY for a in ("--set", s)]
    assert train.main(args + ["--out", str(tmp_path / "full")]) == 0
    full = (tmp_path / "full" / "metrics.jsonl").read_text()

    original = Trainer.train_epoch

    def interrupted(self, on_step=None):
        if self.epoch == 1:
            raise KeyboardInterrupt
        return original(self, on_step)

    monkeypatch.setattr(Trainer, "train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train.main(args + ["--out", str(tmp_path / "cut")])
    assert len((tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()) == 1
    monkeypatch.setattr(Trainer, "train_epoch", original)
    assert train.main(["--resume", str(tmp_path / "cut"), "--quiet"]) == 0
    assert (tmp_path / "cut" / "metrics.jsonl").read_text() == full
    summary = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert summary["epochs"] == 2


class _RunsCode:
    """Unpickling it would touch ``marker``: what a checkpoint planted on a shared storage could do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_a_checkpoint_holding_a_pickled_object_is_refused_on_resume(tmp_path, capsys):
    args = ["--config", "presets/supervised.yaml", "--quiet"] + [a for s in TINY for a in ("--set", s)]
    assert train.main(args + ["--set", "trainer.epochs=1", "--out", str(tmp_path / "run")]) == 0
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    state = torch.load(checkpoint, weights_only=True)  # what ablate writes loads weights-only
    marker = tmp_path / "code-ran"
    torch.save({**state, "history": [_RunsCode(marker)]}, checkpoint)
    capsys.readouterr()
    assert train.main(["--resume", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --resume {checkpoint}: the checkpoint holds a pickled ") and "\n" not in err
    assert "refusing to unpickle it" in err and not marker.exists()


def test_a_trials_checkpoint_holding_a_pickled_object_is_refused(tmp_path, faces):
    from ablate.errors import AblateError
    from ablate.results.storage import Storage
    from ablate.sweep.trial import load_checkpoint, save_checkpoint

    trainer = Trainer(load_config("presets/lion.yaml", TINY + ["trainer.epochs=1"]), faces)
    trainer.fit()
    folder = Storage(tmp_path)
    save_checkpoint(folder, {"trainer": trainer.state_dict(), "reported": [{"val_acc": 0.5, "cm": [[1, 0], [0, 1]]}]})
    assert load_checkpoint(folder)["trainer"]["epoch"] == 1  # the trial's own checkpoint loads weights-only
    marker = tmp_path / "code-ran"
    save_checkpoint(folder, {"trainer": trainer.state_dict(), "reported": [_RunsCode(marker)]})
    with pytest.raises(AblateError, match=r"ablate_checkpoint.pt: the checkpoint holds a pickled .*refusing"):
        load_checkpoint(folder)
    assert not marker.exists()


@pytest.mark.parametrize(
    "override,message",
    [
        (
            "components.mixup.enabled=true",
            r"unknown component 'mixup'; allowed: contrastive, ema, fairness, leaf_pseudo_label, negative, "
            r"pseudo_label, supervised, threshold",
        ),
        ("components.negative.rhoo=0.5", r"components.negative: unknown key 'rhoo'; allowed: .*rho"),
        ("components.negative.rho=1.5", r"components.negative.rho: 1.5 is out of range; allowed: a float in \(0, 1\]"),
        (
            "components.threshold.policy=magic",
            r"components.threshold.policy: 'magic' is not allowed; allowed: 'adaptive', 'fixed'",
        ),
        ("components.threshold.enabled=false", r"components.negative needs a policy component to be enabled"),
        ("trainer.lr=-1", r"trainer.lr: -1.0 is out of range"),
        ("trainer.epochs=two", r"trainer.epochs: 'two' is a str; allowed: a int in \[1, inf\)"),
        ("trainer.epoch=3", r"trainer: unknown key 'epoch'; allowed: .*epochs"),
        ("data.name=imagenet", r"data.name: unknown dataset 'imagenet'; allowed: fer2013, folder, rafdb, synthfer"),
        ("data.labels=123", r"data.labels: 123 is not allowed; allowed: 100, 400, 1000, 2000, 4000"),
        (
            "data.options={colour: 1}",
            r"data.options: synthfer has no option 'colour'; allowed: seed, image_size, scale",
        ),
        (
            "model.name=vgg",
            r"model.name: unknown model 'vgg'; allowed: efficientnet_lite0, efficientnet_lite1, efficientnet_lite2, "
            r"resnet18, small_cnn",
        ),
        ("augment.strong_ops=99", r"augment.strong_ops"),
        ("optimiser.lr=1", r"unknown key 'optimiser'; allowed: plugins, data, model, trainer, augment, components"),
    ],
)
def test_bad_config_names_key_value_and_allowed(override, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_config("presets/lion.yaml", [override])
    assert "presets/lion.yaml" in str(err.value)


def test_labels_per_class_replaces_the_budget():
    config = resolve_config({"data": {"labels_per_class": 5}, "components": {"supervised": {"enabled": True}}})
    assert config["data"]["labels"] is None and config["data"]["labels_per_class"] == 5


def test_classification_metrics_by_hand():
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    labels = torch.tensor([0, 1, 1, 1])
    m = classification_metrics(probs, labels, ("a", "b"), "test")
    assert m["test_acc"] == 0.75
    assert m["test_acc_a"] == 1.0 and m["test_acc_b"] == pytest.approx(2 / 3)
    assert m["test_mean_class_acc"] == pytest.approx((1 + 2 / 3) / 2)
    assert m["test_confusion"] == [[1, 0], [1, 2]]


def test_cuda_asked_for_on_a_cpu_machine(faces):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError, match=r"trainer.device: 'cuda' was asked for but this machine has no CUDA GPU"):
        Trainer(lion_config("trainer.device=cuda"), faces)


def test_supervised_only_draws_no_unlabeled_batch(faces, monkeypatch):
    config = load_config("presets/supervised.yaml", TINY + ["trainer.epochs=1"])
    trainer = Trainer(config, faces)
    sizes = []
    original = trainer.augmenter.strong
    monkeypatch.setattr(
        trainer.augmenter, "strong", lambda x, generator=None: sizes.append(len(x)) or original(x, generator=generator)
    )
    trainer.fit()
    assert sizes == [0, 0]  # two steps, no unlabeled images augmented


def test_list_params_shows_every_section_with_defaults_docs_and_conditions(capsys):
    assert train.main(["--list-params"]) == 0
    out = capsys.readouterr().out
    for section in ("data:", "model:", "trainer:", "components.threshold:", "components.negative:", "components.ema:"):
        assert f"\n{section}" in f"\n{out}"
    assert "  max_loss = 1000.0  (allowed: a float in (0, inf) or null)" in out
    assert "  tau = 0.95  (allowed: a float in [0, 1])  [when policy is fixed or flexmatch]" in out
    assert "the confidence threshold (fixed: of every class; flexmatch: the highest one" in out
    assert "reports threshold_<class>, mask_rate, pseudo_acc, flexmatch_unused, softmatch_mu, softmatch_sigma" in out
    assert "components.ema: a teacher" in out and "components.threshold: a policy" in out
