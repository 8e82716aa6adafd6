"""The model registry's storage on a local folder (or NFS): a lock file and an atomic rename commit.

Layout under the root (the registry's logic is in `mlflowkit.store.registry`)::

    <model>/versions/<N>/        a committed version: its files, version.json (and version.sig)
    <model>/.staging/<uuid>/     a version being written; renamed to versions/<N> to commit it
    <model>/.lock                the model's inter-process lock (filelock)
    <model>/<log>.jsonl          an append-only log (events, approvals): one JSON entry per line
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from filelock import FileLock, Timeout

from mlflowkit.errors import RegistryError
from mlflowkit.store.files import atomic_write_local, copy_hashing, fsync_dir, write_synced
from mlflowkit.store.registry_storage import LogEntry, pause, version_number

__all__ = ["FolderStorage"]

_VERSION_FILE = "version.json"


class _FolderDraft:
    """A version staged in ``<model>/.staging/<uuid>/`` and committed by renaming that folder."""

    def __init__(self, storage: FolderStorage, model: str) -> None:
        self._storage, self._model = storage, model
        staging_root = storage.path(f"{model}/.staging")
        os.makedirs(storage.path(f"{model}/versions"), exist_ok=True)
        os.makedirs(staging_root, exist_ok=True)
        storage.clean_stale_staging(staging_root)
        self.folder = os.path.join(staging_root, uuid.uuid4().hex)
        os.mkdir(self.folder)

    def put(self, name: str, src: bytes | os.PathLike[str]) -> str:
        path = os.path.join(self.folder, name)
        if isinstance(src, os.PathLike):
            with open(src, "rb") as fin, open(path, "wb") as fout:
                sha, _ = copy_hashing(fin, fout)
                fout.flush()
                os.fsync(fout.fileno())
            return sha
        data = bytes(src)
        write_synced(path, data)
        return hashlib.sha256(data).hexdigest()

    def commit(self, manifest: Callable[[int], Mapping[str, bytes]], *, unless: Callable[[], bool] | None = None) -> int | None:
        versions = self._storage.path(f"{self._model}/versions")
        with self._storage.lock(self._model):
            if unless is not None and unless():
                return None
            number = max(self._storage.numbered(self._model), default=0) + 1
            files = dict(manifest(number))
            for name in sorted(files, key=lambda n: n == _VERSION_FILE):  # version.json last
                write_synced(os.path.join(self.folder, name), files[name])
            fsync_dir(self.folder)
            pause("registry.locked")
            os.replace(self.folder, os.path.join(versions, str(number)))  # the commit
            fsync_dir(versions)
        return number

    def abandon(self) -> None:
        # Nothing was committed if the staging folder still exists; after the rename it is gone.
        shutil.rmtree(self.folder, ignore_errors=True)


class FolderStorage:
    """A registry's bytes in a local folder; one writer at a time per model, by a lock file.

    Attributes:
        root: the folder (absolute).
        lock_timeout: seconds to wait for a model's lock before raising `RegistryError`.
        stale_after: seconds after which a later `draft` removes a staging folder nobody committed.
    """

    stale_after: float = 3600.0

    def __init__(self, root: str, *, lock_timeout: float = 60.0) -> None:
        self.root = os.path.abspath(root)
        self.lock_timeout = lock_timeout
        os.makedirs(self.root, exist_ok=True)

    def path(self, key: str) -> str:
        """The local path of ``key``."""
        return os.path.join(self.root, *key.split("/")) if key else self.root

    def where(self, key: str) -> str:
        return self.path(key)

    def read(self, key: str) -> bytes:
        with open(self.path(key), "rb") as fh:
            return fh.read()

    def read_many(self, keys: list[str]) -> dict[str, bytes]:
        out = {}
        for key in keys:
            with contextlib.suppress(FileNotFoundError):
                out[key] = self.read(key)
        return out

    def write(self, key: str, data: bytes) -> None:
        atomic_write_local(self.path(key), data)

    def names(self, key: str) -> list[str]:
        try:
            return sorted(os.listdir(self.path(key)))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def numbered(self, model: str) -> list[int]:
        """Every number with a folder under versions/, committed or not (a number is never reused)."""
        return sorted(n for name in self.names(f"{model}/versions") if (n := version_number(name)) is not None)

    def committed(self, model: str) -> list[int]:
        return [n for n in self.numbered(model) if os.path.isfile(self.path(f"{model}/versions/{n}/{_VERSION_FILE}"))]

    def draft(self, model: str) -> _FolderDraft:
        return _FolderDraft(self, model)

    def clean_stale_staging(self, staging_root: str) -> None:
        """Remove staging folders whose newest file is older than ``stale_after`` (their writer died)."""
        cutoff = time.time() - self.stale_after
        for entry in os.scandir(staging_root):
            try:
                # The newest mtime inside counts, so a slow copy of a big file is not taken for stale.
                newest = max([entry.stat().st_mtime] + [e.stat().st_mtime for e in os.scandir(entry.path) if e.is_file()])
            except (FileNotFoundError, NotADirectoryError):
                continue
            if newest < cutoff:
                shutil.rmtree(entry.path, ignore_errors=True)

    @contextlib.contextmanager
    def lock(self, model: str) -> Iterator[None]:
        """The model's inter-process lock, for the ``with`` block.

        Raises:
            RegistryError: another writer held it for ``lock_timeout`` seconds.
        """
        path = self.path(f"{model}/.lock")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        lock = FileLock(path, timeout=self.lock_timeout)
        try:
            lock.acquire()
        except Timeout:
            raise RegistryError(
                f"model {model!r} is locked by another writer ({path}); gave up after {self.lock_timeout} s"
            ) from None
        try:
            yield
        finally:
            lock.release()

    # ----------------------------------------------------------------- logs: one JSON entry per line

    def _log_path(self, model: str, log: str) -> str:
        return self.path(f"{model}/{log}.jsonl")

    def log_end(self, model: str, log: str) -> int:
        try:
            return os.path.getsize(self._log_path(model, log))
        except FileNotFoundError:
            return 0

    def log_read(self, model: str, log: str) -> list[LogEntry]:
        try:
            with open(self._log_path(model, log), "rb") as fh:
                lines = fh.read().split(b"\n")
        except FileNotFoundError:
            return []
        out = []
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            if isinstance(entry, dict):
                out.append(LogEntry(f"{log}.jsonl line {n}", entry))
            else:
                out.append(LogEntry(f"{log}.jsonl line {n}", None, "unreadable (a write torn by a crash, or an edit)"))
        return out

    def log_last(self, model: str, log: str) -> dict[str, Any] | None:
        entries = self.log_read(model, log)
        return entries[-1].entry if entries else None

    def log_append(self, model: str, log: str, at: int, entry: dict[str, Any]) -> int | None:
        path = self._log_path(model, log)
        with self.lock(model):
            if self.log_end(model, log) != at:
                return None
            return _append_line(path, json.dumps(entry, sort_keys=True))


def _append_line(path: str, line: str) -> int:
    """Append one line with a single write and fsync; return the file's size after it."""
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        data = line.encode() + b"\n"
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data  # the last write was torn: do not glue this entry onto it
        if os.write(fd, data) != len(data):
            raise RegistryError(f"short write appending to {path}")
        os.fsync(fd)
        return os.fstat(fd).st_size
    finally:
        os.close(fd)
