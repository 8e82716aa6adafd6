"""Local-file primitives the stores share: atomic replacement, fsync of a folder, hashing while copying."""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from typing import IO

__all__ = ["CHUNK", "TMP_PREFIX", "atomic_write_local", "copy_hashing", "fsync_dir", "hash_file", "write_synced"]

CHUNK = 1 << 20
"""Bytes read at a time when streaming a file."""

TMP_PREFIX = ".tmp-"
"""Names of files being written start with this; listings skip them."""


def fsync_dir(path: str) -> None:
    """Flush a directory entry so a rename inside it survives a crash (no-op where unsupported)."""
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_synced(path: str, data: bytes) -> None:
    """Write ``data`` to a new file at ``path`` and fsync it (no rename: for files in a private folder)."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_local(path: str, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to a local ``path`` so readers see either the old file or the whole new one.

    Args:
        path: destination file; its parent directory is created if missing.
        data: the full contents.
        durable: fsync the file and its folder, so it survives a power loss (not just a crash).
    """
    parent = os.path.dirname(path) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f"{TMP_PREFIX}{uuid.uuid4().hex}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    if durable:
        fsync_dir(parent)


def copy_hashing(src: IO[bytes], dst: IO[bytes] | None) -> tuple[str, int]:
    """Stream ``src`` into ``dst`` (if given) in chunks; return (sha256 hex, size)."""
    digest = hashlib.sha256()
    size = 0
    while chunk := src.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
        if dst is not None:
            dst.write(chunk)
    return digest.hexdigest(), size


def hash_file(path: str) -> tuple[str, int]:
    """(sha256 hex, size) of a local file, read in chunks."""
    with open(path, "rb") as fh:
        return copy_hashing(fh, None)
