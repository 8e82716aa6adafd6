"""Release records: which version went to which targets, and a rollback that moves the registry and every target together.

The deploy step writes one record per deployed version to ``<registry>/<model>/releases/<version>.json``:
the targets' spec sections (so that the same targets can be deployed to again, without the spec) and
what each target reported. ``mlflowkit models rollback`` reads the champion's record and deploys the
version it rolls back to on every one of those targets, then moves ``champion``.

Rollback is all or nothing, so the registry never names a champion that is not what the targets serve:
if any target fails, the targets already moved get the current champion back, ``champion`` does not
move, and the report says what happened where.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlflowkit.errors import MlflowkitError, RegistryError
from mlflowkit.store._s3 import is_remote, open_fs

if TYPE_CHECKING:
    from mlflowkit.store.registry import ModelRegistry, ModelVersion
    from mlflowkit.targets.base import DeployTarget, Release

__all__ = ["RollbackReport", "promote", "read_record", "release_of", "rollback", "write_record"]

_FORMAT = "mlflowkit/release-v1"


def _path(registry: ModelRegistry, model: str, version: int) -> str:
    if is_remote(registry.root):
        return f"{str(registry.root).rstrip('/')}/{model}/releases/{int(version)}.json"
    return os.path.join(registry.root, model, "releases", f"{int(version)}.json")


def _write(path: str, data: bytes) -> None:
    """Replace the record at ``path``: atomically (rename) in a folder, by one PUT on an object store."""
    if is_remote(path):
        fs, key = open_fs(path)
        fs.pipe_file(key, data)
    else:
        from mlflowkit.store.files import atomic_write_local

        atomic_write_local(path, data)


def write_record(
    registry: ModelRegistry,
    model: str,
    version: int,
    *,
    targets: Sequence[DeployTarget],
    records: Sequence[dict[str, Any]],
    cause: str,
) -> dict[str, Any]:
    """Record that ``version`` of ``model`` serves on ``targets`` (atomically replaces an older record of it)."""
    registry.get(model, version)  # exists?
    doc = {
        "format": _FORMAT,
        "model": model,
        "version": int(version),
        "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "cause": cause,
        # Targets resolve relative paths (a bundle folder, a key file) against the working directory
        # of the deploy; a rollback from elsewhere deploys from the same place.
        "cwd": os.getcwd(),
        "targets": [
            {"settings": t.model_dump(mode="json", exclude_none=True), "record": r} for t, r in zip(targets, records, strict=True)
        ],
    }
    _write(_path(registry, model, version), (json.dumps(doc, sort_keys=True, indent=2, default=str) + "\n").encode())
    return doc


def read_record(registry: ModelRegistry, model: str, version: int) -> dict[str, Any] | None:
    """The release record of ``version``, or None when it was never deployed through a spec."""
    path = _path(registry, model, version)
    try:
        if is_remote(path):
            fs, key = open_fs(path)
            doc: dict[str, Any] = json.loads(fs.cat_file(key))
        else:
            with open(path, "rb") as fh:
                doc = json.loads(fh.read())
    except FileNotFoundError:
        return None
    return doc


def _targets(doc: dict[str, Any]) -> list[DeployTarget]:
    """The record's targets, rebuilt from their spec sections by the installed target classes."""
    from mlflowkit.plugins import targets as installed

    plugins = installed()
    out = []
    for entry in doc["targets"]:
        settings = entry["settings"]
        cls = plugins.get(settings["target"])
        out.append(cls.model_validate(settings))
    return out


def release_of(registry: ModelRegistry, model: str, version: ModelVersion) -> Release:
    """A :class:`Release` of a registered version from its files (no held-out rows: ``smoke`` is None)."""
    from mlflowkit.targets.base import Release
    from mlflowkit.targets.contract import Contract

    missing = [f for f in ("model.onnx", "contract.json") if f not in version.files]
    if missing:
        raise RegistryError(f"{model} v{version.version} has no {', '.join(missing)}; it cannot be deployed")
    return Release(
        model=model,
        version=version.version,
        onnx=registry.read_file(model, version.version, "model.onnx"),
        contract=Contract.model_validate_json(registry.read_file(model, version.version, "contract.json")),
        smoke=None,
        lineage=dict(version.lineage),
    )


@dataclass
class RollbackReport:
    """What a rollback did: the versions, and per target what happened."""

    model: str
    from_version: int
    to_version: int
    ok: bool = False
    targets: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""


def rollback(
    registry: ModelRegistry,
    model: str,
    *,
    reason: str,
    to: int | None = None,
    actor: str | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> RollbackReport:
    """Deploy the version before the champion (or ``to``) on every target of the champion's release, then move ``champion``.

    Returns:
        The report; ``ok`` is False when a target failed (then ``champion`` did not move and every
        target serves the current champion again, as far as it could be put back; see each target's entry).

    Raises:
        RegistryError: no champion, nothing to roll back to, or a version without its ONNX files.
    """
    from mlflowkit.store.promotion import CHAMPION, PREVIOUS, require_served
    from mlflowkit.store.promotion import rollback as move_alias

    aliases = registry.aliases(model)
    current = aliases.get(CHAMPION)
    if current is None:
        raise RegistryError(f"model {model!r} has no champion to roll back")
    target_version = to if to is not None else aliases.get(PREVIOUS)
    if target_version is None:
        raise RegistryError(f"{model} v{current} has no previous version to roll back to; name one with --to")
    if target_version == current:
        raise RegistryError(f"{model} v{target_version} already is the champion")
    require_served(registry, model, target_version)
    report = RollbackReport(model=model, from_version=current, to_version=target_version)
    doc = read_record(registry, model, current)
    if doc is None or not doc.get("targets"):
        back = move_alias(registry, model, reason=reason, to=to, actor=actor)
        report.ok, report.to_version = True, back.version
        report.note = f"no release record for v{current}: no target was redeployed"
        return report
    targets = _targets(doc)
    older = release_of(registry, model, registry.get(model, target_version))
    newer = release_of(registry, model, registry.get(model, current))
    names = [entry["record"].get("model") or t.model_name or model for t, entry in zip(targets, doc["targets"], strict=True)]
    where = doc.get("cwd")
    with contextlib.chdir(where) if where and os.path.isdir(where) else contextlib.nullcontext():
        _move(
            report,
            list(zip(targets, names, strict=True)),
            new=older,
            back=newer,
            commit=lambda: move_alias(registry, model, reason=reason, to=target_version, actor=actor),
            what="rollback",
            log=log,
        )
        if report.ok:
            records = [e["record"] for e in report.targets]
            write_record(registry, model, target_version, targets=targets, records=records, cause=f"rollback: {reason}")
    return report


def _move(
    report: RollbackReport,
    targets: list[tuple[DeployTarget, str]],
    *,
    new: Release,
    back: Release | None,
    commit: Callable[[], object],
    what: str,
    log: Callable[[str], None],
) -> None:
    """Deploy ``new`` to every target in turn, then ``commit`` (move the alias); all or nothing.

    When a target fails or the registry refuses, the targets that already took ``new`` get ``back``
    (the version that served before) again, and nothing moves in the registry. Fills ``report``.
    """
    done: list[tuple[DeployTarget, str, dict[str, Any]]] = []
    failure: str | None = None
    for target, name in targets:
        entry: dict[str, Any] = {"target": target.target, "destination": target.destination}
        report.targets.append(entry)
        try:
            record = target.deploy(new, name=name, log=log)
        except Exception as exc:  # a plug-in target may raise anything; the others are put back all the same
            entry.update(status="failed", error=str(exc))
            failure = f"{target.target} at {target.destination}: {exc}"
            break
        entry.update(status=f"v{new.version} serving", record=record)
        done.append((target, name, entry))
    if failure is None:
        try:
            commit()
        except MlflowkitError as exc:
            failure = f"the registry refused the {what}: {exc}"
    if failure is None:
        report.ok = True
        return
    for target, name, entry in done:  # all or nothing: the targets that moved get the previous version back
        if back is None:
            entry["status"] = f"v{new.version} serving (there is no champion to put back)"
            continue
        try:
            target.deploy(back, name=name, log=log)
            entry["status"] = f"v{new.version} served, then v{back.version} again"
        except Exception as exc:  # reported per target
            entry["status"] = f"v{new.version} serving; putting v{back.version} back failed: {exc}"
    stays = f"; champion stays v{back.version}" if back is not None else ""
    report.note = f"{what} of {report.model} to v{new.version} stopped: {failure}{stays}"


def promote(
    registry: ModelRegistry,
    model: str,
    version: int,
    *,
    targets: Sequence[DeployTarget],
    reason: str,
    actor: str | None = None,
    force: bool = False,
    require_approval: bool = False,
    log: Callable[[str], None] = lambda message: None,
) -> RollbackReport:
    """Deploy ``version`` to ``targets`` (a spec's ``deploy:`` list), then make it champion; all or nothing.

    How a version held as ``challenger`` (awaiting approval) reaches its targets. The promotion's
    checks (approval, gates, who may) run first, so nothing is deployed that could not be promoted.
    If a target fails, the targets already moved get the current champion back and nothing moves.

    Returns:
        The report (``from_version`` is the current champion, 0 when there is none).

    Raises:
        RegistryError: the promotion is refused (not approved, failed its gates, ...), or the version
            has no ONNX files.
    """
    from mlflowkit.store.promotion import CHAMPION, check_promotion
    from mlflowkit.store.promotion import promote as move_alias

    current = registry.aliases(model).get(CHAMPION)
    check_promotion(registry, model, version, force=force, require_approval=require_approval)
    report = RollbackReport(model=model, from_version=current or 0, to_version=version)
    newer = release_of(registry, model, registry.get(model, version))
    older = release_of(registry, model, registry.get(model, current)) if current is not None else None
    _move(
        report,
        [(t, t.model_name or model) for t in targets],
        new=newer,
        back=older,
        commit=lambda: move_alias(
            registry, model, version, reason=reason, actor=actor, force=force, require_approval=require_approval
        ),
        what="promotion",
        log=log,
    )
    if report.ok and targets:
        records = [e["record"] for e in report.targets]
        write_record(registry, model, version, targets=list(targets), records=records, cause=f"promote: {reason}")
    return report
