"""What a model registry needs from the storage under it: the interface its two backends implement.

`mlflowkit.store.registry.ModelRegistry` holds the logic (versions, aliases, approvals, hash chains,
signatures) once; a backend only stores bytes under keys relative to the registry's root
(``churn/versions/3/model.onnx``) and provides two atomic steps the logic is built on:

- committing a staged version under a number no other writer gets (`Draft.commit`), and
- appending an entry to a log only if nobody appended since the writer last looked (`RegistryStorage.log_append`).

`FolderStorage` does both with a lock and a rename; `ObjectStorage` with conditional creates.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

__all__ = ["PAUSE_ENV", "Draft", "LogEntry", "RegistryStorage", "pause", "utc_now", "version_number"]

PAUSE_ENV = "MLFLOWKIT_TEST_PAUSE_AT"
"""Test seam: set to ``registry.staged`` or ``registry.locked`` to make `register` pause there."""


def pause(point: str) -> None:
    """Test seam: stop at ``point`` when ``MLFLOWKIT_TEST_PAUSE_AT`` names it, so a test can kill us there."""
    if os.environ.get(PAUSE_ENV) == point:
        print(f"PAUSED {point}", file=sys.stderr, flush=True)
        time.sleep(60)


def utc_now() -> str:
    """Now, as ISO 8601 UTC with milliseconds (how the registry writes every time)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def version_number(text: str) -> int | None:
    """The version number a folder name stands for (``"3"``), or None (``"03"``, ``".staging"``)."""
    return int(text) if text.isdigit() and text == str(int(text)) else None


class LogEntry(NamedTuple):
    """One entry of an append-only log, as stored."""

    label: str
    """Where it is, for messages: ``events.jsonl line 3`` or ``events/000000000003.json``."""
    entry: dict[str, Any] | None
    """The entry, or None when it cannot be read (see ``problem``)."""
    problem: str = ""
    """Why ``entry`` is None: unreadable, or missing from the sequence."""


class Draft(Protocol):
    """A version being written: its files go somewhere no reader looks until `commit`."""

    def put(self, name: str, src: bytes | os.PathLike[str]) -> str:
        """Store one file of the version (bytes, or a local file to copy); its SHA-256, of the bytes stored."""
        ...

    def commit(self, manifest: Callable[[int], Mapping[str, bytes]], *, unless: Callable[[], bool] | None = None) -> int | None:
        """Give the version its number and make it visible with every file at once; the number.

        ``manifest(number)`` returns the version's own files (``version.json``, ``version.sig``) for the
        number chosen; ``version.json`` is what makes a version exist, so it is written last. ``unless()``
        is asked just before the version is made visible (under the lock, where there is one): True
        commits nothing and returns None (the caller then abandons the draft).
        """
        ...

    def abandon(self) -> None:
        """Drop what was staged, after a failure before `commit` finished (best effort)."""
        ...


class RegistryStorage(Protocol):
    """Bytes under keys relative to the registry's root, plus the two atomic steps the registry is built on.

    Keys use ``/`` on every platform. Reads raise `FileNotFoundError` for a missing key.
    """

    root: str
    """The registry's folder (local) or URI (``s3://bucket/prefix/registry``), as shown to users."""

    def where(self, key: str) -> str:
        """The path or URI of ``key``, for messages and for readers that open files themselves."""
        ...

    def read(self, key: str) -> bytes:
        """The bytes under ``key``."""
        ...

    def read_many(self, keys: list[str]) -> dict[str, bytes]:
        """The bytes under each of ``keys`` that exists (others are left out)."""
        ...

    def write(self, key: str, data: bytes) -> None:
        """Replace what is under ``key`` atomically (for caches and records the registry may rewrite)."""
        ...

    def names(self, key: str) -> list[str]:
        """Names of the entries directly under the folder ``key`` (``""``: the root); [] when there is none."""
        ...

    def committed(self, model: str) -> list[int]:
        """The numbers of ``model``'s committed versions (those with a ``version.json``), ascending."""
        ...

    def draft(self, model: str) -> Draft:
        """Start writing a new version of ``model`` (the model's folder is created on first use)."""
        ...

    def log_end(self, model: str, log: str) -> int:
        """Where the log ``log`` of ``model`` ends now (0 when empty); `log_append` appends only there."""
        ...

    def log_read(self, model: str, log: str) -> list[LogEntry]:
        """Every entry of the log, oldest first, including unreadable or missing ones."""
        ...

    def log_last(self, model: str, log: str) -> dict[str, Any] | None:
        """The newest entry of the log, or None when the log is empty or that entry is unreadable."""
        ...

    def log_append(self, model: str, log: str, at: int, entry: dict[str, Any]) -> int | None:
        """Append ``entry`` if the log still ends at ``at``; where it ends after, or None if another appended first."""
        ...
