"""Content-addressed artifact store on any fsspec URI (a local folder by default).

Steps exchange `Ref`s to what this store holds, never live objects; every write is atomic, and every
read of an object checks its bytes against their SHA-256 (a store may be shared: its bytes are not
trusted until they are checked).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

# fsspec ships no type information; its surface here is small and checked by the tests.
import fsspec
from filelock import FileLock
from fsspec.implementations.local import LocalFileSystem

from mlflowkit.errors import IntegrityError, MlflowkitError
from mlflowkit.handoff import Ref  # what steps pass to each other: defined with the other hand-off types
from mlflowkit.store._s3 import atomic_create_supported, lease, open_fs
from mlflowkit.store.files import TMP_PREFIX, atomic_write_local, copy_hashing, fsync_dir

__all__ = ["ArtifactStore", "Ref", "object_sha", "store_exists"]

_LOCK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or "\\" in key or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid store key {key!r}: use a relative key like 'objects/ab/abcd...'")
    return key


def _object_key(sha256: str) -> str:
    return f"objects/{sha256[:2]}/{sha256}"


_OBJECT_KEY = re.compile(r"^objects/([0-9a-f]{2})/(\1[0-9a-f]{62})$")


def object_sha(key: str) -> str | None:
    """The SHA-256 an object's key names (``objects/ab/ab...``), or None for a key that is not an object's."""
    m = _OBJECT_KEY.match(key)
    return m.group(2) if m else None


def store_exists(root: str | os.PathLike[str]) -> bool:
    """Whether anything is at ``root`` (a folder, or on S3 any object under the prefix), without creating it.

    Opening an `ArtifactStore` creates its root; a command that only reads asks this first, so a mistyped
    ``--store`` is an error rather than a new empty store.

    Raises:
        MlflowkitError: the filesystem cannot be reached (no credentials, a bucket that does not exist, ...).
    """
    fs, path = open_fs(root)
    try:
        return bool(fs.exists(path))
    except OSError as exc:
        raise MlflowkitError(f"cannot open the store {fs.unstrip_protocol(path)}: {exc}") from exc


class ArtifactStore:
    """A content-addressed store of bytes on a local folder or any fsspec URI.

    Objects live under ``objects/<sha[:2]>/<sha>``: the same bytes always land on the same key, so a
    put is idempotent and a cached step can find its output again. JSON documents (run records,
    manifests) live under keys the caller picks.

    Attributes:
        root: the store's root as a path of ``fs`` (an absolute local path for local stores).
        uri: the root as a full URI (``file:///...``, ``s3://...``); pass it to another process.
        fs: the fsspec filesystem the store lives on.
        is_local: True when ``fs`` is the local filesystem, so readers may open files directly.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        """Open (and create) a store.

        Args:
            root: a local path or an fsspec URI (``file://``, ``s3://``, ``memory://``, ...).
        """
        fs, path = open_fs(root)  # S3 without a listing cache: other processes write to the same store
        self.fs: fsspec.AbstractFileSystem = fs
        self.root: str = str(path).rstrip("/") or "/"
        self.is_local: bool = isinstance(fs, LocalFileSystem)
        self.uri: str = str(fs.unstrip_protocol(self.root))
        try:
            self.fs.makedirs(self.root, exist_ok=True)
        except OSError as exc:  # a bucket that does not exist or may not be created, no credentials, ...
            raise MlflowkitError(f"cannot open the store {self.uri}: {exc}") from exc

    def __repr__(self) -> str:
        return f"ArtifactStore({self.uri!r})"

    def _path(self, key: str) -> str:
        _check_key(key)
        if self.is_local:
            return os.path.join(self.root, *key.split("/"))
        return f"{self.root.rstrip('/')}/{key}"

    @staticmethod
    def _key_of(ref: Ref | str) -> str:
        return _check_key(ref.key if isinstance(ref, Ref) else ref)

    def _object_present(self, key: str, size: int) -> bool:
        # Present means whole and unchanged: a damaged or replaced object is rewritten.
        path = self._path(key)
        try:
            if self.fs.size(path) != size:
                return False
        except FileNotFoundError:
            return False
        return self.problem(key) is None

    def _expected(self, ref: Ref | str) -> str | None:
        """The SHA-256 the bytes under ``ref`` must have: the ref's, or the one an object key names."""
        return ref.sha256 if isinstance(ref, Ref) else object_sha(self._key_of(ref))

    def problem(self, ref: Ref | str) -> str | None:
        """What is wrong with the stored object: None when it is there and hashes as ``ref`` says.

        Returns:
            None, ``"missing"``, or what was found instead: the SHA-256 the bytes hash to (or their size,
            when only that differs from the ref's). A key that is not an object's
            (a JSON document) has no hash to check: only its presence is.
        """
        try:
            with self.fs.open(self._path(self._key_of(ref)), "rb") as fh:
                sha, size = copy_hashing(fh, None)
        except FileNotFoundError:
            return "missing"
        expected = self._expected(ref)
        if expected is not None and sha != expected:
            return sha
        if isinstance(ref, Ref) and size != ref.size:
            return f"{size} bytes"
        return None

    def put_bytes(self, data: bytes, media_type: str, meta: Mapping[str, Any] | None = None) -> Ref:
        """Store bytes under their content address.

        Args:
            data: the bytes.
            media_type: what they are, e.g. ``application/json``.
            meta: small JSON metadata to carry on the returned ref (not stored with the bytes).

        Returns:
            A `Ref` to the object; storing the same bytes again returns the same key without rewriting.
        """
        sha = hashlib.sha256(data).hexdigest()
        key = _object_key(sha)
        if not self._object_present(key, len(data)):
            self._write(key, data)
        return Ref(key=key, sha256=sha, size=len(data), media_type=media_type, meta=dict(meta or {}))

    def put_file(self, path: str | os.PathLike[str], media_type: str, meta: Mapping[str, Any] | None = None) -> Ref:
        """Store a local file under its content address, streaming it in chunks.

        Args:
            path: a local file.
            media_type: what it is, e.g. ``application/vnd.apache.parquet``.
            meta: small JSON metadata to carry on the returned ref.

        Returns:
            A `Ref` to the object.
        """
        if self.is_local:
            # Copy and hash in one pass into a temp file on the same filesystem, then rename it
            # into place once the hash (and so the key) is known.
            objects = os.path.join(self.root, "objects")
            os.makedirs(objects, exist_ok=True)
            tmp = os.path.join(objects, f"{TMP_PREFIX}{uuid.uuid4().hex}")
            try:
                with open(path, "rb") as src, open(tmp, "wb") as dst:
                    sha, size = copy_hashing(src, dst)
                    dst.flush()
                    os.fsync(dst.fileno())
                key = _object_key(sha)
                if self._object_present(key, size):
                    os.remove(tmp)
                else:
                    final = self._path(key)
                    os.makedirs(os.path.dirname(final), exist_ok=True)
                    os.replace(tmp, final)
                    fsync_dir(os.path.dirname(final))
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(tmp)
                raise
        else:
            with open(path, "rb") as src:
                sha, size = copy_hashing(src, None)
            key = _object_key(sha)
            if not self._object_present(key, size):
                target = self._path(key)
                self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
                # Object stores publish an upload whole or not at all, so no temp + rename there.
                self.fs.put_file(os.fspath(path), target)
        return Ref(key=key, sha256=sha, size=size, media_type=media_type, meta=dict(meta or {}))

    def _write(self, key: str, data: bytes, *, durable: bool = True) -> None:
        path = self._path(key)
        if self.is_local:
            atomic_write_local(path, data, durable=durable)
        else:
            self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            # A single PUT is atomic on object stores; a rename there would be a copy + delete.
            self.fs.pipe_file(path, data)

    def get_bytes(self, ref: Ref | str) -> bytes:
        """Read an object's bytes, checked against their SHA-256 (the ref's, or the one its key names).

        Args:
            ref: a `Ref` or a store-relative key.

        Raises:
            FileNotFoundError: nothing is stored under that key.
            IntegrityError: the bytes do not hash as they must (damaged, or replaced by someone).
        """
        key = self._key_of(ref)
        data = bytes(self.fs.cat_file(self._path(key)))
        expected = self._expected(ref)
        if expected is not None and (found := hashlib.sha256(data).hexdigest()) != expected:
            raise IntegrityError(self.where(key), expected, found)
        return data

    def local_path(self, ref: Ref | str) -> str | None:
        """A path readers (pandas, onnxruntime, ...) can open directly, checked first; None if the store is not local.

        The file is hashed when handed out; prefer `get_bytes`, whose bytes are the very ones checked.

        Raises:
            FileNotFoundError: nothing is stored under that key.
            IntegrityError: the file does not hash as it must.
        """
        if not self.is_local:
            return None
        path = self._path(self._key_of(ref))
        problem = self.problem(ref)
        if problem == "missing":
            raise FileNotFoundError(path)
        if problem is not None:
            raise IntegrityError(path, self._expected(ref) or f"{ref.size if isinstance(ref, Ref) else '?'} bytes", problem)
        return path

    def where(self, ref: Ref | str) -> str:
        """Where the ref's key is: a local path, or a URI (``s3://...``); for messages."""
        path = self._path(self._key_of(ref))
        return path if self.is_local else str(self.fs.unstrip_protocol(path))

    def delete(self, ref: Ref | str) -> None:
        """Remove what is stored under the ref's key (nothing happens when nothing is there)."""
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._path(self._key_of(ref)))

    def exists(self, ref: Ref | str) -> bool:
        """Whether something is stored under the ref's key."""
        return bool(self.fs.exists(self._path(self._key_of(ref))))

    def verify(self, ref: Ref | str) -> bool:
        """Re-hash the stored bytes and compare them with the ref; False if missing or different (see `problem`)."""
        return self.problem(ref) is None

    def write_json(self, key: str, obj: Any, *, durable: bool = True) -> None:
        """Write a JSON document under ``key``, replacing any previous one atomically.

        Args:
            key: store-relative key, e.g. ``runs/<id>/record.json``.
            obj: anything `json.dumps` accepts; written with sorted keys and indent 2.
            durable: fsync it; pass False for what may be lost on a power cut (a cache entry: a miss).
        """
        text = json.dumps(obj, sort_keys=True, indent=2) + "\n"
        self._write(key, text.encode("utf-8"), durable=durable)

    def read_json(self, key: str) -> Any:
        """Read a JSON document written by `write_json`.

        Raises:
            FileNotFoundError: nothing is stored under ``key``.
        """
        return json.loads(self.fs.cat_file(self._path(key)))

    def list_keys(self, prefix: str) -> list[str]:
        """Store-relative keys that start with ``prefix`` (``""`` for all), sorted; temp files excluded."""
        if prefix.startswith("/") or ".." in prefix.split("/"):
            raise ValueError(f"invalid key prefix {prefix!r}: use a relative prefix like 'runs/'")
        base = self.root.rstrip("/")
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = f"{base}/{folder}" if folder else base
        if not self.fs.isdir(start):
            return []
        keys = []
        for found in self.fs.find(start):
            # fsspec returns posix-style paths on every platform, rooted like `base`.
            rel = str(found)[len(base) :].lstrip("/")
            if rel.startswith(prefix) and not rel.rsplit("/", 1)[-1].startswith(TMP_PREFIX):
                keys.append(rel)
        return sorted(keys)

    def lock(self, name: str, timeout: float = 60.0) -> contextlib.AbstractContextManager[None]:
        """An inter-process lock named ``name``, held for the ``with`` block.

        Args:
            name: a simple name (letters, digits, ``._-``); the lock file is ``<root>/locks/<name>.lock``.
            timeout: seconds to wait before `filelock.Timeout` (a `TimeoutError`) is raised.

        Raises:
            NotImplementedError: an object store without a verified atomic create-if-absent (see docs/object-store.md).

        On an object store (S3) the lock is a lease object ``locks/<name>.lock``, created only if absent;
        a holder that dies leaves it until it expires (`mlflowkit.store._s3.LEASE_SECONDS`).
        """
        if not _LOCK_NAME.match(name):
            raise ValueError(f"invalid lock name {name!r}: use letters, digits, '.', '_' and '-'")
        if not self.is_local:
            if not atomic_create_supported(self.fs):
                raise NotImplementedError(
                    f"ArtifactStore.lock needs an atomic create-if-absent, which {type(self.fs).__name__} is not known to "
                    f"have ({self.uri!r}). Use a local or s3:// store, or coordinate writers outside the store."
                )
            return lease(self.fs, self._path(f"locks/{name}.lock"), timeout=timeout)
        return self._local_lock(os.path.join(self.root, "locks", f"{name}.lock"), timeout)

    @staticmethod
    @contextlib.contextmanager
    def _local_lock(path: str, timeout: float) -> Iterator[None]:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with FileLock(path, timeout=timeout):
            yield
