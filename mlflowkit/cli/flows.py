"""``mlflowkit flows deploy|serve|list``: specs as Prefect deployments, with their schedules.

The logic lives in :mod:`mlflowkit.flows.deploy`.
Exit codes as elsewhere: 2 a spec (or the command line) is invalid and nothing was registered, 1 the
server refused or could not be reached.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.table import Table

from mlflowkit.cli.common import err, fail, out
from mlflowkit.cli.help import HelpGroup
from mlflowkit.errors import MlflowkitError, SpecError

if TYPE_CHECKING:
    from mlflowkit.flows.deploy import Registration

__all__ = ["app", "describe_schedule"]

app = typer.Typer(
    help="Specs as Prefect deployments: schedules, runs from the Prefect UI, a serving process or a work pool.",
    no_args_is_help=True,
    cls=HelpGroup,
)

DirArg = Annotated[Path, typer.Argument(help="The folder of specs (searched recursively for YAML with `spec:`).")]


def _fail_unregistered(exc: MlflowkitError) -> NoReturn:
    """Like :func:`fail`, and for a bad spec say that nothing was registered (registration is all or none)."""
    if isinstance(exc, SpecError):
        err.print(str(exc), markup=False)
        files = sorted({i.file for i in exc.issues})
        err.print(f"[bold red]nothing registered[/]: fix {', '.join(files)} first (registration is all or none)")
        raise typer.Exit(exc.exit_code)
    fail(exc)


def _quiet() -> None:
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def _show(result: Registration, verb: str) -> None:
    table = Table(title=f"{verb} {len(result.deployments)} deployment(s)", title_justify="left")
    for col in ("deployment", "spec", "schedules", "params", "id"):
        table.add_column(col)
    for item in result.specs:
        schedules = getattr(item.spec, "schedule", ())
        table.add_row(
            item.full_name,
            os.path.relpath(item.path),
            "; ".join(s.describe() for s in schedules) or "-",
            ", ".join(f"{k}={v}" for k, v in item.spec.params.items()) or "-",
            result.deployments[item.full_name][:8],
        )
        if item.monitor_name is not None and item.monitor_name in result.deployments:
            table.add_row(
                item.monitor_name,
                os.path.relpath(item.path),
                "; ".join(s.describe() for s in item.spec.monitor.schedule),  # type: ignore[union-attr]
                "data=" + str(item.spec.monitor.data or "-"),  # type: ignore[union-attr]
                result.deployments[item.monitor_name][:8],
            )
    out.print(table)
    for orphan in result.orphans:
        pruned = orphan["name"] in result.pruned
        out.print(
            f"[yellow]{'deleted' if pruned else 'orphan'}[/]: {orphan['name']} ({orphan['reason']}: {orphan['spec']})"
            + ("" if pruned else "; --prune deletes it")
        )


@app.command("deploy")
def deploy(
    folder: DirArg,
    work_pool: Annotated[
        str | None,
        typer.Option("--work-pool", help="Run the flows on this Prefect work pool (type process) instead of `flows serve`."),
    ] = None,
    prune: Annotated[bool, typer.Option("--prune", help="Delete managed deployments whose spec is gone.")] = False,
) -> None:
    """Register every spec under FOLDER with the Prefect server in PREFECT_API_URL; all of them or, if one is bad, none."""
    _quiet()
    from mlflowkit.flows.deploy import register

    try:
        result = register(folder, work_pool=work_pool, prune=prune)
    except MlflowkitError as exc:
        _fail_unregistered(exc)
    _show(result, "registered")
    if work_pool:
        out.print(f"runs go to work pool {work_pool!r}: start a worker with `prefect worker start --pool {work_pool}`")
    else:
        out.print(f"serve them with `mlflowkit flows serve {folder}` (or register with --work-pool NAME)")


@app.command("serve")
def serve(
    folder: DirArg,
    limit: Annotated[int | None, typer.Option("--limit", help="Most flow runs at once.")] = None,
) -> None:
    """Register every spec under FOLDER and run their scheduled and requested flow runs in this process (Ctrl-C stops)."""
    _quiet()
    from mlflowkit.flows.deploy import serve as serve_folder

    try:
        serve_folder(folder, limit=limit)
    except MlflowkitError as exc:
        _fail_unregistered(exc)


@app.command("list")
def list_(
    folder: Annotated[Path | None, typer.Argument(help="Mark the deployments registered from this folder.")] = None,
) -> None:
    """The deployments mlflowkit manages on the server, with their schedules; orphans are marked."""
    from mlflowkit.flows.deploy import managed

    try:
        found = managed()
    except MlflowkitError as exc:
        fail(exc)
    root = folder.resolve() if folder else None
    table = Table()
    table.add_column("deployment")
    table.add_column("spec", overflow="fold")
    table.add_column("schedules", no_wrap=True)  # one per line, each whole: a wrapped rrule reads as two
    table.add_column("work pool")
    table.add_column("status")
    for d in sorted(found, key=lambda d: (d["flow_name"], d["name"])):
        spec = Path(d["spec_path"]) if d["spec_path"] else None
        schedules = "\n".join(
            f"{s.get('slug') or '?'}: {describe_schedule(s.get('schedule') or {})}{'' if s.get('active') else ' (paused)'}"
            for s in d.get("schedules", [])
        )
        status = "spec deleted" if spec is not None and not spec.exists() else "ok"
        if root is not None and spec is not None and not spec.is_relative_to(root):
            status += " (other folder)"
        table.add_row(
            f"{d['flow_name']}/{d['name']}", str(spec or "-"), schedules or "-", d.get("work_pool_name") or "serve", status
        )
    out.print(table)


def _duration(seconds: float) -> str:
    """``6 hours``, ``1 day``, ``1 hour 30 minutes``: an interval as a person says it."""
    parts, left = [], round(seconds)
    for name, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count, left = divmod(left, size)
        if count:
            parts.append(f"{count} {name}{'s' if count != 1 else ''}")
    return " ".join(parts) or f"{seconds} seconds"


def describe_schedule(schedule: dict[str, object]) -> str:
    """A Prefect schedule as its spec would write it: ``cron 0 2 * * * (Europe/Berlin)``,
    ``every 6 hours from 2026-12-03 12:00 (America/New_York)``, ``rrule FREQ=WEEKLY;BYDAY=SU (UTC)``.

    Prefect keeps an interval's anchor and adds a ``DTSTART`` line to an rrule; the anchor is shown in the
    schedule's timezone, the ``DTSTART`` it added is left out.
    """
    import datetime
    import zoneinfo

    tz = str(schedule.get("timezone") or "UTC")
    if schedule.get("cron"):
        return f"cron {schedule['cron']} ({tz})"
    interval = schedule.get("interval")
    if isinstance(interval, int | float):
        said = f"every {_duration(float(interval))}"
        anchor = schedule.get("anchor_date")
        if isinstance(anchor, str):
            try:
                when = datetime.datetime.fromisoformat(anchor.replace("Z", "+00:00")).astimezone(zoneinfo.ZoneInfo(tz))
                said += f" from {when:%Y-%m-%d %H:%M}"
            except (ValueError, zoneinfo.ZoneInfoNotFoundError):
                said += f" from {anchor}"
        return f"{said} ({tz})"
    rules = [
        line.removeprefix("RRULE:")
        for line in str(schedule.get("rrule") or "").splitlines()
        if line.strip() and not line.upper().startswith("DTSTART")
    ]
    return f"rrule {'; '.join(rules) or '?'} ({tz})"
