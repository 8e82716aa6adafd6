"""A versioned model registry on a folder: immutable numbered versions, movable aliases, an audit log.

Safe against concurrent writers and against a writer killed at any point (see `ModelRegistry.register`).
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from filelock import FileLock, Timeout
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem
from pydantic import BaseModel, ConfigDict, Field

from mlflowkit.errors import RegistryError
from mlflowkit.store.artifacts import _atomic_write_local, _copy_hashing, _fsync_dir

__all__ = [
    "PAUSE_ENV",
    "AliasEvent",
    "ApprovalEvent",
    "ModelRegistry",
    "ModelVersion",
    "alias_event",
    "chain_hash",
    "chain_problems",
]

PAUSE_ENV = "MLFLOWKIT_TEST_PAUSE_AT"
"""Test seam: set to ``registry.staged`` or ``registry.locked`` to make `register` pause there."""

_MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
_ALIAS_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_VERSION_REF = re.compile(r"^v?([0-9]+)$")
_STALE_STAGING_SECONDS = 3600.0
_VERSION_FILE = "version.json"


class ModelVersion(BaseModel):
    """One immutable version of a model, as recorded in its ``version.json``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(description="The model's name.")
    version: int = Field(ge=1, description="The version number: 1, 2, 3, ...")
    created_at: str = Field(description="When the version was committed, ISO 8601 UTC.")
    files: tuple[str, ...] = Field(description="Names of the version's files, sorted.")
    digests: dict[str, str] = Field(default_factory=dict, description="SHA-256 of each file, by name; checked by `read_file`.")
    lineage: dict[str, Any] = Field(
        default_factory=dict,
        description="Spec hash, data fingerprint, params, metrics, run id, git commit, ... as given.",
    )
    aliases: tuple[str, ...] = Field(default=(), description="Aliases pointing at this version when it was read (not stored).")


class AliasEvent(BaseModel):
    """One alias move, as appended to the model's ``events.jsonl``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(description="The model's name.")
    alias: str = Field(description="The alias that moved.")
    version: int | None = Field(description="The version it points at now; None when removed.")
    previous: int | None = Field(description="The version it pointed at before; None when new.")
    actor: str = Field(description="Who moved it.")
    reason: str = Field(description="Why it moved.")
    at: str = Field(description="When, ISO 8601 UTC.")
    hash: str | None = Field(None, description="Chains this entry to the ones before it (see `ModelRegistry.verify_audit`).")


class ApprovalEvent(BaseModel):
    """One recorded approval of a version, as appended to the model's ``approvals.jsonl``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(description="The model's name.")
    version: int = Field(description="The version approved.")
    actor: str = Field(description="Who approved it.")
    reason: str = Field(description="Why.")
    at: str = Field(description="When, ISO 8601 UTC.")
    hash: str | None = Field(None, description="Chains this entry to the ones before it (see `ModelRegistry.verify_audit`).")


_AUDIT_LOGS = ("events.jsonl", "approvals.jsonl")


def chain_hash(previous: str, entry: Mapping[str, Any]) -> str:
    """The hash of an audit entry: sha256 of the previous entry's hash and this entry's canonical JSON.

    Every entry carries it, so changing, removing or inserting an entry breaks the chain at that place.
    """
    body = json.dumps({k: v for k, v in entry.items() if k != "hash"}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{previous}\n{body}".encode()).hexdigest()


def _chain_head(path: str) -> str:
    """The hash the next entry of the log at ``path`` chains to ("" for an empty log)."""
    head = ""
    for _, entry in _log_entries(path):
        if entry is not None:
            head = chain_hash(head, entry)
    return head


def _log_entries(path: str) -> list[tuple[int, dict[str, Any] | None]]:
    """(line number, entry or None when unreadable) for every non-blank line of a JSON-lines log."""
    try:
        with open(path, "rb") as fh:
            lines = fh.read().split(b"\n")
    except FileNotFoundError:
        return []
    out: list[tuple[int, dict[str, Any] | None]] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        out.append((n, entry if isinstance(entry, dict) else None))
    return out


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _default_actor() -> str:
    if user := os.environ.get("MLFLOWKIT_USER"):
        return user
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in env or passwd (some containers)
        return "unknown"


def _pause(point: str) -> None:
    """Test seam: stop at ``point`` when ``MLFLOWKIT_TEST_PAUSE_AT`` names it, so a test can kill us there."""
    if os.environ.get(PAUSE_ENV) == point:
        print(f"PAUSED {point}", file=sys.stderr, flush=True)
        time.sleep(60)


def _check_file_name(name: str) -> str:
    if (
        not isinstance(name, str)
        or not name
        or name in (".", "..")
        or name.startswith(".")
        or any(c in name for c in "/\\\0")
        or name == _VERSION_FILE
    ):
        raise RegistryError(
            f"invalid file name {name!r}: use a plain name without '/', '\\' or a leading '.', and not {_VERSION_FILE!r}"
        )
    return name


def _listing(names: list[str]) -> str:
    return ", ".join(names) if names else "(none)"


class ModelRegistry:
    """Models by name, each with immutable numbered versions and aliases such as ``champion``.

    Layout under ``root``::

        <model>/versions/<N>/        the files, plus version.json (present in every committed version)
        <model>/aliases.json         current aliases (a cache of events.jsonl, which wins on disagreement)
        <model>/events.jsonl         every alias move, append-only
        <model>/index.json           derived listing of versions for fast reads (the dirs win)
        <model>/.staging/<uuid>/     versions being written
        <model>/.lock                the model's inter-process lock

    Attributes:
        root: the registry folder (absolute).
        lock_timeout: seconds to wait for a model's lock before raising `RegistryError`.
    """

    def __new__(cls, root: str | os.PathLike[str] | None = None, *args: Any, **kwargs: Any) -> ModelRegistry:
        """An object-store ``root`` (``s3://...``) opens `ObjectRegistry`, the same API without rename."""
        from mlflowkit.store._s3 import is_remote

        if cls is ModelRegistry and root is not None and is_remote(root):
            from mlflowkit.store.object_registry import ObjectRegistry

            return super().__new__(ObjectRegistry)
        return super().__new__(cls)

    def __init__(self, root: str | os.PathLike[str], *, lock_timeout: float = 60.0) -> None:
        """Open (and create) a registry.

        Args:
            root: a local folder or ``file://`` URI.
            lock_timeout: seconds to wait for a model's lock before giving up.

        Raises:
            NotImplementedError: ``root`` is not on the local filesystem (not supported yet).
        """
        fs, path = url_to_fs(os.fspath(root))
        if not isinstance(fs, LocalFileSystem):
            raise NotImplementedError(
                f"ModelRegistry supports local folders only for now; {os.fspath(root)!r} is on {type(fs).__name__}"
            )
        self.root: str = os.path.abspath(str(path))
        self.lock_timeout = lock_timeout
        os.makedirs(self.root, exist_ok=True)

    def __repr__(self) -> str:
        return f"ModelRegistry({self.root!r})"

    # ----------------------------------------------------------------- paths and listing

    def _model_dir(self, model: str) -> str:
        if not isinstance(model, str) or not _MODEL_NAME.match(model):
            raise RegistryError(
                f"invalid model name {model!r}: use 1-128 of a-z, 0-9, '.', '_', '-', starting with a letter or digit"
            )
        return os.path.join(self.root, model)

    def _version_dir(self, model: str, version: int) -> str:
        return os.path.join(self._model_dir(model), "versions", str(version))

    def _numbered_dirs(self, model: str) -> list[int]:
        """Every numeric dir under versions/, committed or not."""
        try:
            names = os.listdir(os.path.join(self._model_dir(model), "versions"))
        except FileNotFoundError:
            return []
        return sorted(int(n) for n in names if n.isdigit() and n == str(int(n)))

    def _version_numbers(self, model: str) -> list[int]:
        """Committed versions: the numbered dirs that hold a version.json."""
        return [n for n in self._numbered_dirs(model) if os.path.isfile(os.path.join(self._version_dir(model, n), _VERSION_FILE))]

    def models(self) -> list[str]:
        """Names of the models that have at least one version, sorted."""
        return sorted(name for name in os.listdir(self.root) if _MODEL_NAME.match(name) and self._version_numbers(name))

    def _require_model(self, model: str) -> list[int]:
        numbers = self._version_numbers(model)
        if not numbers:
            raise RegistryError(f"no model {model!r} in registry {self.root}; models: {_listing(self.models())}")
        return numbers

    def _read_version(self, model: str, version: int) -> ModelVersion:
        path = os.path.join(self._version_dir(model, version), _VERSION_FILE)
        try:
            with open(path, "rb") as fh:
                return ModelVersion.model_validate_json(fh.read())
        except FileNotFoundError:
            numbers = self._require_model(model)
            listed = _listing([f"v{n}" for n in numbers])
            raise RegistryError(f"model {model!r} has no version {version}; versions: {listed}") from None

    # ----------------------------------------------------------------- locking and index

    @contextlib.contextmanager
    def _lock(self, model: str) -> Iterator[None]:
        path = os.path.join(self._model_dir(model), ".lock")
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

    def _write_index(self, model: str) -> None:
        """Rebuild index.json from the version dirs. Call with the model's lock held."""
        docs = [self._read_version(model, n).model_dump(mode="json", exclude={"aliases"}) for n in self._version_numbers(model)]
        text = json.dumps({"model": model, "versions": docs}, sort_keys=True, indent=2) + "\n"
        _atomic_write_local(os.path.join(self._model_dir(model), "index.json"), text.encode())

    def _load_versions(self, model: str) -> list[ModelVersion]:
        numbers = self._require_model(model)
        try:
            with open(os.path.join(self._model_dir(model), "index.json"), "rb") as fh:
                doc = json.loads(fh.read())
            listed = [ModelVersion.model_validate(v) for v in doc["versions"]]
            if [v.version for v in listed] == numbers:
                return listed
        except (OSError, ValueError, KeyError, TypeError):
            pass  # missing or damaged: fall through and trust the dirs
        versions = [self._read_version(model, n) for n in numbers]
        # Repair the index only if nobody is writing: a reader must never wait on a writer.
        lock = FileLock(os.path.join(self._model_dir(model), ".lock"), blocking=False)
        with contextlib.suppress(Timeout), lock:
            self._write_index(model)
        return versions

    # ----------------------------------------------------------------- versions

    def register(
        self,
        model: str,
        files: Mapping[str, bytes | os.PathLike[str]],
        lineage: Mapping[str, Any],
    ) -> ModelVersion:
        """Add a new version of ``model`` (created on first use), numbered 1 + the highest so far.

        Every file and version.json are written to a private staging dir first; then, under the
        model's lock, the number is chosen and the staging dir is renamed to ``versions/<N>`` — that
        rename is the commit. A writer killed at any point leaves either no version or a whole one;
        its staging dir is removed by a later `register` once it is an hour old.

        Test seam: when env ``MLFLOWKIT_TEST_PAUSE_AT`` is ``registry.staged`` (all files staged, lock
        not taken) or ``registry.locked`` (lock held, before the rename), the process prints
        ``PAUSED <point>`` to stderr and sleeps 60 s so a test can kill it there.

        Args:
            model: the model's name (``^[a-z0-9][a-z0-9._-]{0,127}$``).
            files: file name -> bytes, or a path to a local file to copy.
            lineage: JSON-serialisable facts about where the version came from (spec hash, data
                fingerprint, params, metrics, run id, git commit, ...).

        Returns:
            The committed version (with no aliases yet).

        Raises:
            RegistryError: a bad model or file name, no files, lineage that is not JSON, or the lock
                could not be taken in time.
        """
        model_dir = self._model_dir(model)
        if not files:
            raise RegistryError(f"register {model!r}: no files given; a version needs at least one")
        for name in files:
            _check_file_name(name)
        try:
            lineage_doc: dict[str, Any] = json.loads(json.dumps(dict(lineage), allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise RegistryError(f"register {model!r}: lineage must be plain JSON: {exc}") from exc

        versions_dir = os.path.join(model_dir, "versions")
        staging_root = os.path.join(model_dir, ".staging")
        os.makedirs(versions_dir, exist_ok=True)
        os.makedirs(staging_root, exist_ok=True)
        self._clean_stale_staging(staging_root)

        staging = os.path.join(staging_root, uuid.uuid4().hex)
        os.mkdir(staging)
        try:
            digests = {name: self._stage_file(staging, name, src) for name, src in files.items()}
            _pause("registry.staged")
            with self._lock(model):
                number = (self._numbered_dirs(model) or [0])[-1] + 1
                version = ModelVersion(
                    model=model,
                    version=number,
                    created_at=_now(),
                    files=tuple(sorted(files)),
                    digests=digests,
                    lineage=lineage_doc,
                )
                doc = version.model_dump(mode="json", exclude={"aliases"})
                _write_synced(
                    os.path.join(staging, _VERSION_FILE),
                    (json.dumps(doc, sort_keys=True, indent=2) + "\n").encode(),
                )
                _fsync_dir(staging)
                _pause("registry.locked")
                os.replace(staging, os.path.join(versions_dir, str(number)))
                _fsync_dir(versions_dir)
                self._write_index(model)
        except BaseException:
            # Nothing was committed if the staging dir still exists; after the rename it is gone.
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return version

    @staticmethod
    def _stage_file(staging: str, name: str, src: bytes | os.PathLike[str]) -> str:
        path = os.path.join(staging, name)
        if isinstance(src, bytes | bytearray | memoryview):
            data = bytes(src)
            _write_synced(path, data)
            return hashlib.sha256(data).hexdigest()
        if isinstance(src, os.PathLike):
            with open(src, "rb") as fin, open(path, "wb") as fout:
                sha, _ = _copy_hashing(fin, fout)
                fout.flush()
                os.fsync(fout.fileno())
            return sha
        raise RegistryError(f"file {name!r}: expected bytes or a path object (pathlib.Path), got {type(src).__name__}")

    @staticmethod
    def _clean_stale_staging(staging_root: str) -> None:
        cutoff = time.time() - _STALE_STAGING_SECONDS
        for entry in os.scandir(staging_root):
            try:
                # The newest mtime inside counts, so a slow copy of a big file is not taken for stale.
                newest = max([entry.stat().st_mtime] + [e.stat().st_mtime for e in os.scandir(entry.path) if e.is_file()])
            except (FileNotFoundError, NotADirectoryError):
                continue
            if newest < cutoff:
                shutil.rmtree(entry.path, ignore_errors=True)

    def versions(self, model: str) -> list[ModelVersion]:
        """Every version of ``model``, ascending, with its current aliases.

        Raises:
            RegistryError: the model does not exist.
        """
        by_version = self._aliases_by_version(model)
        return [v.model_copy(update={"aliases": by_version.get(v.version, ())}) for v in self._load_versions(model)]

    def get(self, model: str, ref: int | str) -> ModelVersion:
        """One version of ``model``, with its current aliases.

        Args:
            model: the model's name.
            ref: a version number, ``"3"``, ``"v3"``, or an alias name such as ``"champion"``.

        Raises:
            RegistryError: the model, version or alias does not exist, or ``ref`` is malformed.
        """
        number = self._resolve(model, ref)
        version = self._read_version(model, number)
        return version.model_copy(update={"aliases": self._aliases_by_version(model).get(number, ())})

    def _resolve(self, model: str, ref: int | str) -> int:
        if isinstance(ref, int) and not isinstance(ref, bool):
            return ref
        if isinstance(ref, str):
            if m := _VERSION_REF.match(ref):
                return int(m.group(1))
            if _ALIAS_NAME.match(ref):
                current = self.aliases(model)
                if ref not in current:
                    listed = _listing([f"{a} -> v{n}" for a, n in current.items()])
                    raise RegistryError(f"model {model!r} has no alias {ref!r}; aliases: {listed}")
                return current[ref]
        raise RegistryError(f"invalid version reference {ref!r} for model {model!r}: use a number, 'v<N>' or an alias")

    def file_path(self, model: str, version: int, name: str) -> str:
        """Path of one file of a version, for readers that open files themselves (do not write to it).

        Raises:
            RegistryError: a bad name, or the model, version or file does not exist.
        """
        _check_file_name(name)
        record = self._read_version(model, version)
        if name not in record.files:
            raise RegistryError(f"model {model!r} v{version} has no file {name!r}; files: {_listing(list(record.files))}")
        return os.path.join(self._version_dir(model, version), name)

    def read_file(self, model: str, version: int, name: str) -> bytes:
        """The bytes of one file of a version, checked against the digest recorded at registration.

        Raises:
            RegistryError: the file does not exist, or its bytes no longer match its digest.
        """
        path = self.file_path(model, version, name)
        with open(path, "rb") as fh:
            data = fh.read()
        expected = self._read_version(model, version).digests.get(name)
        if expected is not None and hashlib.sha256(data).hexdigest() != expected:
            raise RegistryError(
                f"model {model!r} v{version} file {name!r} is damaged: its SHA-256 no longer matches "
                f"the one recorded at registration ({path})"
            )
        return data

    # ----------------------------------------------------------------- aliases

    def _alias_state(self, model: str) -> dict[str, int]:
        """Current aliases: aliases.json if it reflects the whole log, else a replay of the log."""
        model_dir = self._model_dir(model)
        try:
            log_size = os.path.getsize(os.path.join(model_dir, "events.jsonl"))
        except FileNotFoundError:
            log_size = 0
        try:
            with open(os.path.join(model_dir, "aliases.json"), "rb") as fh:
                doc = json.loads(fh.read())
            if doc["log_size"] == log_size:
                return {str(k): int(v) for k, v in doc["aliases"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
        # A writer died between appending the event and rewriting aliases.json: the log wins.
        state: dict[str, int] = {}
        for event in self._read_events(model):
            if event.version is None:
                state.pop(event.alias, None)
            else:
                state[event.alias] = event.version
        return state

    def _aliases_by_version(self, model: str) -> dict[int, tuple[str, ...]]:
        out: dict[int, list[str]] = {}
        for alias, number in sorted(self._alias_state(model).items()):
            out.setdefault(number, []).append(alias)
        return {n: tuple(names) for n, names in out.items()}

    def aliases(self, model: str) -> dict[str, int]:
        """The model's aliases and the versions they point at, sorted by alias.

        Raises:
            RegistryError: the model does not exist.
        """
        self._require_model(model)
        return dict(sorted(self._alias_state(model).items()))

    def set_alias(self, model: str, alias: str, version: int, *, reason: str, actor: str | None = None) -> AliasEvent:
        """Point ``alias`` at ``version``, recording who moved it, when and why.

        Args:
            model: the model's name.
            alias: ``[a-z][a-z0-9_-]*`` (not ``v<N>``, which would read as a version number).
            version: an existing version number.
            reason: why the alias moves (required; it goes in the audit log).
            actor: who moves it; defaults to env ``MLFLOWKIT_USER``, else the login name.

        Returns:
            The recorded event.

        Raises:
            RegistryError: a bad alias name, an empty reason, or a missing model or version.
        """
        self._check_alias(alias)
        if isinstance(version, bool) or not isinstance(version, int):
            raise RegistryError(f"set_alias {alias!r}: version must be an int, got {version!r}")
        self._read_version(model, version)  # versions are never deleted, so checking first is safe
        return self._move_alias(model, alias, version, reason=reason, actor=actor)

    def remove_alias(self, model: str, alias: str, *, reason: str, actor: str | None = None) -> AliasEvent:
        """Remove ``alias``, recording who removed it, when and why.

        Raises:
            RegistryError: the model or the alias does not exist, or the reason is empty.
        """
        self._check_alias(alias)
        self._require_model(model)
        return self._move_alias(model, alias, None, reason=reason, actor=actor)

    @staticmethod
    def _check_alias(alias: str) -> None:
        if not isinstance(alias, str) or not _ALIAS_NAME.match(alias) or _VERSION_REF.match(alias):
            raise RegistryError(f"invalid alias {alias!r}: use [a-z][a-z0-9_-]* (up to 64 characters), not 'v<N>'")

    def _move_alias(self, model: str, alias: str, version: int | None, *, reason: str, actor: str | None) -> AliasEvent:
        if not reason or not reason.strip():
            raise RegistryError(f"alias {alias!r} of model {model!r}: a reason is required")
        model_dir = self._model_dir(model)
        with self._lock(model):
            state = self._alias_state(model)
            event = alias_event(model, alias, version, state, reason=reason, actor=actor)
            log = os.path.join(model_dir, "events.jsonl")
            event = event.model_copy(update={"hash": chain_hash(_chain_head(log), event.model_dump(mode="json"))})
            # The log is written first: a crash before aliases.json is rewritten is repaired by replay.
            log_size = _append_line(log, event.model_dump_json())
            if version is None:
                state.pop(alias, None)
            else:
                state[alias] = version
            doc = {"aliases": dict(sorted(state.items())), "log_size": log_size}
            _atomic_write_local(
                os.path.join(model_dir, "aliases.json"),
                (json.dumps(doc, sort_keys=True, indent=2) + "\n").encode(),
            )
        return event

    def _read_events(self, model: str) -> list[AliasEvent]:
        try:
            with open(os.path.join(self._model_dir(model), "events.jsonl"), "rb") as fh:
                lines = fh.read().split(b"\n")
        except FileNotFoundError:
            return []
        events = []
        for line in lines:
            if not line.strip():
                continue
            try:
                events.append(AliasEvent.model_validate_json(line))
            except ValueError:
                continue  # a line torn by a crash mid-write; `_append_line` starts the next one fresh
        return events

    def history(self, model: str) -> list[AliasEvent]:
        """Every alias move of ``model``, oldest first.

        Raises:
            RegistryError: the model does not exist.
        """
        self._require_model(model)
        return self._read_events(model)

    # ----------------------------------------------------------------- approvals and the audit trail

    def record_approval(self, model: str, version: int, *, reason: str, actor: str | None = None) -> ApprovalEvent:
        """Append an approval of ``version`` to the model's audit trail (``approvals.jsonl``); nothing else moves.

        Whether the approver may approve is the caller's business (see :func:`mlflowkit.store.promotion.approve`).

        Raises:
            RegistryError: an empty reason, or a missing model or version.
        """
        if not reason or not reason.strip():
            raise RegistryError(f"approving {model} v{version}: a reason is required")
        self._read_version(model, version)
        log = os.path.join(self._model_dir(model), "approvals.jsonl")
        with self._lock(model):
            event = ApprovalEvent(model=model, version=version, actor=actor or _default_actor(), reason=reason, at=_now())
            event = event.model_copy(update={"hash": chain_hash(_chain_head(log), event.model_dump(mode="json"))})
            _append_line(log, event.model_dump_json())
        return event

    def approvals(self, model: str, version: int | None = None) -> list[ApprovalEvent]:
        """Recorded approvals of ``model`` (of one ``version``), oldest first.

        Raises:
            RegistryError: the model does not exist.
        """
        self._require_model(model)
        found = []
        for _, entry in _log_entries(os.path.join(self._model_dir(model), "approvals.jsonl")):
            try:
                event = ApprovalEvent.model_validate(entry)
            except ValueError:
                continue  # unreadable: `verify_audit` reports it
            if version is None or event.version == version:
                found.append(event)
        return found

    def verify_audit(self, model: str) -> list[str]:
        """Check the hash chains of the model's audit logs (alias moves, approvals); [] when both are intact.

        The logs are append-only: the registry never rewrites them. An entry changed, removed or inserted by
        hand breaks the chain where it happened, and that is reported. Entries written before the chain
        existed (no hash) are accepted only before the first chained one. Losing the newest entries cannot
        be told from the log alone; keep the head hash (``models audit`` prints it) somewhere else to tell.

        Raises:
            RegistryError: the model does not exist.
        """
        self._require_model(model)
        problems = []
        for name in _AUDIT_LOGS:
            entries = [(f"{name} line {n}", entry) for n, entry in _log_entries(os.path.join(self._model_dir(model), name))]
            problems += chain_problems(entries, unreadable="unreadable (a write torn by a crash, or an edit)")
        return problems


def chain_problems(entries: list[tuple[str, dict[str, Any] | None]], *, unreadable: str) -> list[str]:
    """What is wrong with one hash-chained log, each entry given with the label its problems are reported under.

    Old entries without hashes are accepted as a prefix; after a mismatch the chain resynchronises, so that
    only the places of tampering are reported.
    """
    problems: list[str] = []
    head, chained = "", False
    for label, entry in entries:
        if entry is None:
            problems.append(f"{label}: {unreadable}")
            continue
        expected = chain_hash(head, entry)
        stored = entry.get("hash")
        if stored is None:
            if chained:
                problems.append(f"{label}: entry without a hash after chained entries (inserted?)")
        elif stored != expected:
            problems.append(
                f"{label}: does not match the hash chain: this entry, or one before it, was changed, removed or inserted"
            )
            expected = stored
        chained = chained or stored is not None
        head = expected
    return problems


def alias_event(
    model: str, alias: str, version: int | None, state: Mapping[str, int], *, reason: str, actor: str | None
) -> AliasEvent:
    """The event that moves ``alias`` to ``version`` (None: removes it) from ``state``, both backends' way.

    Raises:
        RegistryError: the alias is to be removed and does not exist.
    """
    previous = state.get(alias)
    if version is None and previous is None:
        listed = _listing([f"{a} -> v{n}" for a, n in sorted(state.items())])
        raise RegistryError(f"model {model!r} has no alias {alias!r}; aliases: {listed}")
    return AliasEvent(
        model=model, alias=alias, version=version, previous=previous, actor=actor or _default_actor(), reason=reason, at=_now()
    )


def _write_synced(path: str, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _append_line(path: str, line: str) -> int:
    """Append one line with a single write and fsync; return the file's size after it."""
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        data = line.encode() + b"\n"
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data  # the last write was torn: do not glue this event onto it
        if os.write(fd, data) != len(data):
            raise RegistryError(f"short write appending to {path}")
        os.fsync(fd)
        return os.fstat(fd).st_size
    finally:
        os.close(fd)
