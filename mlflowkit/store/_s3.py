"""Object-store primitives for stores without rename: open a filesystem, create-if-absent, and a lease.

S3 (and S3-compatible servers) publish a single PUT whole or not at all, and since 2024 honour
``If-None-Match: *`` on PUT: of two writers of the same key exactly one succeeds. Everything that must
not be lost or doubled on an object store is built on that one primitive (see docs/object-store.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

# fsspec ships no type information; its surface here is small and checked by the tests.
import fsspec
from fsspec.core import split_protocol, url_to_fs

__all__ = ["LEASE_SECONDS", "atomic_create_supported", "create_exclusive", "is_remote", "lease", "open_fs"]

LEASE_SECONDS = 600.0
"""How long a lease (`lease`) is held without its holder releasing it before another may take it over."""

# Filesystems whose ``pipe_file(mode="create")`` is an atomic create-if-absent. s3fs sends
# ``If-None-Match: *`` (AWS S3 since 2024-08, MinIO, moto); memory:// is one process under the GIL.
# Others (gcsfs, azure, ...) are refused until someone verifies theirs: fsspec's fallback is a
# check-then-write, which two writers can both pass.
_ATOMIC_CREATE = {"s3", "s3a", "memory"}


def is_remote(root: str | os.PathLike[str]) -> bool:
    """True when ``root`` names a non-local fsspec filesystem (``s3://``, ``memory://``, ...)."""
    protocol, _ = split_protocol(os.fspath(root))
    return protocol not in (None, "file", "local")


def open_fs(root: str | os.PathLike[str]) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and path of ``root``; S3 without s3fs's listing cache.

    Another process may write to the store at any time, so a cached listing would hide its objects
    (S3 itself is strongly consistent for reads and lists since 2020-12). Credentials, region and
    ``endpoint_url`` come from the environment (``AWS_*``, ``~/.aws``, ``FSSPEC_S3_*``), never the spec.
    """
    text = os.fspath(root)
    protocol, _ = split_protocol(text)
    options: dict[str, Any] = {"use_listings_cache": False} if protocol in ("s3", "s3a") else {}
    fs, path = url_to_fs(text, **options)
    return fs, str(path)


def atomic_create_supported(fs: fsspec.AbstractFileSystem) -> bool:
    """Whether ``fs`` has an atomic create-if-absent (see `create_exclusive`)."""
    protocols = fs.protocol if isinstance(fs.protocol, tuple | list) else (fs.protocol,)
    return any(p in _ATOMIC_CREATE for p in protocols)


def create_exclusive(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> bool:
    """Write ``data`` to ``path`` only if nothing is there; True if this call created it.

    ``data`` must be unique to the caller (carry a random token): when a PUT succeeded on the server
    but its answer was lost, the client's retry meets its own object, and only the bytes tell that
    the object is ours.
    """
    try:
        fs.pipe_file(path, data, mode="create")
    except FileExistsError:
        try:
            return bool(fs.cat_file(path) == data)
        except FileNotFoundError:  # created and deleted since (a released lease): not ours
            return False
    return True


def _take_over(fs: fsspec.AbstractFileSystem, path: str, seen: dict[str, Any], data: bytes) -> bool:
    """Replace the expired lease whose listing is ``seen`` with ``data``, if nobody replaced it first."""
    etag = seen.get("ETag")
    if etag is not None:
        try:  # S3 compare-and-swap: the PUT applies only if the object is still the one we judged expired
            fs.pipe_file(path, data, IfMatch=etag)
        except (OSError, ValueError):  # PreconditionFailed (a 412) or the object is gone
            return False
        return bool(fs.cat_file(path) == data)
    with contextlib.suppress(FileNotFoundError):  # no ETag (memory://, one process): delete, then create
        fs.rm_file(path)
    return create_exclusive(fs, path, data)


@contextlib.contextmanager
def lease(fs: fsspec.AbstractFileSystem, path: str, *, timeout: float, ttl: float = LEASE_SECONDS) -> Iterator[None]:
    """Hold the lease object at ``path`` for the ``with`` block: a lock for processes on any host.

    Taken by creating the object (`create_exclusive`); released by deleting it. A lease whose holder
    died is taken over once it is ``ttl`` seconds old (by the writer's clock: keep hosts' clocks in
    sync). A holder that keeps it longer than ``ttl`` may lose it to another: there is no renewal.

    Raises:
        TimeoutError: still held by another after ``timeout`` seconds.
    """
    token = uuid.uuid4().hex
    deadline = time.monotonic() + timeout
    pause = 0.05
    while True:
        body = {"token": token, "expires": time.time() + ttl, "host": socket.gethostname(), "pid": os.getpid()}
        data = json.dumps(body, sort_keys=True).encode()
        if create_exclusive(fs, path, data):
            break
        try:
            seen = fs.info(path)
            held = json.loads(fs.cat_file(path))
            expired = float(held["expires"]) < time.time()
        except FileNotFoundError:
            continue  # released between our create and our look: try again at once
        except (ValueError, KeyError, TypeError):
            expired = True  # not a lease we wrote (damaged): treat it as expired
        if expired and _take_over(fs, path, seen, data):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"lease {fs.unstrip_protocol(path)} is held by another (gave up after {timeout} s)")
        time.sleep(pause)
        pause = min(pause * 2, 1.0)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError, ValueError):
            # Only our own lease is deleted: past ttl another may have taken it over.
            if json.loads(fs.cat_file(path)).get("token") == token:
                fs.rm_file(path)
