"""A study folder's lock: one driver at a time runs (or resumes) a study.

The lock is a file created with O_EXCL that names its driver: host, pid, the process's start time and the
machine's boot id (a pid is reused after a reboot or a long time). A second driver finds it and stops with one
line naming the holder. A driver that was killed cannot remove its lock, so a lock whose holder is on this host
and no longer alive is stale: the next driver takes it over. A lock held from another host cannot be checked from
here; the message says which file to delete if that driver is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from ablate.errors import AblateError


class StudyLocked(AblateError):
    """Another driver holds the study's lock."""


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, IsADirectoryError):
        return None


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), or None off Linux."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # fields after the command name, which may hold spaces


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def me() -> dict[str, Any]:
    pid = os.getpid()
    return {
        "host": socket.gethostname(),
        "pid": pid,
        "process_start": process_start(pid),
        "boot_id": _boot_id(),
        "since": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def is_stale(holder: dict[str, Any]) -> bool:
    """True when the holder ran on this host and is gone (dead, or its pid now names another process)."""
    if holder.get("host") != socket.gethostname():
        return False
    if holder.get("boot_id") and holder["boot_id"] != _boot_id():
        return True
    pid = holder.get("pid")
    if not isinstance(pid, int) or not alive(pid):
        return True
    started = holder.get("process_start")
    return started is not None and process_start(pid) not in (None, started)


class StudyLock:
    """``with StudyLock(path, "study 'lion'"):`` holds ``path`` for the block; StudyLocked if another driver has it."""

    def __init__(self, path: str | os.PathLike, what: str):
        self.path = Path(path)
        self.what = what
        self.mine: str | None = None

    def __enter__(self) -> StudyLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(me())
        for _ in range(20):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                held = _read(self.path)
                if held is None:
                    continue  # released meanwhile
                try:
                    holder = json.loads(held)
                except json.JSONDecodeError:
                    time.sleep(0.05)  # being written: O_EXCL created it, the text follows
                    held = _read(self.path)
                    holder = json.loads(held) if held else {}
                if is_stale(holder):
                    self._take_over(held)
                    continue
                raise StudyLocked(self._refusal(holder)) from None
            with os.fdopen(fd, "w") as f:
                f.write(text)
            self.mine = text
            return
        raise StudyLocked(f"{self.what}: could not take the lock {self.path}; another driver keeps taking it")

    def _take_over(self, stale: str) -> None:
        """Remove a stale lock, unless another driver replaced it meanwhile (then put that one back)."""
        aside = self.path.with_name(f"{self.path.name}.{uuid.uuid4().hex}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        if _read(aside) != stale:
            with contextlib.suppress(FileExistsError):
                os.link(aside, self.path)
        aside.unlink(missing_ok=True)

    def _refusal(self, holder: dict[str, Any]) -> str:
        pid, host = holder.get("pid", "?"), holder.get("host", "?")
        text = f"{self.what} is being run by another driver (pid {pid} on {host}, since {holder.get('since', '?')})"
        if host == socket.gethostname():
            return f"{text}; wait for it to end, or stop it (kill {pid}) and continue with --resume"
        return f"{text}; wait for it to end, or, if that driver is gone, delete {self.path} and continue with --resume"

    def release(self) -> None:
        if self.mine is not None and _read(self.path) == self.mine:
            self.path.unlink(missing_ok=True)
        self.mine = None
