"""The model registry's storage on an object store (S3 and S3-compatible servers), where there is no rename.

A conditional write (``If-None-Match: *``) commits instead: of two writers of one key, exactly one
wins. Layout under the root (the guarantees and their limits are in docs/object-store.md)::

    <model>/versions/<N>/.claim         who took number N (created if absent: one writer per number)
    <model>/versions/<N>/<file>         the version's files, uploaded after the claim
    <model>/versions/<N>/version.json   the commit, written last and only if absent
    <model>/<log>/<seq>.json            an append-only log (events, approvals): one object per entry
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import fsspec

from mlflowkit.errors import RegistryError
from mlflowkit.store._s3 import atomic_create_supported, create_exclusive, open_fs
from mlflowkit.store.files import copy_hashing
from mlflowkit.store.registry_storage import LogEntry, pause, utc_now, version_number

__all__ = ["ObjectStorage"]

_CLAIM_FILE = ".claim"
_VERSION_FILE = "version.json"


class _ObjectDraft:
    """A version under a claimed number: uploaded in place, committed by creating its version.json."""

    def __init__(self, storage: ObjectStorage, model: str) -> None:
        self._storage = storage
        storage.clean_stale_claims(model)
        token = uuid.uuid4().hex
        deadline = time.monotonic() + storage.lock_timeout
        number = max(storage.numbers(model)[0], default=0) + 1
        while True:
            claim = {"token": token, "at": utc_now(), "host": socket.gethostname(), "pid": os.getpid()}
            if create_exclusive(storage.fs, storage.path(f"{model}/versions/{number}/{_CLAIM_FILE}"), json.dumps(claim).encode()):
                break
            if time.monotonic() > deadline:
                raise RegistryError(f"register {model!r}: could not claim a version number in {storage.lock_timeout} s")
            number = max(number, *storage.numbers(model)[0]) + 1
        self.number, self._model = number, model
        self._put: list[str] = []
        pause("registry.locked")

    def _key(self, name: str) -> str:
        return f"{self._model}/versions/{self.number}/{name}"

    def put(self, name: str, src: bytes | os.PathLike[str]) -> str:
        path = self._storage.path(self._key(name))
        self._put.append(name)
        if isinstance(src, os.PathLike):
            # Hash while uploading, so what is recorded is what was sent (a multipart upload appears whole on close).
            with open(src, "rb") as fin, self._storage.fs.open(path, "wb") as fout:
                sha, _ = copy_hashing(fin, fout)
            return sha
        data = bytes(src)
        self._storage.fs.pipe_file(path, data)  # one PUT: there whole or not at all
        return hashlib.sha256(data).hexdigest()

    def commit(self, manifest: Callable[[int], Mapping[str, bytes]], *, unless: Callable[[], bool] | None = None) -> int | None:
        if unless is not None and unless():
            # Nothing to commit: the files go now, the claim stays (its number is never handed out again).
            self._storage.fs.rm([self._storage.path(self._key(name)) for name in self._put])
            return None
        files = dict(manifest(self.number))
        for name, data in files.items():
            if name != _VERSION_FILE:
                self._storage.fs.pipe_file(self._storage.path(self._key(name)), data)
        if not create_exclusive(self._storage.fs, self._storage.path(self._key(_VERSION_FILE)), files[_VERSION_FILE]):
            # Only the claimant writes here; reaching this means the claim was deleted under us.
            raise RegistryError(
                f"register {self._model!r}: v{self.number} was committed by another writer while this one uploaded"
            )
        return self.number

    def abandon(self) -> None:
        """Nothing to do now: the claim stays (its number is never reused) and a later draft removes the files."""


class ObjectStorage:
    """A registry's bytes on an object store with an atomic create-if-absent (S3, MinIO, moto, memory://).

    Writers never wait on each other: a version number is claimed by creating ``.claim`` and a log
    entry by creating the next sequence number; the loser of a race tries the next one.

    Attributes:
        root: the registry's URI (``s3://bucket/prefix/registry``).
        fs: the fsspec filesystem it lives on.
        base: the root as a path of ``fs`` (no protocol).
        lock_timeout: seconds to keep retrying a contended claim or append before raising `RegistryError`.
        stale_after: seconds after which a later `draft` deletes the files of a claimed number whose
            writer never committed (its claim stays, so the number is not reused).
    """

    stale_after: float = 3600.0

    def __init__(self, root: str, *, lock_timeout: float = 60.0) -> None:
        """Open (and create) a registry's storage on an object store.

        Raises:
            NotImplementedError: the filesystem has no verified atomic create-if-absent.
        """
        fs, path = open_fs(root)
        if not atomic_create_supported(fs):
            raise NotImplementedError(
                f"the model registry needs an atomic create-if-absent, which {type(fs).__name__} is not known to have "
                f"({root!r}); use a local folder or s3:// (AWS S3, MinIO or another server with If-None-Match)"
            )
        self.fs: fsspec.AbstractFileSystem = fs
        self.base = path.rstrip("/")
        self.root = str(fs.unstrip_protocol(self.base))
        self.lock_timeout = lock_timeout
        fs.makedirs(self.base, exist_ok=True)

    def path(self, key: str) -> str:
        """The path of ``key`` on ``fs``."""
        return f"{self.base}/{key}" if key else self.base

    def where(self, key: str) -> str:
        return str(self.fs.unstrip_protocol(self.path(key)))

    def read(self, key: str) -> bytes:
        return bytes(self.fs.cat_file(self.path(key)))

    def read_many(self, keys: list[str]) -> dict[str, bytes]:
        if not keys:
            return {}
        found = self.fs.cat([self.path(k) for k in keys], on_error="omit")
        by_path = {str(p).split("://", 1)[-1]: bytes(v) for p, v in found.items()}
        return {k: by_path[self.path(k)] for k in keys if self.path(k) in by_path}

    def write(self, key: str, data: bytes) -> None:
        self.fs.pipe_file(self.path(key), data)  # one PUT is atomic

    def children(self, key: str) -> list[str]:
        """Every key under the folder ``key``, relative to it."""
        prefix = self.path(key)
        try:
            found = self.fs.find(prefix)
        except FileNotFoundError:
            return []
        return [str(p)[len(prefix) :].lstrip("/") for p in found]

    def names(self, key: str) -> list[str]:
        try:
            return sorted(str(p).rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.path(key), detail=False))
        except FileNotFoundError:
            return []

    def numbers(self, model: str) -> tuple[set[int], set[int]]:
        """(numbers taken, committed versions) from one listing of ``versions/``."""
        taken: set[int] = set()
        committed: set[int] = set()
        for rel in self.children(f"{model}/versions"):
            head, _, name = rel.partition("/")
            if (n := version_number(head)) is not None:
                taken.add(n)
                if name == _VERSION_FILE:
                    committed.add(n)
        return taken, committed

    def committed(self, model: str) -> list[int]:
        return sorted(self.numbers(model)[1])

    def draft(self, model: str) -> _ObjectDraft:
        return _ObjectDraft(self, model)

    def clean_stale_claims(self, model: str) -> None:
        """Delete the files of numbers claimed over ``stale_after`` seconds ago and never committed."""
        by_number: dict[int, list[str]] = {}
        for rel in self.children(f"{model}/versions"):
            head, _, name = rel.partition("/")
            if (n := version_number(head)) is not None:
                by_number.setdefault(n, []).append(name)
        cutoff = time.time() - self.stale_after
        for n, names in by_number.items():
            leftovers = [name for name in names if name != _CLAIM_FILE]
            if _VERSION_FILE in names or not leftovers or _CLAIM_FILE not in names:
                continue
            folder = self.path(f"{model}/versions/{n}")
            try:
                newest = max(self.fs.modified(f"{folder}/{name}").timestamp() for name in names)
            except FileNotFoundError:
                continue
            if newest < cutoff:
                # The claim stays: the number is never handed out again.
                self.fs.rm([f"{folder}/{name}" for name in leftovers])

    # ----------------------------------------------------------------- logs: one object per entry
    #
    # Entry N of a log is ``<model>/<log>/<N>.json``, created only if absent: of two writers who both
    # read the log up to N-1, one records N and the other reads again. So the hash chain never forks.

    def _seqs(self, model: str, log: str) -> list[int]:
        seqs = []
        for rel in self.children(f"{model}/{log}"):
            stem, dot, ext = rel.partition(".")
            if dot and ext == "json" and stem.isdigit() and int(stem) > 0:
                seqs.append(int(stem))
        return sorted(seqs)

    @staticmethod
    def _entry_key(model: str, log: str, seq: int) -> str:
        return f"{model}/{log}/{seq:012d}.json"

    def _entries(self, model: str, log: str, seqs: list[int]) -> list[tuple[int, dict[str, Any] | None]]:
        keys = [self._entry_key(model, log, s) for s in seqs]
        found = self.read_many(keys)
        out: list[tuple[int, dict[str, Any] | None]] = []
        for seq, key in zip(seqs, keys, strict=True):
            try:
                entry = json.loads(found[key])["entry"]
            except (KeyError, ValueError, TypeError):
                entry = None
            out.append((seq, entry if isinstance(entry, dict) else None))
        return out

    def log_end(self, model: str, log: str) -> int:
        seqs = self._seqs(model, log)
        return seqs[-1] if seqs else 0

    def log_read(self, model: str, log: str) -> list[LogEntry]:
        out = []
        expected = 1
        for seq, entry in self._entries(model, log, self._seqs(model, log)):
            for gap in range(expected, seq):
                out.append(LogEntry(f"{log}/{gap:012d}.json", None, "missing (removed?)"))
            expected = seq + 1
            label = f"{log}/{seq:012d}.json"
            out.append(LogEntry(label, entry) if entry is not None else LogEntry(label, None, "unreadable (an edit)"))
        return out

    def log_last(self, model: str, log: str) -> dict[str, Any] | None:
        seqs = self._seqs(model, log)
        return self._entries(model, log, seqs[-1:])[0][1] if seqs else None

    def log_append(self, model: str, log: str, at: int, entry: dict[str, Any]) -> int | None:
        body = json.dumps({"entry": entry, "writer": uuid.uuid4().hex}, sort_keys=True).encode()
        if create_exclusive(self.fs, self.path(self._entry_key(model, log, at + 1)), body):
            return at + 1
        return None
