"""Adding a component is one file: a component defined outside ablate (tests/plugins/entropy_min.py), registered
by its own decorator, enabled from a config file, trains, with no edit anywhere in ablate."""

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import torch
import yaml

from ablate.components import COMPONENTS
from ablate.config import plugins
from ablate.config.run import load_config
from ablate.data import load_dataset
from ablate.errors import ConfigError
from ablate.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "tests" / "plugins" / "entropy_min.py"
TINY = {
    "data": {"name": "synthfer", "options": {"scale": 0.05, "image_size": 32}, "labels_per_class": 3,
             "val_per_class": 2},
    "trainer": {"epochs": 2, "steps_per_epoch": 3, "batch_size": 8, "mu": 2, "eval_unlabeled": 32},
}  # fmt: skip


@pytest.fixture
def registry_restored():
    """The plugin registers itself in this process; take it out again so other tests see the stock registry."""
    before = set(COMPONENTS.names())
    loaded = dict(plugins._loaded)
    yield
    for name in set(COMPONENTS.names()) - before:
        COMPONENTS.forget(name)
    plugins._loaded.clear()  # so that the next test imports (and registers) the plugin again
    plugins._loaded.update(loaded)


def test_a_plugin_component_trains_from_a_config_file(tmp_path, registry_restored):
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump({
        "plugins": [str(PLUGIN)],
        **TINY,
        "components": {"supervised": {"enabled": True}, "entropy_min": {"enabled": True, "weight": 0.5}},
    }))  # fmt: skip
    config = load_config(config_file)
    assert config["components"]["entropy_min"] == {"enabled": True, "weight": 0.5, "temperature": 1.0}
    trainer = Trainer(config, load_dataset("synthfer", scale=0.05, image_size=32))
    assert [c.name for c in trainer.components] == ["entropy_min", "supervised"]
    assert trainer.uses_unlabeled and "strong" in trainer.grad_views
    before = [p.detach().clone() for p in trainer.model.parameters()]
    history = trainer.fit()
    assert {"train_loss_entropy_min", "train_entropy"} <= set(history[-1])
    assert history[-1]["train_loss_entropy_min"] == pytest.approx(history[-1]["train_entropy"])
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))


def test_list_params_with_a_config_lists_its_plugins_parameters(tmp_path, capsys, registry_restored):
    from ablate.training import command as train

    config_file = tmp_path / "config.yaml"
    config_file.write_text(
        yaml.safe_dump({"plugins": [str(PLUGIN)], **TINY, "components": {"entropy_min": {"enabled": True}}})
    )
    assert train.main(["--list-params", "--config", str(config_file)]) == 0
    listing = capsys.readouterr().out
    assert "entropy_min" in listing and "softmax temperature of the entropy" in listing


def test_a_plugin_that_does_not_import_is_a_config_error(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_module_anywhere\n")
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump({"plugins": [str(broken)], **TINY}))
    with pytest.raises(ConfigError, match=r"plugins: .*broken.py' failed to import: ModuleNotFoundError"):
        load_config(config_file)
    config_file.write_text(yaml.safe_dump({"plugins": [str(tmp_path / "nope.py")], **TINY}))
    with pytest.raises(ConfigError, match=r"plugins: no such file .*nope.py"):
        load_config(config_file)


def test_a_study_enables_a_plugin_component_and_ray_trials_train_it(tmp_path):
    """The whole path: the driver validates the study with the plugin loaded, every Ray trial (another process)
    loads it again, and the results tables carry its parameters and its loss. In a subprocess, so that the
    plugin's registration does not leak into this test session."""
    study = tmp_path / "plugin.yaml"
    study.write_text(yaml.safe_dump({
        "name": "plugin",
        "plugins": [str(PLUGIN)],
        **TINY,
        "components": {"supervised": {"enabled": True}, "entropy_min": {"enabled": True}},
        "search": {"algorithm": "grid", "metric": "best_val_acc"},
        "params": {"components.entropy_min.weight": {"grid": [0.05, 0.5]}},
        "resources": {"cpu": 1},
    }))  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "ablate.run", "--space", str(study), "--storage", str(tmp_path / "results")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "results" / "plugin"
    trials = pl.read_parquet(out / "trials.parquet").filter(pl.col("components.entropy_min.enabled").is_not_null())
    search = trials.filter(pl.col("components.entropy_min.enabled"))
    assert sorted(search["components.entropy_min.weight"].to_list()) == [0.05, 0.5]
    assert set(search["status"]) == {"complete"}
    epochs = pl.read_parquet(out / "epochs.parquet")
    assert (
        epochs.filter(pl.col("trial_id").is_in(search["trial_id"].to_list()))["train_loss_entropy_min"]
        .is_not_null()
        .all()
    )
    assert json.loads(search["config_json"][0])["plugins"] == [str(PLUGIN)]


def test_no_plugins_refuses_a_file_that_names_plugins_before_importing_them(tmp_path, capsys):
    """--no-plugins (run and train): the file's plugin is never imported (it would write a marker), one line says
    why; the study folder is not created; a file without plugins runs as before."""
    from ablate import run, train

    marker = tmp_path / "imported"
    plugin = tmp_path / "sneaky.py"
    plugin.write_text(f"open({str(marker)!r}, 'w').close()\n")
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump({"plugins": [str(plugin)], **TINY, "components": {"supervised": {}}}))
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({"name": "s", "plugins": [str(plugin)], **TINY,
                                     "components": {"supervised": {"enabled": True}}}))  # fmt: skip
    storage = tmp_path / "results"
    assert run.main(["--space", str(study), "--storage", str(storage), "--no-plugins"]) == 2
    assert train.main(["--config", str(config_file), "--out", str(tmp_path / "run"), "--no-plugins"]) == 2
    assert train.main(["--list-params", "--config", str(config_file), "--no-plugins"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and not marker.exists() and not storage.exists()
    assert lines[0] == (
        f"error: {study}: plugins: {str(plugin)!r} would be imported, and --no-plugins refuses plugins (a file that "
        "names them runs their Python code); read them, then drop --no-plugins if you trust them"
    )
    assert lines[1].startswith(f"error: {config_file}: plugins: {str(plugin)!r} would be imported")
    # the refusal ends with the command: a later load in the same process imports the plugin
    assert plugins._refused is False
    config_file.write_text(yaml.safe_dump({**TINY, "components": {"supervised": {"enabled": True}}}))
    assert train.main(["--list-params", "--config", str(config_file), "--no-plugins"]) == 0


def test_the_help_says_a_study_file_is_code_and_names_the_exit_codes():
    helps = {}
    for module in ("ablate.run", "ablate.train"):
        done = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True)
        helps[module] = done.stdout
        text = " ".join(done.stdout.split())
        assert done.returncode == 0 and "is code, as a Makefile is" in text and "--no-plugins" in text, module
    for line in ("3    the study finished, with failed trials", "4    the study finished and no trial succeeded",
                 "130  interrupted by Ctrl-C, 143 by SIGTERM"):  # fmt: skip
        assert line in helps["ablate.run"]
