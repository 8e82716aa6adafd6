"""Check a whole store: every object against its hash, cache entries, registry versions and logs, run records.

``mlflowkit store verify`` runs `verify_store`; with ``repair`` it removes what a rerun can rebuild (a
damaged object, a cache entry that points at one, an output whose content a reader would refuse) so
that the next run recomputes it. Registry damage and unreadable run records cannot be rebuilt: they are
reported and stay.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mlflowkit.errors import RegistryError
from mlflowkit.store.artifacts import ArtifactStore, Ref, object_sha

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mlflowkit.store.registry import ModelRegistry

__all__ = ["REBUILT", "Finding", "Inspect", "VerifyReport", "to_json", "verify_store"]

REBUILT = frozenset({"objects", "cache"})
"""The areas whose damage ``repair`` removes and a rerun rebuilds; registry versions and run records are only reported."""


@dataclass(frozen=True)
class Finding:
    """One damaged thing.

    Attributes:
        area: ``objects``, ``cache``, ``registry`` or ``runs``.
        where: the file or object (a path or URI).
        expected: what it should be (a SHA-256, "a signed version", "JSON", ...).
        found: what it is instead.
        repaired: removed by ``repair`` (a rerun rebuilds it).
    """

    area: str
    where: str
    expected: str
    found: str
    repaired: bool = False


@dataclass(frozen=True)
class Inspect:
    """A content check for outputs of one media type, beyond their hash.

    Attributes:
        what: what the content must be, for the report (``a model mlflowkit may load``).
        check: (the bytes, where they are) -> why a reader would refuse them, or None.
    """

    what: str
    check: Callable[[bytes, str], str | None]


@dataclass
class VerifyReport:
    """What `verify_store` looked at and found."""

    checked: dict[str, int] = field(default_factory=lambda: {"objects": 0, "cache": 0, "registry": 0, "runs": 0})
    findings: list[Finding] = field(default_factory=list)
    unsigned: list[str] = field(default_factory=list)

    @property
    def damage_remains(self) -> bool:
        """True when something damaged was not (or could not be) repaired."""
        return any(not f.repaired for f in self.findings)

    @property
    def rebuildable(self) -> bool:
        """True when some unrepaired damage is in an area `repair` clears for a rerun to rebuild (:data:`REBUILT`)."""
        return any(not f.repaired and f.area in REBUILT for f in self.findings)


def _remove(store: ArtifactStore, key: str) -> bool:
    try:
        store.delete(key)
    except OSError:  # no permission to delete: the damage stays, and is reported as such
        return False
    return True


def _objects(store: ArtifactStore, report: VerifyReport, *, repair: bool) -> dict[str, str]:
    """Hash every object; the damaged ones by key, with what was found."""
    damaged: dict[str, str] = {}
    for key in store.list_keys("objects/"):
        report.checked["objects"] += 1
        sha = object_sha(key)
        if sha is None:
            problem, expected = "a file that is not content-addressed", "objects/<sha[:2]>/<sha256 of the bytes>"
        else:
            problem, expected = store.problem(key) or "", f"sha256 {sha}"
            problem = f"sha256 {problem}" if problem and problem != "missing" else problem
        if problem:
            damaged[key] = problem
            report.findings.append(Finding("objects", store.where(key), expected, problem, repair and _remove(store, key)))
    return damaged


def _refusal(store: ArtifactStore, ref: Ref, inspect: Mapping[str, Inspect]) -> str | None:
    found = inspect.get(ref.media_type)
    return None if found is None else found.check(store.get_bytes(ref), store.where(ref))


def _cache(
    store: ArtifactStore, report: VerifyReport, damaged: dict[str, str], *, repair: bool, inspect: Mapping[str, Inspect]
) -> None:
    """A cache entry must be JSON naming outputs that are there, hash as their refs say, and pass ``inspect``."""
    for key in store.list_keys("cache/"):
        if not key.endswith(".json"):
            continue
        report.checked["cache"] += 1
        try:
            entry = store.read_json(key)
            refs = [Ref.model_validate(raw) for raw in entry["outputs"].values()]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            found, removed = f"unreadable ({type(exc).__name__})", repair and _remove(store, key)
            report.findings.append(Finding("cache", store.where(key), "a cache entry (JSON)", found, removed))
            continue
        for ref in refs:
            problem = damaged.get(ref.key) if ref.key in damaged else store.problem(ref)
            if problem is not None:
                found = f"{ref.key}: {'missing' if problem == 'missing' else problem}"
                expected = f"{ref.key} with sha256 {ref.sha256}"
                report.findings.append(Finding("cache", store.where(key), expected, found, repair and _remove(store, key)))
                break
            if (refused := _refusal(store, ref, inspect)) is not None:
                # Every hash checks out (its writer wrote the entry too): the content is what is wrong.
                removed = repair and _remove(store, key) and _remove(store, ref.key)
                expected = f"{ref.key}: {inspect[ref.media_type].what}"
                report.findings.append(Finding("cache", store.where(key), expected, refused, removed))
                break


def _registry(registry: ModelRegistry, report: VerifyReport) -> None:
    """Every version's record, signature and files, and every model's audit logs."""
    for model in registry.models():
        for number in registry.storage.committed(model):
            report.checked["registry"] += 1
            label = f"{model} v{number}"
            try:
                signature = registry.signature(model, number)  # refuses when keys are trusted and it does not verify
                if signature.state == "unsigned":
                    report.unsigned.append(label)
                version = registry.get(model, number)
                for name in version.files:
                    registry.read_file(model, number, name)
            except RegistryError as exc:
                where = registry.storage.where(f"{model}/versions/{number}")
                report.findings.append(Finding("registry", where, f"{label} as registered", str(exc)))
        for problem in registry.verify_audit(model):
            label, _, found = problem.partition(": ")
            where = registry.storage.where(f"{model}/{label.split(' line ')[0]}")
            report.findings.append(Finding("registry", where, "an unbroken hash chain", f"{label}: {found}"))


def _runs(store: ArtifactStore, report: VerifyReport) -> None:
    """A run record must be JSON whose step outputs are references."""
    for key in store.list_keys("runs/"):
        if not key.endswith(".json") or key.count("/") != 1:
            continue
        report.checked["runs"] += 1
        try:
            record = store.read_json(key)
            for step in record.get("steps", []) if isinstance(record, dict) else []:
                for raw in (step.get("outputs") or {}).values():
                    Ref.model_validate(raw)
            if not isinstance(record, dict) or "run_id" not in record:
                raise ValueError("no run_id")
        except (ValueError, TypeError, AttributeError) as exc:
            report.findings.append(Finding("runs", store.where(key), "a run record (JSON)", f"unreadable ({exc})"))


def verify_store(
    store: ArtifactStore,
    registry: ModelRegistry | None,
    *,
    repair: bool = False,
    progress: Callable[[str], None] | None = None,
    inspect: Mapping[str, Inspect] | None = None,
) -> VerifyReport:
    """Check every object, cache entry, registry version and run record of ``store``.

    Args:
        store: the artifact store.
        registry: its registry (None: skip it).
        repair: remove damaged objects and the cache entries that point at damaged or missing outputs,
            so that the next run recomputes them.
        progress: called with the name of each area as it is checked.
        inspect: content checks by media type for the outputs cache entries name (a model's types); an
            output that fails one is reported, and ``repair`` removes it and its cache entry.
    """
    report = VerifyReport()
    say = progress or (lambda _: None)
    say("objects")
    damaged = _objects(store, report, repair=repair)
    say("cache")
    _cache(store, report, damaged, repair=repair, inspect=inspect or {})
    if registry is not None:
        say("registry")
        with contextlib.suppress(FileNotFoundError):
            _registry(registry, report)
    say("runs")
    _runs(store, report)
    return report


def to_json(report: VerifyReport) -> str:
    """The report as JSON (for tools)."""
    return json.dumps(
        {
            "checked": report.checked,
            "findings": [f.__dict__ for f in report.findings],
            "unsigned": report.unsigned,
            "damage_remains": report.damage_remains,
        },
        indent=2,
        sort_keys=True,
    )
