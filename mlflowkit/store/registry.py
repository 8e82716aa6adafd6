"""The model registry: immutable numbered versions, movable aliases, a hash-chained audit trail.

The logic lives here once, over a storage backend (`mlflowkit.store.registry_storage`): a local folder
or an object store. Safe against concurrent writers and against a writer killed at any point (see
`ModelRegistry.register`).
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mlflowkit.errors import RegistryError
from mlflowkit.store.registry_storage import PAUSE_ENV, LogEntry, RegistryStorage, pause, utc_now
from mlflowkit.store.trust import SIGNATURE_FILE, SIGNING_KEY_ENV, Signature, Trust

__all__ = [
    "PAUSE_ENV",
    "AliasEvent",
    "ApprovalEvent",
    "ModelRegistry",
    "ModelVersion",
    "alias_event",
    "chain_hash",
    "chain_problems",
    "default_actor",
    "open_storage",
]

_MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
_ALIAS_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_VERSION_REF = re.compile(r"^v?([0-9]+)$")
_VERSION_FILE = "version.json"
_ALIASES_FILE = "aliases.json"
_EVENTS, _APPROVALS = "events", "approvals"
_AUDIT_LOGS = (_EVENTS, _APPROVALS)


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
    """One alias move, as appended to the model's ``events`` log."""

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
    """One recorded approval of a version, as appended to the model's ``approvals`` log."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(description="The model's name.")
    version: int = Field(description="The version approved.")
    actor: str = Field(description="Who approved it.")
    reason: str = Field(description="Why.")
    at: str = Field(description="When, ISO 8601 UTC.")
    hash: str | None = Field(None, description="Chains this entry to the ones before it (see `ModelRegistry.verify_audit`).")


def chain_hash(previous: str, entry: Mapping[str, Any]) -> str:
    """The hash of an audit entry: sha256 of the previous entry's hash and this entry's canonical JSON.

    Every entry carries it, so changing, removing or inserting an entry breaks the chain at that place.
    """
    body = json.dumps({k: v for k, v in entry.items() if k != "hash"}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{previous}\n{body}".encode()).hexdigest()


def default_actor() -> str:
    """Who is acting: env ``MLFLOWKIT_USER``, else the login name, else ``unknown``."""
    if user := os.environ.get("MLFLOWKIT_USER"):
        return user
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in env or passwd (some containers)
        return "unknown"


def _check_file_name(name: str) -> str:
    if (
        not isinstance(name, str)
        or not name
        or name in (".", "..")
        or name.startswith(".")
        or any(c in name for c in "/\\\0")
        or name in (_VERSION_FILE, SIGNATURE_FILE)
    ):
        raise RegistryError(
            f"invalid file name {name!r}: use a plain name without '/', '\\' or a leading '.', "
            f"and not {_VERSION_FILE!r} or {SIGNATURE_FILE!r}"
        )
    return name


def _listing(names: list[str]) -> str:
    return ", ".join(names) if names else "(none)"


class ModelRegistry:
    """Models by name, each with immutable numbered versions and aliases such as ``champion``.

    One registry over two storages: a local folder (`FolderStorage`: a lock and a rename) or an object
    store such as S3 (`ObjectStorage`: conditional creates), chosen by ``root``. What a model holds::

        <model>/versions/<N>/        the files, plus version.json (present in every committed version)
                                     and version.sig (its signature, when the registry signs)
        <model>/events               every alias move, append-only and hash-chained
        <model>/approvals            every recorded approval, the same way
        <model>/aliases.json         the current aliases after some event (a cache; the events win)

    With a signing key, each version's ``version.json`` is signed into ``version.sig`` when it is
    registered; with trusted keys, a version is read (shown, loaded, promoted) only if its signature
    verifies (see `mlflowkit.store.trust`).

    Attributes:
        root: the registry folder (absolute) or URI (``s3://bucket/prefix/registry``).
        storage: where the bytes are (`FolderStorage` or `ObjectStorage`).
        trust: the keys that sign new versions and check the versions read.
    """

    def __init__(self, root: str | os.PathLike[str], *, lock_timeout: float = 60.0, trust: Trust | None = None) -> None:
        """Open (and create) a registry.

        Args:
            root: a local folder, a ``file://`` URI, or an object store URI (``s3://bucket/prefix/registry``).
            lock_timeout: seconds to wait for a model's lock (or to retry a contended write) before giving up.
            trust: the registry's keys; by default those of the environment (`Trust.load`).

        Raises:
            NotImplementedError: ``root`` is on a filesystem without a verified atomic create-if-absent.
            RegistryError: a configured key cannot be read.
        """
        self.storage: RegistryStorage = open_storage(os.fspath(root), lock_timeout=lock_timeout)
        self.root: str = self.storage.root
        self.lock_timeout = lock_timeout
        self.trust = trust if trust is not None else Trust.load()

    def __repr__(self) -> str:
        return f"ModelRegistry({self.root!r})"

    # ----------------------------------------------------------------- listing and reading versions

    @staticmethod
    def _check_model(model: str) -> str:
        if not isinstance(model, str) or not _MODEL_NAME.match(model):
            raise RegistryError(
                f"invalid model name {model!r}: use 1-128 of a-z, 0-9, '.', '_', '-', starting with a letter or digit"
            )
        return model

    def models(self) -> list[str]:
        """Names of the models that have at least one version, sorted."""
        return [name for name in self.storage.names("") if _MODEL_NAME.match(name) and self.storage.committed(name)]

    def _require_model(self, model: str) -> list[int]:
        numbers = self.storage.committed(self._check_model(model))
        if not numbers:
            raise RegistryError(f"no model {model!r} in registry {self.root}; models: {_listing(self.models())}")
        return numbers

    @staticmethod
    def _version_key(model: str, version: int, name: str = _VERSION_FILE) -> str:
        return f"{model}/versions/{version}/{name}"

    def _read_manifest(self, model: str, version: int) -> bytes:
        try:
            return self.storage.read(self._version_key(self._check_model(model), version))
        except FileNotFoundError:
            numbers = self._require_model(model)
            listed = _listing([f"v{n}" for n in numbers])
            raise RegistryError(f"model {model!r} has no version {version}; versions: {listed}") from None

    def _read_version(self, model: str, version: int) -> ModelVersion:
        """The version's record, its signature checked first when the registry trusts keys (refused if it fails)."""
        raw = self._read_manifest(model, version)
        if self.trust.enforcing:
            self._check_signature(model, version, raw)
        return self._parse_version(model, version, raw)

    def _check_signature(self, model: str, version: int, manifest: bytes) -> Signature:
        sig_key = self._version_key(model, version, SIGNATURE_FILE)
        try:
            signature: bytes | None = self.storage.read(sig_key)
        except FileNotFoundError:
            signature = None
        return self.trust.check(
            manifest,
            signature,
            what=f"{model} v{version}",
            sig_where=self.storage.where(sig_key),
            where=self.storage.where(self._version_key(model, version)),
        )

    def signature(self, model: str, version: int) -> Signature:
        """What the version's signature says: verified by a trusted key, signed but not checked here, or unsigned.

        Raises:
            RegistryError: the version does not exist; or the registry trusts keys and the version is unsigned,
                signed by another key, or was changed after it was signed.
        """
        return self._check_signature(model, version, self._read_manifest(model, version))

    def sign(self, model: str, version: int) -> Signature:
        """Sign an existing version with the registry's signing key, after checking every file against its digest.

        For versions registered before signing was turned on, and for re-signing with a new key when
        rotating. Whoever runs it vouches for the version: review it first (``models show``).

        Raises:
            RegistryError: no signing key, the version does not exist, or a file no longer matches its digest (or has none).
        """
        if self.trust.signer is None:
            raise RegistryError(f"no signing key: set {SIGNING_KEY_ENV} to the private key (PEM file or text)")
        raw = self._read_manifest(model, version)
        record = self._parse_version(model, version, raw)
        for name in record.files:
            self._checked_bytes(record, name)
        signature = self.trust.sign(raw)
        assert signature is not None  # a signer is set
        self.storage.write(self._version_key(model, version, SIGNATURE_FILE), signature)
        return self._check_signature(model, version, raw)

    def _parse_version(self, model: str, version: int, raw: bytes) -> ModelVersion:
        """The record in ``model``'s version ``version`` folder, which must be that version's own.

        A genuine, signed record copied from another version or model would otherwise be read as this one.
        """
        key = self._version_key(model, version)
        try:
            record = ModelVersion.model_validate_json(raw)
        except ValueError as exc:
            raise RegistryError(f"{self.storage.where(key)} is not a version record: {exc}") from None
        if (record.model, record.version) != (model, version):
            raise RegistryError(
                f"{self.storage.where(key)} is the record of {record.model} v{record.version}, not {model} v{version}: "
                "it was copied there; refused"
            )
        return record

    def _load_versions(self, model: str) -> list[ModelVersion]:
        numbers = self._require_model(model)
        found = self.storage.read_many([self._version_key(model, n) for n in numbers])
        return [self._parse_version(model, n, found[k]) for n in numbers if (k := self._version_key(model, n)) in found]

    # ----------------------------------------------------------------- versions

    def register(
        self,
        model: str,
        files: Mapping[str, bytes | os.PathLike[str]],
        lineage: Mapping[str, Any],
    ) -> ModelVersion:
        """Add a new version of ``model``; see `register_unless_equal` (this is it, comparing nothing)."""
        return self.register_unless_equal(model, files, lineage, ())[0]

    def register_unless_equal(
        self,
        model: str,
        files: Mapping[str, bytes | os.PathLike[str]],
        lineage: Mapping[str, Any],
        compare: Collection[str],
    ) -> tuple[ModelVersion, bool]:
        """Add a new version of ``model`` (created on first use), numbered after every number taken so far.

        Every file is staged where no reader looks (a private folder; or, on an object store, under a
        number claimed by creating ``versions/<N>/.claim``); then ``version.json`` commits the version
        in one atomic step (a rename under the model's lock; or a create-if-absent). A writer killed at
        any point leaves either no version or a whole one; its leftovers are removed by a later
        `register` once they are an hour old.

        Test seam: when env ``MLFLOWKIT_TEST_PAUSE_AT`` is ``registry.staged`` (every file staged, not
        committed) or ``registry.locked`` (the number is being taken: the lock held before the rename, or
        the claim made before the upload), the process prints ``PAUSED <point>`` to stderr and sleeps 60 s
        so a test can kill it there.

        With ``compare``, a version that already holds those files byte for byte (`find_equal`) is the
        answer instead of a new one. That is checked again when the version's number is taken, under
        the model's lock on a folder, so two writers of the same bytes at the same instant make one
        version. (On an object store, which has no lock, the check is made just before the commit:
        writers whose commits overlap may still both register.)

        Args:
            model: the model's name (``^[a-z0-9][a-z0-9._-]{0,127}$``).
            files: file name -> bytes, or a path to a local file to copy.
            lineage: JSON-serialisable facts about where the version came from (spec hash, data
                fingerprint, params, metrics, run id, git commit, ...).
            compare: names among ``files`` whose bytes make two versions equal (``model.onnx``,
                ``contract.json``); empty: always a new version.

        Returns:
            The committed version (with no aliases yet) and True; or the equal version found and False.

        Raises:
            RegistryError: a bad model or file name, no files, a source that is neither bytes nor a path,
                lineage that is not JSON, or the lock (or a number) could not be taken in time.
        """
        self._check_model(model)
        if self.trust.required and self.trust.signer is None:
            raise RegistryError(
                f"register {model!r}: the policy requires signed versions ({self.trust.source or 'registry.require_signing'}) "
                f"and no signing key is set: set {SIGNING_KEY_ENV} to the private key (PEM file or text)"
            )
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
        unknown = sorted(set(compare) - set(files))
        if unknown:
            raise RegistryError(f"register {model!r}: compare names files it is not given: {', '.join(unknown)}")

        made: list[ModelVersion] = []
        equal: list[ModelVersion] = []

        def found_equal() -> bool:
            # Under the model's lock (on a folder): no writer commits between this look and our commit.
            same = self.find_equal(model, {name: digests[name] for name in compare}) if compare else None
            equal.extend([same] if same is not None else [])
            return same is not None

        def manifest(number: int) -> dict[str, bytes]:
            version = ModelVersion(
                model=model,
                version=number,
                created_at=utc_now(),
                files=tuple(sorted(files)),
                digests=digests,
                lineage=lineage_doc,
            )
            made.append(version)
            doc = version.model_dump(mode="json", exclude={"aliases"})
            manifest = (json.dumps(doc, sort_keys=True, indent=2) + "\n").encode()
            signature = self.trust.sign(manifest)
            return {_VERSION_FILE: manifest} | ({SIGNATURE_FILE: signature} if signature is not None else {})

        draft = self.storage.draft(model)
        try:
            digests = {name: draft.put(name, src) for name, src in files.items()}
            pause("registry.staged")
            committed = draft.commit(manifest, unless=found_equal)
        except BaseException:
            draft.abandon()
            raise
        if committed is None:
            draft.abandon()
            return equal[-1], False
        return made[-1], True

    def versions(self, model: str) -> list[ModelVersion]:
        """Every version of ``model``, ascending, with its current aliases.

        Raises:
            RegistryError: the model does not exist.
        """
        by_version = self._aliases_by_version(model)
        return [v.model_copy(update={"aliases": by_version.get(v.version, ())}) for v in self._load_versions(model)]

    def find_equal(self, model: str, digests: Mapping[str, str]) -> ModelVersion | None:
        """The newest version of ``model`` whose files named in ``digests`` all have those SHA-256s, or None.

        A version is judged by its record as `get` reads it: when the registry trusts keys, a version whose
        signature does not verify is passed over, never taken as equal. No file is read.
        """
        if not digests or not self.storage.committed(self._check_model(model)):
            return None
        for version in reversed(self.versions(model)):
            if all(version.digests.get(name) == digest for name, digest in digests.items()):
                try:
                    return self.get(model, version.version)
                except RegistryError:
                    continue  # unsigned or changed after signing, under trusted keys: not evidence of anything
        return None

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

    def _file_key(self, model: str, version: int, name: str) -> tuple[ModelVersion, str]:
        _check_file_name(name)
        record = self._read_version(model, version)
        if name not in record.files:
            raise RegistryError(f"model {model!r} v{version} has no file {name!r}; files: {_listing(list(record.files))}")
        return record, self._version_key(model, version, name)

    def file_path(self, model: str, version: int, name: str) -> str:
        """Where one file of a version is (a local path, or a URI such as ``s3://...``); do not write to it.

        Prefer `read_file`, which checks the bytes it returns.

        Raises:
            RegistryError: a bad name, or the model, version or file does not exist.
        """
        return self.storage.where(self._file_key(model, version, name)[1])

    def read_file(self, model: str, version: int, name: str) -> bytes:
        """The bytes of one file of a version, checked against the digest recorded at registration.

        Raises:
            RegistryError: the file does not exist, or its bytes no longer match its digest (or, when the
                registry trusts keys, the version's signature does not verify).
        """
        record, _ = self._file_key(model, version, name)
        return self._checked_bytes(record, name)

    def _checked_bytes(self, record: ModelVersion, name: str) -> bytes:
        model, version = record.model, record.version
        key = self._version_key(model, version, name)
        try:
            data = self.storage.read(key)
        except FileNotFoundError:
            raise RegistryError(f"model {model!r} v{version} file {name!r} is missing ({self.storage.where(key)})") from None
        expected = record.digests.get(name)
        if expected is None:  # every file gets one at registration: a missing digest was removed
            raise RegistryError(
                f"model {model!r} v{version} file {name!r} has no digest in its version.json, so nothing vouches for "
                f"its bytes ({self.storage.where(key)}); refused"
            )
        if hashlib.sha256(data).hexdigest() != expected:
            raise RegistryError(
                f"model {model!r} v{version} file {name!r} is damaged: its SHA-256 no longer matches "
                f"the one recorded at registration ({self.storage.where(key)})"
            )
        return data

    # ----------------------------------------------------------------- the append-only logs

    def _chain_head(self, model: str, log: str) -> str:
        """The hash the next entry of ``log`` chains to: the newest entry's, or the chain recomputed ("" when empty)."""
        last = self.storage.log_last(model, log)
        if last is not None and isinstance(last.get("hash"), str):
            return str(last["hash"])
        head = ""
        for item in self.storage.log_read(model, log):
            if item.entry is not None:
                head = item.entry["hash"] if isinstance(item.entry.get("hash"), str) else chain_hash(head, item.entry)
        return head

    def _append(self, model: str, log: str, make: Callable[[int], dict[str, Any]]) -> tuple[dict[str, Any], int]:
        """Record ``make(where the log ends)`` as the log's next entry, chained to the one before it.

        Of two writers who read the log at the same end, one appends and the other reads again and
        retries, so an entry built from the log's state (an alias event's ``previous``) is always true.
        """
        deadline = time.monotonic() + self.lock_timeout
        while True:
            at = self.storage.log_end(model, log)
            entry = make(at)
            entry["hash"] = chain_hash(self._chain_head(model, log), entry)
            end = self.storage.log_append(model, log, at, entry)
            if end is not None:
                return entry, end
            if time.monotonic() > deadline:
                raise RegistryError(f"model {model!r}: other writers kept appending to its {log} for {self.lock_timeout} s")

    def audit_heads(self, model: str) -> dict[str, str]:
        """The hash each audit log's chain ends with ("" when empty): keep them elsewhere to tell if entries are lost.

        Raises:
            RegistryError: the model does not exist.
        """
        self._require_model(model)
        return {log: self._chain_head(model, log) for log in _AUDIT_LOGS}

    # ----------------------------------------------------------------- aliases

    def _alias_state(self, model: str, at: int | None = None) -> dict[str, int]:
        """The aliases when the event log ends at ``at`` (now, by default): the snapshot if it is of then, else a replay."""
        if at is None:
            at = self.storage.log_end(model, _EVENTS)
        try:
            doc = json.loads(self.storage.read(f"{model}/{_ALIASES_FILE}"))
            # "log_size" and "seq" are where the folder and object-store registries kept it before.
            position = doc.get("position", doc.get("log_size", doc.get("seq")))
            if int(position) == at:
                return {str(k): int(v) for k, v in doc["aliases"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
        # A writer died between appending the event and rewriting the snapshot: the log wins.
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
        # Versions are never deleted, so checking first is safe. Existence only: an alias may move away from
        # (`previous` onto) a version that no longer verifies; reading one is what is refused.
        self._read_manifest(model, version)
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
        state: dict[str, int] = {}

        def make(at: int) -> dict[str, Any]:
            state.clear()
            state.update(self._alias_state(model, at))
            return alias_event(model, alias, version, state, reason=reason, actor=actor).model_dump(mode="json")

        entry, end = self._append(model, _EVENTS, make)
        if version is None:
            state.pop(alias, None)
        else:
            state[alias] = version
        snapshot = {"aliases": dict(sorted(state.items())), "position": end}
        with contextlib.suppress(OSError):  # only a cache: the event is already the record
            self.storage.write(f"{model}/{_ALIASES_FILE}", (json.dumps(snapshot, sort_keys=True, indent=2) + "\n").encode())
        return AliasEvent.model_validate(entry)

    def _read_events(self, model: str) -> list[AliasEvent]:
        events = []
        for item in self.storage.log_read(model, _EVENTS):
            with contextlib.suppress(ValueError, TypeError):  # unreadable: skipped (a torn write); verify_audit reports it
                if item.entry is not None:
                    events.append(AliasEvent.model_validate(item.entry))
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
        """Append an approval of ``version`` to the model's audit trail (``approvals``); nothing else moves.

        Whether the approver may approve is the caller's business (see :func:`mlflowkit.store.promotion.approve`).

        Raises:
            RegistryError: an empty reason, or a missing model or version.
        """
        if not reason or not reason.strip():
            raise RegistryError(f"approving {model} v{version}: a reason is required")
        self._read_version(model, version)
        who = actor or default_actor()

        def make(_: int) -> dict[str, Any]:
            return ApprovalEvent(model=model, version=version, actor=who, reason=reason, at=utc_now()).model_dump(mode="json")

        return ApprovalEvent.model_validate(self._append(model, _APPROVALS, make)[0])

    def approvals(self, model: str, version: int | None = None) -> list[ApprovalEvent]:
        """Recorded approvals of ``model`` (of one ``version``), oldest first.

        Raises:
            RegistryError: the model does not exist.
        """
        self._require_model(model)
        found = []
        for item in self.storage.log_read(model, _APPROVALS):
            with contextlib.suppress(ValueError, TypeError):  # unreadable: `verify_audit` reports it
                event = ApprovalEvent.model_validate(item.entry)
                if version is None or event.version == version:
                    found.append(event)
        return found

    def verify_audit(self, model: str) -> list[str]:
        """Check the hash chains of the model's audit logs (alias moves, approvals); [] when both are intact.

        The logs are append-only: the registry never rewrites them. An entry changed, removed or inserted by
        hand breaks the chain where it happened, and that is reported. Entries written before the chain
        existed (no hash) are accepted only before the first chained one. Losing the newest entries cannot
        be told from the log alone; keep the head hashes (`audit_heads`, printed by ``models audit``)
        somewhere else to tell.

        Raises:
            RegistryError: the model does not exist.
        """
        self._require_model(model)
        problems = []
        for log in _AUDIT_LOGS:
            problems += chain_problems(self.storage.log_read(model, log))
        return problems


def open_storage(root: str, *, lock_timeout: float = 60.0) -> RegistryStorage:
    """The storage for a registry at ``root``: `ObjectStorage` for an object store, else `FolderStorage`.

    Raises:
        NotImplementedError: an object store without a verified atomic create-if-absent.
    """
    from mlflowkit.store._s3 import is_remote

    if is_remote(root):
        from mlflowkit.store.object_storage import ObjectStorage

        return ObjectStorage(root, lock_timeout=lock_timeout)
    from fsspec.core import url_to_fs

    from mlflowkit.store.folder_storage import FolderStorage

    _, path = url_to_fs(root)  # file:///x -> /x
    return FolderStorage(str(path), lock_timeout=lock_timeout)


def chain_problems(entries: Iterable[LogEntry]) -> list[str]:
    """What is wrong with one hash-chained log, each problem under the label of the entry it is at.

    Old entries without hashes are accepted as a prefix; after a mismatch the chain resynchronises, so that
    only the places of tampering are reported.
    """
    problems: list[str] = []
    head, chained = "", False
    for label, entry, problem in entries:
        if entry is None:
            problems.append(f"{label}: {problem}")
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
        model=model, alias=alias, version=version, previous=previous, actor=actor or default_actor(), reason=reason, at=utc_now()
    )
