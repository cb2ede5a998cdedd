"""Studies that cannot collide, errors that are one line with nothing left behind, a faithful resume, a real
two-node cluster. Drivers run as subprocesses where the test needs their exit code, their stderr or a kill."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from ablate.sweep import driver as run
from ablate.sweep.interrupt import TUNE_SIGINT_SWITCH, catch_interrupt

ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "search_spaces" / "smoke.yaml")
VAL = ["--set", "data.val_per_class=10"]


def driver(args, env=None, **popen):
    """python -m ablate.run ARGS in its own session (so a kill takes its Ray with it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "ablate.run", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        start_new_session=True,
        **popen,
    )


def one_line_error(command, env=None):
    """Run a command to its end; it must fail with exit code 2 and one line on stderr, no traceback."""
    done = subprocess.run(
        [sys.executable, "-m", *command],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr[-3000:]
    return lines[0]


@pytest.fixture
def read_only(tmp_path):
    """A folder nobody may write in. Root writes anywhere, so as root it is a read-only bind mount of itself."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "--bind", "-o", "ro", str(folder), str(folder)], capture_output=True)
    if mounted.returncode == 0:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True)
    if mounted.returncode != 0 or _writable(folder):
        if mounted.returncode == 0:
            subprocess.run(["umount", str(folder)], check=True)
        pytest.skip("cannot make a read-only folder here (no bind mount)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def _writable(folder):
    try:
        (folder / "probe").write_text("")
    except OSError:
        return False
    (folder / "probe").unlink()
    return True


# ---- names and storage ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["..", ".", "", "a/b"])
def test_a_name_that_is_not_one_folder_is_refused_before_anything_is_written(tmp_path, capsys, name):
    storage = tmp_path / "deep" / "results"
    assert run.main(["--space", SMOKE, "--storage", str(storage), "--name", name, *VAL]) == 2
    assert f"error: --name: {name!r} is not a study name" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_storage_that_is_a_file_is_one_line_and_untouched(tmp_path):
    file = tmp_path / "results"
    file.write_text("mine")
    line = one_line_error(["ablate.run", "--space", SMOKE, "--storage", str(file), *VAL])
    assert f"--storage {file}" in line and "is a file, not a folder" in line
    assert file.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["results"]


def test_storage_in_a_read_only_folder_is_one_line(read_only):
    line = one_line_error(["ablate.run", "--space", SMOKE, "--storage", str(read_only / "results"), *VAL])
    assert f"--storage {read_only / 'results'}: cannot write to" in line
    assert "Read-only file system" in line or "Permission denied" in line
    assert list(read_only.iterdir()) == []


def test_train_out_that_is_a_file_is_one_line(tmp_path):
    file = tmp_path / "run"
    file.write_text("mine")
    line = one_line_error(["ablate.train", "--config", "supervised", "--out", str(file), "--quiet"])
    assert f"--out {file}: {file} is a file, not a folder" in line and file.read_text() == "mine"


def test_train_out_in_a_read_only_folder_is_one_line(read_only):
    out = read_only / "runs" / "one"
    line = one_line_error(["ablate.train", "--config", "supervised", "--out", str(out), "--quiet"])
    assert f"--out {out}: cannot write to" in line and list(read_only.iterdir()) == []


# ---- addresses ----------------------------------------------------------------------------------------------


def ray_cluster_running() -> bool:
    """Whether a Ray GCS server of any user runs here: Ray's ``auto`` finds one by its process, as this does."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if b"gcs_server" in cmdline.read_bytes():
                return True
    return False


def test_address_auto_without_a_cluster_is_one_line_and_leaves_nothing(tmp_path):
    if ray_cluster_running():
        pytest.skip("a Ray cluster runs on this machine: --address auto would join it, whatever RAY_TMPDIR says")
    env = {"RAY_TMPDIR": str(tmp_path / "ray-tmp"), "RAY_ADDRESS": ""}  # no cluster of anyone else's is found
    (tmp_path / "ray-tmp").mkdir()
    line = one_line_error(
        ["ablate.run", "--space", SMOKE, "--storage", str(tmp_path / "results"), "--address", "auto", *VAL], env=env
    )
    assert "--address auto: cannot connect (no running Ray cluster found" in line
    assert not (tmp_path / "results").exists()


def test_an_unreachable_address_is_one_line_at_once_and_leaves_nothing(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.time()
    line = one_line_error(
        ["ablate.run", "--space", SMOKE, "--storage", str(tmp_path / "results"), "--address", f"127.0.0.1:{port}", *VAL]
    )
    assert f"--address 127.0.0.1:{port}: no Ray cluster answers there" in line
    assert time.time() - started < 60 and not (tmp_path / "results").exists()


# ---- one driver per study ---------------------------------------------------------------------------------


def test_two_drivers_of_one_study_leave_one_study_and_one_refusal(tmp_path):
    """Also: --resume of a running study is refused; --resume with another --num-samples is refused; the
    banner says the trials run on CPUs when the study asked for a GPU share on a machine without one."""
    args = ["--space", SMOKE, "--storage", str(tmp_path), "--name", "twin", *VAL, "--set", "search.num_samples=2"]
    args += ["--set", "resources.gpu=0.25", "--set", "baselines=[]", "--set", "trainer.epochs=1"]
    first = driver(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    second = driver(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outs = [p.communicate(timeout=400) for p in (first, second)]
    codes = sorted(p.returncode for p in (first, second))
    assert codes == [0, 2], outs
    refused = outs[[first.returncode, second.returncode].index(2)][1]
    assert "is being run by another driver" in refused or "already holds a study" in refused, refused
    ran = outs[[first.returncode, second.returncode].index(0)][0]
    assert "2 trial(s) and 0 baseline trial(s), 1 CPU each, on CPUs (no GPU in this Ray cluster)" in ran
    assert "GPU each" not in ran
    trials = pl.read_parquet(tmp_path / "twin" / "trials.parquet")
    assert trials.height == 2 and set(trials["status"]) == {"complete"} and set(trials["device"]) == {"cpu"}
    assert set(trials["trainer.device"]) == {"cpu"}
    assert not (tmp_path / "twin" / ".lock").exists()

    changed = one_line_error(["ablate.run", *args, "--resume", "--num-samples", "3"])
    assert "--resume: this command's study differs" in changed and "search.num_samples: 2 -> 3" in changed


def test_resume_of_a_running_study_is_refused(tmp_path):
    args = ["--space", SMOKE, "--storage", str(tmp_path), "--name", "busy", *VAL, "--set", "baselines=[]"]
    args += ["--set", "search.num_samples=1"]
    first = driver(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 200
        while not (tmp_path / "busy" / "ray").exists() and time.time() < deadline:
            time.sleep(0.2)
        line = one_line_error(["ablate.run", *args, "--resume"])
        assert f"pid {first.pid} on {socket.gethostname()}" in line and "is being run by another driver" in line
        assert first.wait(timeout=300) == 0  # the running study was not disturbed
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    trials = pl.read_parquet(tmp_path / "busy" / "trials.parquet")
    assert trials["status"].to_list() == ["complete"]


def test_a_killed_drivers_lock_does_not_block_the_resume(tmp_path):
    args = ["--space", SMOKE, "--storage", str(tmp_path), "--name", "dead", *VAL, "--set", "baselines=[]"]
    args += ["--set", "search.num_samples=1", "--set", "trainer.epochs=1"]
    first = driver(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 200
    while not (tmp_path / "dead" / "ray").exists() and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert json.loads((tmp_path / "dead" / ".lock").read_text())["pid"] == first.pid  # left behind by the kill
    assert run.main([*args, "--resume"]) == 0
    assert pl.read_parquet(tmp_path / "dead" / "trials.parquet")["status"].to_list() == ["complete"]


def ctrl_c_then_resume(tmp_path, name, settings, signum=signal.SIGINT):
    """Run the smoke study as NAME with SETTINGS, press Ctrl-C (or send SIGNUM) once a trial has saved a
    checkpoint, check that the driver stopped before the baselines, wrote the tables of what ran, released the
    lock and exited with 128 + the signal's number, then resume it; returns the finished study's trials."""
    args = ["--space", SMOKE, "--storage", str(tmp_path), "--name", name, *VAL, *settings]
    first = driver(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 200
    while not list((tmp_path / name / "ray").glob("*/ablate_checkpoint.pt")) and time.time() < deadline:
        time.sleep(0.1)
    os.kill(first.pid, signum)  # the driver only: Tune stops its trials, saves its state and returns
    out, err = first.communicate(timeout=200)
    assert first.returncode == 128 + signum, (out[-3000:], err[-3000:])
    assert "interrupted: to finish the study, run the same command with --resume" in out
    assert "SIGTERM received" not in err and "Traceback" not in err, err[-3000:]  # no crash dump
    assert not (tmp_path / name / "ray_baselines").exists() and not (tmp_path / name / ".lock").exists()
    ran = pl.read_parquet(tmp_path / name / "trials.parquet")
    assert ran.height >= 1 and set(ran["role"]) == {"search"}
    assert run.main([*args, "--resume"]) == 0
    epochs = pl.read_parquet(tmp_path / name / "epochs.parquet")
    assert epochs.height == epochs.unique(["trial_id", "epoch"]).height  # no epoch recorded twice
    return pl.read_parquet(tmp_path / name / "trials.parquet")


def test_ctrl_c_stops_the_study_before_its_baselines_and_resume_finishes_it(tmp_path):
    trials = ctrl_c_then_resume(tmp_path, "cc", ["--set", "search.num_samples=2", "--set", "search.max_concurrent=1"])
    assert trials["role"].to_list() == ["search", "search", "baseline"] and set(trials["status"]) == {"complete"}


def test_sigterm_stops_the_study_as_ctrl_c_does_and_resume_finishes_it(tmp_path):
    """What a batch scheduler (SLURM's preemption, Kubernetes, `timeout`) sends: the same graceful stop, exit 143."""
    settings = ["--set", "search.num_samples=2", "--set", "search.max_concurrent=1"]
    trials = ctrl_c_then_resume(tmp_path, "term", settings, signal.SIGTERM)
    assert trials["role"].to_list() == ["search", "search", "baseline"] and set(trials["status"]) == {"complete"}


def test_ctrl_c_while_the_searchs_last_trial_runs_does_not_start_the_baselines(tmp_path):
    """The case trial counts cannot tell: no trial is left pending, and Tune returns with each counted finished."""
    trials = ctrl_c_then_resume(tmp_path, "late", ["--set", "search.num_samples=1", "--set", "trainer.epochs=3"])
    assert trials["role"].to_list() == ["search", "baseline"] and set(trials["status"]) == {"complete"}


def test_the_first_ctrl_c_asks_tune_to_stop_and_the_second_aborts(monkeypatch):
    calls = []

    def tune_handler(signum, frame):  # stands in for ray.tune.tune's SIGUSR1 handler
        calls.append(signum)

    tune_handler.__module__ = "ray.tune.tune"
    monkeypatch.delenv(TUNE_SIGINT_SWITCH, raising=False)
    before = signal.getsignal(signal.SIGINT)
    previous_usr1 = signal.signal(signal.SIGUSR1, tune_handler)
    try:
        with catch_interrupt() as interrupt:
            assert os.environ[TUNE_SIGINT_SWITCH] == "1" and not interrupt.requested
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # signals are handled between bytecodes of the main thread
            assert interrupt.requested and calls == [signal.SIGUSR1]
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
    finally:
        signal.signal(signal.SIGUSR1, previous_usr1)
    assert signal.getsignal(signal.SIGINT) is before and TUNE_SIGINT_SWITCH not in os.environ


def test_sigterm_is_the_first_ctrl_c_and_a_second_signal_aborts(monkeypatch):
    calls = []

    def tune_handler(signum, frame):
        calls.append(signum)

    tune_handler.__module__ = "ray.tune.tune"
    before = signal.getsignal(signal.SIGTERM)
    previous_usr1 = signal.signal(signal.SIGUSR1, tune_handler)
    try:
        with catch_interrupt() as interrupt:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            assert interrupt.requested and interrupt.signum == signal.SIGTERM and calls == [signal.SIGUSR1]
            assert run.EXIT_INTERRUPTED[interrupt.signum] == 143
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
    finally:
        signal.signal(signal.SIGUSR1, previous_usr1)
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_ctrl_c_before_tune_listens_is_recorded_and_sends_nothing():
    previous_usr1 = signal.signal(signal.SIGUSR1, signal.SIG_DFL)  # SIGUSR1 now would end the process
    try:
        with catch_interrupt() as interrupt:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            assert interrupt.requested
    finally:
        signal.signal(signal.SIGUSR1, previous_usr1)


# ---- a faithful resume ------------------------------------------------------------------------------------

ASHA = [
    *VAL,
    "--set",
    "search.algorithm=random",
    "--set",
    "search.num_samples=6",
    "--set",
    "search.max_concurrent=1",
    "--set",
    "trainer.epochs=4",
    "--set",
    "trainer.steps_per_epoch=4",
    "--set",
    "scheduler={name: asha, grace_period: 1, reduction_factor: 2}",
    "--set",
    "baselines=[]",
]


def journal_entries(folder: Path) -> int:
    try:
        return len(json.loads((folder / "scheduler.json").read_text())["entries"])
    except (OSError, json.JSONDecodeError):
        return 0


def outcome(folder: Path) -> dict:
    """Each sampled config's status and epochs (trial ids differ between runs; the configs do not)."""
    trials = pl.read_parquet(folder / "trials.parquet")
    epochs = pl.read_parquet(folder / "epochs.parquet")
    per_trial = dict(epochs.group_by("trial_id").agg(pl.col("epoch").sort()).iter_rows())
    return {
        (round(r["components.threshold.floor"], 6), round(r["components.negative.rho"], 6)): (
            r["status"],
            r["epochs_done"],
            per_trial.get(r["trial_id"], []),
        )
        for r in trials.iter_rows(named=True)
    }


def test_a_study_killed_twice_and_resumed_stops_the_trials_an_uninterrupted_one_stops(tmp_path):
    common = ["--space", SMOKE, "--storage", str(tmp_path), *ASHA]
    assert run.main([*common, "--name", "whole"]) == 0
    whole = outcome(tmp_path / "whole")
    statuses = sorted(s for s, _, _ in whole.values())
    assert "stopped" in statuses and "complete" in statuses, whole  # ASHA did stop some

    cut = tmp_path / "cut"
    env = {"TUNE_GLOBAL_CHECKPOINT_S": "1"}
    for kill_after, resume in ((3, False), (8, True)):  # kill just after a rung decision, twice
        process = driver([*common, "--name", "cut", *(["--resume"] if resume else [])], env=env)
        deadline = time.time() + 300
        while journal_entries(cut) < kill_after and time.time() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert process.poll() is None, "the study ended before it could be killed"
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert run.main([*common, "--name", "cut", "--resume"]) == 0
    assert outcome(cut) == whole


# ---- a cluster of two nodes -------------------------------------------------------------------------------


def test_a_study_on_a_two_node_cluster_runs_on_both_nodes(tmp_path):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        args = ["--space", SMOKE, "--storage", str(tmp_path), "--address", cluster.address, *VAL]
        assert run.main(args) == 0
    finally:
        cluster.shutdown()
    trials = pl.read_parquet(tmp_path / "smoke" / "trials.parquet")
    epochs = pl.read_parquet(tmp_path / "smoke" / "epochs.parquet")
    assert trials.height == 5 and set(trials["status"]) == {"complete"}
    assert trials["node_id"].n_unique() == 2  # the data reached the second node through the object store
    assert epochs.height == 5 * 2 and epochs.group_by("trial_id").len()["len"].to_list() == [2] * 5
