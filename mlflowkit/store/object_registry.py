"""The model registry on an object store (S3 and S3-compatible servers), where there is no rename.

A conditional write (``If-None-Match: *``) commits instead: of two writers of one key, exactly one
wins. The layout, the guarantees and their limits are in docs/object-store.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from mlflowkit.errors import RegistryError
from mlflowkit.store._s3 import atomic_create_supported, create_exclusive, lease, open_fs
from mlflowkit.store.artifacts import _copy_hashing
from mlflowkit.store.registry import (
    _MODEL_NAME,
    _VERSION_FILE,
    AliasEvent,
    ApprovalEvent,
    ModelRegistry,
    ModelVersion,
    _check_file_name,
    _default_actor,
    _listing,
    _now,
    _pause,
    alias_event,
    chain_hash,
    chain_problems,
)

__all__ = ["ObjectRegistry"]

_CLAIM_FILE = ".claim"
_ALIASES_FILE = "aliases.json"


def _number(text: str) -> int | None:
    return int(text) if text.isdigit() and text == str(int(text)) else None


class ObjectRegistry(ModelRegistry):
    """`ModelRegistry` on an object store: the same methods, models, versions and aliases.

    ``ModelRegistry("s3://bucket/prefix")`` returns one of these. Layout under ``root``::

        <model>/versions/<N>/.claim         who took number N (created if absent: one writer per number)
        <model>/versions/<N>/<file>         the version's files, uploaded after the claim
        <model>/versions/<N>/version.json   the commit, written last and only if absent
        <model>/events/<seq>.json           one alias move per object, seq 1, 2, ... (created if absent)
        <model>/aliases.json                a snapshot of the aliases after some seq (a cache; the events win)
        <model>/.lock                       a lease for `_lock` (not used by register or alias moves)

    A version exists once its ``version.json`` does. A writer killed before that leaves a claimed
    number that is never listed and never reused.

    Attributes:
        root: the registry's URI (``s3://bucket/prefix/registry``).
        fs: the fsspec filesystem it lives on.
        lock_timeout: seconds to keep retrying a contended commit before raising `RegistryError`.
        stale_after: seconds after which a later `register` deletes the files of a claimed number
            whose writer never committed (its claim stays, so the number is not reused).
    """

    stale_after: float = 3600.0

    def __init__(self, root: str | os.PathLike[str], *, lock_timeout: float = 60.0) -> None:
        """Open (and create) a registry on an object store.

        Args:
            root: an fsspec URI, e.g. ``s3://bucket/prefix/registry``.
            lock_timeout: seconds to keep retrying a contended commit before giving up.

        Raises:
            NotImplementedError: the filesystem has no verified atomic create-if-absent.
        """
        fs, path = open_fs(root)
        if not atomic_create_supported(fs):
            raise NotImplementedError(
                f"the model registry needs an atomic create-if-absent, which {type(fs).__name__} is not known to have "
                f"({os.fspath(root)!r}); use a local folder or s3:// (AWS S3, MinIO or another server with If-None-Match)"
            )
        self.fs = fs
        self._base = path.rstrip("/")
        self.root = str(fs.unstrip_protocol(self._base))
        self.lock_timeout = lock_timeout
        fs.makedirs(self._base, exist_ok=True)

    def __repr__(self) -> str:
        return f"ObjectRegistry({self.root!r})"

    # ----------------------------------------------------------------- keys and listing

    def _model_dir(self, model: str) -> str:
        super()._model_dir(model)  # checks the name
        return f"{self._base}/{model}"

    def _version_dir(self, model: str, version: int) -> str:
        return f"{self._model_dir(model)}/versions/{version}"

    def _children(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, relative to it."""
        try:
            found = self.fs.find(prefix)
        except FileNotFoundError:
            return []
        return [str(p)[len(prefix) :].lstrip("/") for p in found]

    def _numbers(self, model: str) -> tuple[set[int], set[int]]:
        """(numbers taken, committed versions) from one listing of ``versions/``."""
        taken: set[int] = set()
        committed: set[int] = set()
        for rel in self._children(f"{self._model_dir(model)}/versions"):
            head, _, name = rel.partition("/")
            if (n := _number(head)) is not None:
                taken.add(n)
                if name == _VERSION_FILE:
                    committed.add(n)
        return taken, committed

    def _numbered_dirs(self, model: str) -> list[int]:
        return sorted(self._numbers(model)[0])

    def _version_numbers(self, model: str) -> list[int]:
        return sorted(self._numbers(model)[1])

    def models(self) -> list[str]:
        """Names of the models that have at least one version, sorted."""
        try:
            names = [str(p).rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self._base, detail=False)]
        except FileNotFoundError:
            return []
        return sorted(n for n in names if _MODEL_NAME.match(n) and self._version_numbers(n))

    def _read_version(self, model: str, version: int) -> ModelVersion:
        try:
            return ModelVersion.model_validate_json(self.fs.cat_file(f"{self._version_dir(model, version)}/{_VERSION_FILE}"))
        except FileNotFoundError:
            numbers = self._require_model(model)
            listed = _listing([f"v{n}" for n in numbers])
            raise RegistryError(f"model {model!r} has no version {version}; versions: {listed}") from None

    def _load_versions(self, model: str) -> list[ModelVersion]:
        numbers = self._require_model(model)
        paths = [f"{self._version_dir(model, n)}/{_VERSION_FILE}" for n in numbers]
        docs = self.fs.cat(paths, on_error="raise") if paths else {}
        by_path = {str(k).split("://", 1)[-1]: v for k, v in docs.items()}
        return [ModelVersion.model_validate_json(by_path[p]) for p in paths]

    @contextlib.contextmanager
    def _lock(self, model: str) -> Iterator[None]:
        """A lease on the model, for code written against the folder registry's lock."""
        try:
            with lease(self.fs, f"{self._model_dir(model)}/.lock", timeout=self.lock_timeout):
                yield
        except TimeoutError:
            raise RegistryError(f"model {model!r} is locked by another writer; gave up after {self.lock_timeout} s") from None

    def _write_index(self, model: str) -> None:
        """No index on an object store: one listing of ``versions/`` is the index."""

    # ----------------------------------------------------------------- versions

    def register(
        self,
        model: str,
        files: Mapping[str, bytes | os.PathLike[str]],
        lineage: Mapping[str, Any],
    ) -> ModelVersion:
        """Add a new version of ``model`` (created on first use), numbered 1 + the highest number taken.

        The number is claimed first (``versions/<N>/.claim``, created only if absent: two writers
        cannot both take N; the loser tries N+1), then the files are uploaded under it, then
        ``version.json`` is created: that write is the commit. A writer killed at any point leaves
        either no version or a whole one; its number stays taken.

        Test seam: env ``MLFLOWKIT_TEST_PAUSE_AT`` = ``registry.locked`` pauses with the number
        claimed and nothing uploaded; ``registry.staged`` with every file uploaded, before the commit.

        Raises:
            RegistryError: a bad model or file name, no files, lineage that is not JSON, a source that
                is neither bytes nor a path, or no number could be claimed within ``lock_timeout``.
        """
        model_dir = self._model_dir(model)
        if not files:
            raise RegistryError(f"register {model!r}: no files given; a version needs at least one")
        for name, src in files.items():
            _check_file_name(name)
            if not isinstance(src, bytes | bytearray | memoryview | os.PathLike):
                raise RegistryError(f"file {name!r}: expected bytes or a path object (pathlib.Path), got {type(src).__name__}")
        try:
            lineage_doc: dict[str, Any] = json.loads(json.dumps(dict(lineage), allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise RegistryError(f"register {model!r}: lineage must be plain JSON: {exc}") from exc

        self._clean_stale_claims(model)
        token = uuid.uuid4().hex
        deadline = time.monotonic() + self.lock_timeout
        number = max(self._numbers(model)[0], default=0) + 1
        while True:
            claim = {"token": token, "at": _now(), "host": socket.gethostname(), "pid": os.getpid()}
            if create_exclusive(self.fs, f"{model_dir}/versions/{number}/{_CLAIM_FILE}", json.dumps(claim).encode()):
                break
            if time.monotonic() > deadline:
                raise RegistryError(f"register {model!r}: could not claim a version number in {self.lock_timeout} s")
            number = max(number, *self._numbers(model)[0]) + 1
        _pause("registry.locked")
        folder = self._version_dir(model, number)
        digests = {name: self._upload(f"{folder}/{name}", src) for name, src in files.items()}
        _pause("registry.staged")
        version = ModelVersion(
            model=model, version=number, created_at=_now(), files=tuple(sorted(files)), digests=digests, lineage=lineage_doc
        )
        doc = version.model_dump(mode="json", exclude={"aliases"})
        if not create_exclusive(
            self.fs, f"{folder}/{_VERSION_FILE}", (json.dumps(doc, sort_keys=True, indent=2) + "\n").encode()
        ):
            # Only the claimant writes here; reaching this means the claim was deleted under us.
            raise RegistryError(f"register {model!r}: v{number} was committed by another writer while this one uploaded")
        return version

    def _upload(self, path: str, src: bytes | os.PathLike[str]) -> str:
        if isinstance(src, bytes | bytearray | memoryview):
            data = bytes(src)
            self.fs.pipe_file(path, data)  # one PUT: there whole or not at all
            return hashlib.sha256(data).hexdigest()
        # Hash while uploading, so what is recorded is what was sent (a multipart upload appears whole on close).
        with open(src, "rb") as fin, self.fs.open(path, "wb") as fout:
            sha, _ = _copy_hashing(fin, fout)
        return sha

    def _clean_stale_claims(self, model: str) -> None:
        """Delete the files of numbers claimed over ``stale_after`` seconds ago and never committed."""
        by_number: dict[int, list[str]] = {}
        for rel in self._children(f"{self._model_dir(model)}/versions"):
            head, _, name = rel.partition("/")
            if (n := _number(head)) is not None:
                by_number.setdefault(n, []).append(name)
        cutoff = time.time() - self.stale_after
        for n, names in by_number.items():
            leftovers = [name for name in names if name != _CLAIM_FILE]
            if _VERSION_FILE in names or not leftovers or _CLAIM_FILE not in names:
                continue
            folder = self._version_dir(model, n)
            try:
                newest = max(self.fs.modified(f"{folder}/{name}").timestamp() for name in names)
            except FileNotFoundError:
                continue
            if newest < cutoff:
                # The claim stays: the number is never handed out again.
                self.fs.rm([f"{folder}/{name}" for name in leftovers])

    def file_path(self, model: str, version: int, name: str) -> str:
        """The URI of one file of a version (``s3://...``), for readers that open it with fsspec.

        Raises:
            RegistryError: a bad name, or the model, version or file does not exist.
        """
        _check_file_name(name)
        record = self._read_version(model, version)
        if name not in record.files:
            raise RegistryError(f"model {model!r} v{version} has no file {name!r}; files: {_listing(list(record.files))}")
        return str(self.fs.unstrip_protocol(f"{self._version_dir(model, version)}/{name}"))

    def read_file(self, model: str, version: int, name: str) -> bytes:
        """The bytes of one file of a version, checked against the digest recorded at registration.

        Raises:
            RegistryError: the file does not exist, or its bytes no longer match its digest.
        """
        _check_file_name(name)
        record = self._read_version(model, version)
        if name not in record.files:
            raise RegistryError(f"model {model!r} v{version} has no file {name!r}; files: {_listing(list(record.files))}")
        path = f"{self._version_dir(model, version)}/{name}"
        try:
            data = bytes(self.fs.cat_file(path))
        except FileNotFoundError:
            raise RegistryError(
                f"model {model!r} v{version} file {name!r} is missing ({self.fs.unstrip_protocol(path)})"
            ) from None
        expected = record.digests.get(name)
        if expected is not None and hashlib.sha256(data).hexdigest() != expected:
            raise RegistryError(
                f"model {model!r} v{version} file {name!r} is damaged: its SHA-256 no longer matches "
                f"the one recorded at registration ({self.fs.unstrip_protocol(path)})"
            )
        return data

    # ----------------------------------------------------------------- aliases

    # Each audit log (``events`` for alias moves, ``approvals``) is one object per entry,
    # ``<model>/<log>/<seq>.json``, created only if absent: of two writers who both read the log up to
    # N-1, one records N and the other reads again. So ``previous`` and the hash chain are always true.

    def _log_seqs(self, model: str, log: str) -> list[int]:
        seqs = []
        for rel in self._children(f"{self._model_dir(model)}/{log}"):
            stem, dot, ext = rel.partition(".")
            if dot and ext == "json" and stem.isdigit() and int(stem) > 0:
                seqs.append(int(stem))
        return sorted(seqs)

    def _log_path(self, model: str, log: str, seq: int) -> str:
        return f"{self._model_dir(model)}/{log}/{seq:012d}.json"

    def _log_entries(self, model: str, log: str, seqs: list[int]) -> list[tuple[int, dict[str, Any] | None]]:
        """(seq, entry or None when unreadable) for each of ``seqs``."""
        if not seqs:
            return []
        paths = [self._log_path(model, log, s) for s in seqs]
        docs = self.fs.cat(paths, on_error="omit")
        by_path = {str(k).split("://", 1)[-1]: v for k, v in docs.items()}
        out: list[tuple[int, dict[str, Any] | None]] = []
        for seq, path in zip(seqs, paths, strict=True):
            try:
                entry = json.loads(by_path[path])["entry"]
            except (KeyError, ValueError, TypeError):
                entry = None
            out.append((seq, entry if isinstance(entry, dict) else None))
        return out

    def _log_append(self, model: str, log: str, make: Callable[[list[int]], dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        """Record ``make(seqs so far)`` as the next entry of ``log``, chained to the one before it."""
        token = uuid.uuid4().hex
        deadline = time.monotonic() + self.lock_timeout
        while True:
            seqs = self._log_seqs(model, log)
            entry = make(seqs)
            seq = (seqs[-1] if seqs else 0) + 1
            head = ""
            if seqs:  # the entry before carries the chain's head (verify_audit recomputes it)
                last = self._log_entries(model, log, seqs[-1:])[0][1]
                head = str(last.get("hash") or "") if last else ""
            entry["hash"] = chain_hash(head, entry)
            body = json.dumps({"entry": entry, "writer": token}, sort_keys=True).encode()
            if create_exclusive(self.fs, self._log_path(model, log, seq), body):
                return seq, entry
            if time.monotonic() > deadline:
                raise RegistryError(f"model {model!r}: other writers kept appending to its {log} for {self.lock_timeout} s")

    def _events_at(self, model: str, seqs: list[int]) -> list[AliasEvent]:
        events = []
        for _, entry in self._log_entries(model, "events", seqs):
            with contextlib.suppress(ValueError, TypeError):  # unreadable: skipped, as a torn line; verify_audit reports it
                events.append(AliasEvent.model_validate(entry))
        return events

    def _read_events(self, model: str) -> list[AliasEvent]:
        return self._events_at(model, self._log_seqs(model, "events"))

    def _state(self, model: str, seqs: list[int]) -> dict[str, int]:
        """The aliases after the last of ``seqs``: the snapshot, plus a replay of the events after it."""
        state: dict[str, int] = {}
        done = 0
        try:
            snap = json.loads(self.fs.cat_file(f"{self._model_dir(model)}/{_ALIASES_FILE}"))
            if int(snap["seq"]) in seqs:
                state, done = {str(k): int(v) for k, v in snap["aliases"].items()}, int(snap["seq"])
        except (FileNotFoundError, ValueError, KeyError, TypeError, AttributeError):
            pass  # no snapshot, or a damaged one: replay everything
        for event in self._events_at(model, [s for s in seqs if s > done]):
            if event.version is None:
                state.pop(event.alias, None)
            else:
                state[event.alias] = event.version
        return state

    def _alias_state(self, model: str) -> dict[str, int]:
        return self._state(model, self._log_seqs(model, "events"))

    def _move_alias(self, model: str, alias: str, version: int | None, *, reason: str, actor: str | None) -> AliasEvent:
        if not reason or not reason.strip():
            raise RegistryError(f"alias {alias!r} of model {model!r}: a reason is required")
        state: dict[str, int] = {}

        def make(seqs: list[int]) -> dict[str, Any]:
            state.clear()
            state.update(self._state(model, seqs))
            return alias_event(model, alias, version, state, reason=reason, actor=actor).model_dump(mode="json")

        seq, entry = self._log_append(model, "events", make)
        event = AliasEvent.model_validate(entry)
        if version is None:
            state.pop(alias, None)
        else:
            state[alias] = version
        snapshot = {"seq": seq, "aliases": dict(sorted(state.items()))}
        with contextlib.suppress(OSError):  # only a cache: the events are already the record
            self.fs.pipe_file(f"{self._model_dir(model)}/{_ALIASES_FILE}", json.dumps(snapshot, sort_keys=True).encode())
        return event

    # ----------------------------------------------------------------- approvals and the audit trail

    def record_approval(self, model: str, version: int, *, reason: str, actor: str | None = None) -> ApprovalEvent:
        """Record an approval of ``version`` in the model's audit trail (``approvals/<seq>.json``); nothing else moves.

        Raises:
            RegistryError: an empty reason, or a missing model or version.
        """
        if not reason or not reason.strip():
            raise RegistryError(f"approving {model} v{version}: a reason is required")
        self._read_version(model, version)
        who = actor or _default_actor()

        def make(_: list[int]) -> dict[str, Any]:
            return ApprovalEvent(model=model, version=version, actor=who, reason=reason, at=_now()).model_dump(mode="json")

        return ApprovalEvent.model_validate(self._log_append(model, "approvals", make)[1])

    def approvals(self, model: str, version: int | None = None) -> list[ApprovalEvent]:
        """Recorded approvals of ``model`` (of one ``version``), oldest first.

        Raises:
            RegistryError: the model does not exist.
        """
        self._require_model(model)
        found = []
        for _, entry in self._log_entries(model, "approvals", self._log_seqs(model, "approvals")):
            with contextlib.suppress(ValueError, TypeError):
                event = ApprovalEvent.model_validate(entry)
                if version is None or event.version == version:
                    found.append(event)
        return found

    def verify_audit(self, model: str) -> list[str]:
        """Check the hash chains of the model's audit logs (alias moves, approvals); [] when both are intact.

        As `ModelRegistry.verify_audit`, over the per-entry objects; a missing seq number is reported too.

        Raises:
            RegistryError: the model does not exist.
        """
        self._require_model(model)
        problems = []
        for log in ("events", "approvals"):
            expected_seq = 1
            entries: list[tuple[str, dict[str, Any] | None]] = []
            for seq, entry in self._log_entries(model, log, self._log_seqs(model, log)):
                if seq != expected_seq:
                    problems.append(f"{log}/{expected_seq:012d}.json: missing (removed?)")
                expected_seq = seq + 1
                entries.append((f"{log}/{seq:012d}.json", entry))
            problems += chain_problems(entries, unreadable="unreadable (an edit)")
        return problems
