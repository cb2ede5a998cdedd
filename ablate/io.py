"""Atomic file writes: a crash never leaves half a file, because readers only ever see a renamed whole.

The file gets the mode the user's umask gives any new file (``tempfile.mkstemp`` creates it 0600, and a rename
keeps the mode), so a team can share a study's results. torch is imported only to save a tensor file: reading a
study's results must not import it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ablate.errors import AblateError


def umask() -> int:
    """The process's umask, read without changing it where Linux tells it (os.umask can only set it)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without error, rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~umask())
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def write_jsonl(path: str | os.PathLike, rows: list[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in rows))


def make_writable_folder(folder: Path, what: str, hint: str = "") -> Path | None:
    """Create ``folder`` and check that files can be written in it, or raise one line naming why not (``what`` is
    the option it came from, ``hint`` another kind of place it could be). A folder this call made is removed
    again on failure. Returns the topmost folder it created (None if ``folder`` existed)."""
    absolute = folder.absolute()
    first_missing = next((p for p in [*reversed(absolute.parents), absolute] if not p.exists()), None)
    for parent in [absolute, *absolute.parents]:
        if parent.exists() and not parent.is_dir():
            raise AblateError(f"{what}: {parent} is a file, not a folder; give a folder (created if missing){hint}")
    try:
        absolute.mkdir(parents=True, exist_ok=True)
        probe = absolute / ".ablate-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        if first_missing is not None:
            shutil.rmtree(first_missing, ignore_errors=True)
        raise AblateError(
            f"{what}: cannot write to {absolute} ({err.strerror or err}); give a folder you can write to"
        ) from None
    return first_missing


def load_checkpoint_safely(source: str | os.PathLike | bytes, where: str) -> Any:
    """``torch.load`` of a checkpoint with ``weights_only=True``: tensors, numbers, strings, lists, dicts and the
    types allow-listed with ``torch.serialization.add_safe_globals`` (a plugin whose state needs more registers
    them where it is imported). Unpickling anything else could run code, so such a file is refused in one line:
    a shared storage that someone else can write to must not be a way to run code in every resumed trial."""
    import io
    import pickle
    import re

    import torch

    try:
        return torch.load(
            io.BytesIO(source) if isinstance(source, bytes) else source, map_location="cpu", weights_only=True
        )
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        what = f"a pickled {found.group(1)}" if found else "an object a weights-only load refuses"
        raise AblateError(
            f"{where}: the checkpoint holds {what}, outside the types a checkpoint may hold (tensors, numbers, "
            "strings, lists, dicts and the allow-listed ones); refusing to unpickle it, since that could run code "
            "(ablate writes no such checkpoint: delete it to start that run over)"
        ) from None
