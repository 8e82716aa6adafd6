"""Register every spec of a folder as a Prefect deployment, all or none; serve them, or leave them to a work pool.

A spec becomes one deployment, ``<spec name>/lifecycle``, with the spec's schedules, its params as the
deployment's parameters (editable in the Prefect UI), and the tags ``mlflowkit``, ``spec:NAME`` and
``model:NAME``. A spec whose ``monitor:`` has a schedule also becomes ``<spec name>-monitor/monitor``,
the drift check on that schedule. The ``mlflowkit`` tag is how deployments whose spec was deleted are found again.
"""

from __future__ import annotations

import datetime
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflowkit.errors import MlflowkitError, SpecError, SpecIssue
from mlflowkit.flows.entry import DEPLOYMENT_NAME, MONITOR_DEPLOYMENT_NAME

if TYPE_CHECKING:
    from mlflowkit.plan.model import Plan
    from mlflowkit.spec.models import SpecBase
    from mlflowkit.spec.schedule import Schedule

__all__ = [
    "DEPLOYMENT_NAME",
    "MANAGED_TAG",
    "FlowSpec",
    "Registration",
    "build_deployments",
    "find_specs",
    "load_folder",
    "managed",
    "register",
    "serve",
]

MANAGED_TAG = "mlflowkit"
_SPEC_LINE = re.compile(r"^mlflowkit spec: (?P<path>.+)$", re.MULTILINE)
_IS_SPEC = re.compile(r"^spec\s*:", re.MULTILINE)
_SKIP_DIRS = {".mlflowkit", "recipes", "__pycache__", "node_modules"}


@dataclass(frozen=True)
class FlowSpec:
    """One spec of the folder, validated and compiled."""

    path: Path
    spec: SpecBase
    plan: Plan

    @property
    def name(self) -> str:
        """The flow's name in Prefect: the spec's name."""
        return self.spec.name

    @property
    def full_name(self) -> str:
        """``flow/deployment``, as Prefect names a deployment."""
        return f"{self.spec.name}/{DEPLOYMENT_NAME}"

    @property
    def monitor_name(self) -> str | None:
        """``flow/deployment`` of the scheduled drift check, when ``monitor.schedule`` is set."""
        monitor = getattr(self.spec, "monitor", None)
        return f"{self.spec.name}-monitor/{MONITOR_DEPLOYMENT_NAME}" if monitor is not None and monitor.schedule else None


@dataclass
class Registration:
    """What ``register`` did: deployments by full name, and the managed ones whose spec is gone."""

    deployments: dict[str, str] = field(default_factory=dict)
    """``flow/deployment`` -> deployment id."""
    specs: list[FlowSpec] = field(default_factory=list)
    orphans: list[dict[str, str]] = field(default_factory=list)
    """Each: ``name``, ``id``, ``spec`` (the file it was registered from), ``reason``."""
    pruned: list[str] = field(default_factory=list)


def find_specs(folder: str | os.PathLike[str]) -> tuple[list[Path], list[Path]]:
    """YAML files under ``folder`` that are specs (a top-level ``spec:`` key), and the other YAML files.

    State folders (``.mlflowkit``), hidden folders and ``recipes/`` folders are not searched.
    """
    root = Path(folder)
    specs: list[Path] = []
    others: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if not name.endswith((".yaml", ".yml")):
                continue
            path = Path(dirpath) / name
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                others.append(path)
                continue
            (specs if _IS_SPEC.search(text) else others).append(path)
    return specs, others


def load_folder(folder: str | os.PathLike[str]) -> list[FlowSpec]:
    """Validate and compile every spec under ``folder``; nothing is registered by this.

    Raises:
        SpecError: every issue of every spec at once (each names its file), or the folder has no spec.
    """
    from mlflowkit.plan.compile import compile_spec
    from mlflowkit.policy.governed import load_spec

    paths, _ = find_specs(folder)
    if not Path(folder).is_dir():
        raise SpecError([SpecIssue(f"no folder {folder}", "", str(folder))])
    if not paths:
        raise SpecError([SpecIssue(f"no spec files (YAML with a top-level `spec:` key) under {folder}", "", str(folder))])
    issues: list[SpecIssue] = []
    loaded: list[FlowSpec] = []
    for path in paths:
        try:
            spec = load_spec(path)
            loaded.append(FlowSpec(path.resolve(), spec, compile_spec(spec)))
        except SpecError as exc:
            issues.extend(exc.issues)
        except MlflowkitError as exc:  # e.g. a plan cycle: still this file's fault
            issues.append(SpecIssue(str(exc), "", str(path)))
    by_name: dict[str, FlowSpec] = {}
    for item in loaded:
        if item.name in by_name:
            first = by_name[item.name].path
            issues.append(
                item.spec.sources.issue(
                    ("name",), f"spec name {item.name!r} is also the name of {first}; flow names must be unique"
                )
            )
        by_name.setdefault(item.name, item)
    for item in loaded:  # Prefect's own checks of the schedules, so that registering cannot fail half-way on them
        monitor = getattr(item.spec, "monitor", None)
        located: list[tuple[tuple[str | int, ...], Any]] = [
            (("schedule", i), s) for i, s in enumerate(getattr(item.spec, "schedule", ()))
        ]
        located += [(("monitor", "schedule", i), s) for i, s in enumerate(monitor.schedule if monitor else ())]
        for where, entry in located:
            try:
                prefect_schedule(entry, int(where[-1]))
            except (ValueError, TypeError) as exc:
                issues.append(item.spec.sources.issue(where, f"Prefect refuses this schedule: {exc}"))
    if issues:
        raise SpecError(issues)
    return loaded


def prefect_schedule(entry: Schedule, index: int) -> Any:
    """The Prefect schedule for one ``schedule:`` entry (cron, interval or rrule, with its timezone and params)."""
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.schedules import Cron, Interval, RRule

    from mlflowkit.spec.schedule import slugs

    slug = slugs((entry,))[0] if entry.name else f"schedule-{index + 1}"
    common: dict[str, Any] = {"timezone": entry.timezone, "active": entry.active, "parameters": dict(entry.params), "slug": slug}
    if entry.cron is not None:
        made = Cron(entry.cron, **common)
    elif entry.rrule is not None:
        made = RRule(entry.rrule, **common)
    else:
        assert entry.seconds is not None
        made = Interval(datetime.timedelta(seconds=entry.seconds), **common)
    # Validate now, as the API would: a schedule Prefect refuses must stop registration before it starts.
    DeploymentScheduleCreate.from_schedule(made)
    return made


def build_deployments(specs: list[FlowSpec], *, work_pool: str | None = None) -> list[Any]:
    """One Prefect ``RunnerDeployment`` per spec: schedules, params, tags; for a work pool, the worker's entrypoint."""
    from prefect.types.entrypoint import EntrypointType

    from mlflowkit.flows.entry import ENTRYPOINT, SPEC_ENV, spec_flow

    deployments = []
    for item in specs:
        flow = spec_flow(item.path)
        description = (item.spec.description or f"{item.name} (recipe {item.spec.recipe})") + f"\n\nmlflowkit spec: {item.path}"
        deployment = flow.to_deployment(
            name=DEPLOYMENT_NAME,
            schedules=[prefect_schedule(s, i) for i, s in enumerate(getattr(item.spec, "schedule", ()))],
            parameters=dict(item.spec.params),
            description=description,
            tags=[MANAGED_TAG, f"spec:{item.name}", f"model:{item.plan.model}"],
            version=item.spec.spec_hash[:12],
            work_pool_name=work_pool,
            job_variables={"env": {SPEC_ENV: str(item.path)}} if work_pool else None,
            entrypoint_type=EntrypointType.MODULE_PATH,
        )
        deployment.entrypoint = ENTRYPOINT
        deployments.append(deployment)
    return deployments


def build_monitor_deployments(specs: list[FlowSpec], *, work_pool: str | None = None) -> dict[str, Any]:
    """The scheduled drift checks (``monitor.schedule``), by ``flow/deployment`` name."""
    from prefect.types.entrypoint import EntrypointType

    from mlflowkit.flows.entry import MONITOR_ENTRYPOINT, SPEC_ENV, monitor_flow_of

    out: dict[str, Any] = {}
    for item in specs:
        if item.monitor_name is None:
            continue
        deployment = monitor_flow_of(item.path).to_deployment(
            name=MONITOR_DEPLOYMENT_NAME,
            schedules=[prefect_schedule(s, i) for i, s in enumerate(item.spec.monitor.schedule)],  # type: ignore[union-attr]
            description=f"drift check of {item.name}\n\nmlflowkit spec: {item.path}",
            tags=[MANAGED_TAG, "monitor", f"spec:{item.name}", f"model:{item.plan.model}"],
            work_pool_name=work_pool,
            job_variables={"env": {SPEC_ENV: str(item.path)}} if work_pool else None,
            entrypoint_type=EntrypointType.MODULE_PATH,
        )
        deployment.entrypoint = MONITOR_ENTRYPOINT
        out[item.monitor_name] = deployment
    return out


def _api_url() -> str:
    from mlflowkit.runtime.locations import configured_api_url

    url = configured_api_url()
    if not url:
        raise MlflowkitError(
            "no Prefect server: set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api after `prefect server start`)"
        )
    return url


def managed() -> list[dict[str, Any]]:
    """Every deployment on the server tagged ``mlflowkit``, with ``flow_name`` and ``spec_path`` added."""
    from mlflowkit.flows.api import ApiUnavailable, PrefectApi

    try:
        with PrefectApi(_api_url()) as api:
            found = api.deployments(tag=MANAGED_TAG)
    except ApiUnavailable as exc:
        raise MlflowkitError(f"the Prefect API is not reachable: {exc}") from None
    for d in found:
        lines: list[str] = _SPEC_LINE.findall(d.get("description") or "")  # the last: the spec's own text comes first
        d["spec_path"] = lines[-1].strip() if lines else ""
    return found


def register(folder: str | os.PathLike[str], *, work_pool: str | None = None, prune: bool = False) -> Registration:
    """Validate every spec under ``folder``, then register them all with the Prefect server in ``PREFECT_API_URL``.

    Registering again is idempotent: the same deployments (by ``flow/deployment`` name) are updated
    in place, and schedules the spec no longer has are removed. A managed deployment registered
    from this folder whose spec is gone (deleted, or renamed) is reported, and deleted with ``prune``.

    Raises:
        SpecError: a spec is invalid; nothing was registered.
        MlflowkitError: no server, the server is unreachable, or the work pool does not exist.
    """
    specs = load_folder(folder)
    _api_url()
    result = Registration(specs=specs)
    deployments = build_deployments(specs, work_pool=work_pool)
    if work_pool:
        _require_pool(work_pool)
    for item, deployment in zip(specs, deployments, strict=True):
        result.deployments[item.full_name] = str(deployment.apply())
    for name, deployment in build_monitor_deployments(specs, work_pool=work_pool).items():
        result.deployments[name] = str(deployment.apply())
    _drop_stale_schedules(specs, result.deployments)
    root = Path(folder).resolve()
    current = set(result.deployments)
    for d in managed():
        name = f"{d['flow_name']}/{d['name']}"
        spec_path = Path(d["spec_path"]) if d["spec_path"] else None
        if name in current or spec_path is None or not spec_path.is_relative_to(root):
            continue
        reason = "its spec file was deleted" if not spec_path.exists() else "its spec no longer registers under this name"
        result.orphans.append({"name": name, "id": d["id"], "spec": str(spec_path), "reason": reason})
    if prune and result.orphans:
        import uuid

        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            for orphan in result.orphans:
                client.delete_deployment(uuid.UUID(orphan["id"]))
                result.pruned.append(orphan["name"])
    return result


def _require_pool(name: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
        except ObjectNotFound:
            raise MlflowkitError(f"no work pool {name!r} on the server: prefect work-pool create {name} --type process") from None


def _drop_stale_schedules(specs: list[FlowSpec], ids: dict[str, str]) -> None:
    """Delete the schedules a deployment has that its spec no longer lists (Prefect's update only adds and changes)."""
    import uuid

    from prefect.client.orchestration import get_client

    from mlflowkit.spec.schedule import slugs

    with get_client(sync_client=True) as client:
        for item in specs:
            monitor = getattr(item.spec, "monitor", None)
            pairs = [(item.full_name, getattr(item.spec, "schedule", ()))]
            if item.monitor_name is not None and monitor is not None:
                pairs.append((item.monitor_name, monitor.schedule))
            for name, schedules in pairs:
                deployment_id = uuid.UUID(ids[name])
                wanted = set(slugs(schedules))
                for schedule in client.read_deployment_schedules(deployment_id):
                    if schedule.slug not in wanted:
                        client.delete_deployment_schedule(deployment_id, schedule.id)


def serve(folder: str | os.PathLike[str], *, limit: int | None = None) -> None:
    """Register the folder's specs (see :func:`register`) and run their flows in this process until stopped."""
    from prefect import serve as prefect_serve

    registration = register(folder)
    deployments = build_deployments(registration.specs) + list(build_monitor_deployments(registration.specs).values())
    prefect_serve(*deployments, limit=limit, print_starting_message=True)
