"""Where a study's files live: a local folder or a URI (``s3://bucket/prefix``, ``gs://...``, ``file:///...``).

A URI goes to Ray untouched (Ray Tune writes its experiment there through ``pyarrow.fs``), and ablate writes its
own files (``study.json``, the Parquet tables, the scheduler's journal, the trials' checkpoints) through the
same ``pyarrow.fs`` file system. Local files are written to a temporary name and renamed (``ablate.io``); an
object store's upload is whole or nothing by itself.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ablate.io import atomic_write_bytes


def is_uri(location: str) -> bool:
    return "://" in location


def join(location: str, name: str) -> str:
    """``location/name`` for a path or a URI (a URI's query string, e.g. ``?region=...``, stays at the end)."""
    if not is_uri(location):
        return os.path.join(location, name)
    parts = urlsplit(location)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/" + name))


class Storage:
    """One folder of a study's storage, local or remote, and the file operations ablate needs there."""

    def __init__(self, location: str | os.PathLike):
        location = str(location)
        # not resolve(): a symlinked folder stays what the user named, and a URI stays a URI
        self.location = location if is_uri(location) else os.path.abspath(location)

    @cached_property
    def _fs_and_root(self):
        """The file system and this folder's path on it, found on first use (an object store's may need the network)."""
        import pyarrow.fs as pafs

        if is_uri(self.location):
            fs, path = pafs.FileSystem.from_uri(self.location)
        else:
            fs, path = pafs.LocalFileSystem(), self.location
        return fs, path.rstrip("/") or "/"

    @property
    def fs(self):
        return self._fs_and_root[0]

    @property
    def root(self) -> str:
        return self._fs_and_root[1]

    @property
    def local(self) -> bool:
        """A local folder, or a file:// URI."""
        if not is_uri(self.location):
            return True
        import pyarrow.fs as pafs

        return isinstance(self.fs, pafs.LocalFileSystem)

    def __repr__(self) -> str:
        return f"Storage({self.location!r})"

    def __str__(self) -> str:
        return self.location

    def child(self, name: str) -> Storage:
        return Storage(join(self.location, name))

    def path(self, name: str = "") -> str:
        """The path of ``name`` inside this folder, as ``self.fs`` names it."""
        return f"{self.root.rstrip('/')}/{name}" if name else self.root

    def _info(self, name: str = ""):
        return self.fs.get_file_info(self.path(name))

    def exists(self, name: str = "") -> bool:
        import pyarrow.fs as pafs

        return self._info(name).type != pafs.FileType.NotFound

    def is_dir(self, name: str = "") -> bool:
        import pyarrow.fs as pafs

        return self._info(name).type == pafs.FileType.Directory

    def is_file(self, name: str = "") -> bool:
        import pyarrow.fs as pafs

        return self._info(name).type == pafs.FileType.File

    def read_bytes(self, name: str) -> bytes:
        with self.fs.open_input_stream(self.path(name)) as f:
            return f.readall()

    def read_text(self, name: str) -> str:
        return self.read_bytes(name).decode()

    def write_bytes(self, name: str, data: bytes) -> None:
        if self.local:
            atomic_write_bytes(self.path(name), data)
            return
        parent = self.path(name).rsplit("/", 1)[0]
        self.fs.create_dir(parent, recursive=True)
        with self.fs.open_output_stream(self.path(name)) as f:
            f.write(data)

    def write_text(self, name: str, text: str) -> None:
        self.write_bytes(name, text.encode())

    def makedirs(self, name: str = "") -> None:
        self.fs.create_dir(self.path(name), recursive=True)

    def delete_file(self, name: str) -> None:
        if self.is_file(name):
            self.fs.delete_file(self.path(name))

    def delete_dir(self, name: str = "") -> None:
        if self.is_dir(name):
            self.fs.delete_dir(self.path(name))

    def local_path(self, name: str = "") -> Path | None:
        """The file's local path, when this storage is a local folder (or a file:// URI)."""
        return Path(self.path(name)) if self.local else None
