"""The study lock: a second driver is refused, a killed driver's lock is taken over, another host's is not."""

import json
import socket
import subprocess
import sys

import pytest

from ablate.sweep.lock import StudyLock, StudyLocked, is_stale, me


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_second_holder_is_refused_until_the_first_releases(tmp_path):
    path = tmp_path / ".lock"
    first = StudyLock(path, "study 'x'")
    first.acquire()
    holder = json.loads(path.read_text())
    assert holder["pid"] > 0 and holder["host"] == socket.gethostname()
    with pytest.raises(StudyLocked, match=r"study 'x' is being run by another driver \(pid \d+ on "):
        StudyLock(path, "study 'x'").acquire()
    first.release()
    assert not path.exists()
    with StudyLock(path, "study 'x'"):
        assert path.exists()
    assert not path.exists()


def test_a_killed_drivers_lock_is_stale_and_taken_over(tmp_path):
    path = tmp_path / ".lock"
    path.write_text(json.dumps({**me(), "pid": dead_pid()}))
    with StudyLock(path, "study 'x'") as lock:
        assert json.loads(path.read_text())["pid"] == json.loads(lock.mine)["pid"]
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing left aside


def test_a_reused_pid_is_stale():
    # this very process, but recorded with another start time: the pid now names another process
    assert not is_stale(me())
    assert is_stale({**me(), "process_start": "1"})
    assert is_stale({**me(), "boot_id": "another-boot"})


def test_a_lock_from_another_host_is_kept_and_named(tmp_path):
    path = tmp_path / ".lock"
    path.write_text(json.dumps({**me(), "host": "elsewhere", "pid": dead_pid()}))
    with pytest.raises(StudyLocked, match=r"pid \d+ on elsewhere.*if that driver is gone, delete .*\.lock"):
        StudyLock(path, "study 'x'").acquire()
    assert json.loads(path.read_text())["host"] == "elsewhere"


def test_release_leaves_a_lock_that_is_not_ours(tmp_path):
    path = tmp_path / ".lock"
    lock = StudyLock(path, "study 'x'")
    lock.acquire()
    path.write_text(json.dumps({**me(), "pid": 1}))  # taken over meanwhile (as if ours had gone stale)
    lock.release()
    assert path.exists()
