"""The package's layers: the two ends that need no model (config in, results out) import no torch, and the one
console command reaches every command."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "kornia", "ray")


def imported_after(code: str) -> list[str]:
    """The heavy modules in sys.modules after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("layer", ["config", "results"])
def test_a_torch_free_layer_imports_no_torch_in_any_module(layer):
    modules = sorted(f"ablate.{layer}.{p.stem}" for p in (ROOT / "ablate" / layer).glob("*.py") if p.stem != "__init__")
    assert len(modules) >= 5
    assert imported_after("\n".join(f"import {m}" for m in modules)) == []


def test_the_probe_sees_torch_when_a_module_imports_it():
    # The check above can fail: importing the trainer's layer is seen.
    assert "torch" in imported_after("import ablate.training.trainer")


def test_a_study_file_reads_and_a_trial_config_composes_without_torch():
    code = (
        "from ablate.config.params import load_yaml\n"
        "from ablate.config.compose import compose_config\n"
        "raw = load_yaml('search_spaces/lion.yaml')\n"
        "config = compose_config({'data': {'labels': 100}, 'trainer': {'seed': 0}}, {}, {'data.labels_per_class': 5})\n"
        "assert config['data']['labels'] is None and config['data']['labels_per_class'] == 5, config"
    )
    assert imported_after(code) == []


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ablate", *args], cwd=ROOT, capture_output=True, text=True)


def test_the_console_command_lists_its_subcommands():
    out = run_cli("--help")
    assert out.returncode == 0
    assert all(name in out.stdout for name in ("run", "train", "report", "params"))


def test_the_console_command_is_installed_as_ablate():
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "ablate"]
    assert script.value == "ablate.cli:main"


def test_ablate_params_is_train_list_params():
    params = run_cli("params")
    listed = subprocess.run(
        [sys.executable, "-m", "ablate.train", "--list-params"], cwd=ROOT, capture_output=True, text=True
    )
    assert params.returncode == 0 and "trainer.seed" not in params.stderr
    assert params.stdout == listed.stdout and "trainer:" in params.stdout


def test_an_unknown_subcommand_is_one_usage_error():
    out = run_cli("trian")
    assert out.returncode == 2 and "invalid choice: 'trian'" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("command", ["run", "train"])
def test_both_commands_take_the_one_set_option(command):
    out = run_cli(command, "--help")
    assert out.returncode == 0 and "--set KEY=VALUE" in out.stdout and "repeatable" in out.stdout
