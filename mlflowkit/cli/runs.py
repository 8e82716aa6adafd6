"""``mlflowkit runs list|show`` and ``mlflowkit report``: past runs from the store (and Prefect), and a run's HTML report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mlflowkit.cli.common import SpecOpt, StoreOpt, err, open_registry, out, store_uri, verdict_table
from mlflowkit.cli.help import HelpGroup

__all__ = ["app", "report"]

app = typer.Typer(help="Past runs: status, steps, timings.", no_args_is_help=True, cls=HelpGroup)


def _runs(store: str | None, spec_path: Path | None) -> tuple[Any, list[dict[str, Any]]]:
    from mlflowkit.store import ArtifactStore

    st = ArtifactStore(store_uri(store, spec_path))
    records = [st.read_json(k) for k in st.list_keys("runs") if k.endswith(".json")]
    return st, sorted(records, key=lambda r: r["started_at"])


def _one_run(records: list[dict[str, Any]], run_id: str) -> dict[str, Any]:
    """The one record whose id starts with ``run_id``, or exit 1 saying there is none or several."""
    match = [r for r in records if r["run_id"].startswith(run_id)]
    if len(match) != 1:
        err.print(f"[bold red]error[/]: {'no run' if not match else 'several runs'} matching {run_id!r}")
        raise typer.Exit(1)
    return match[0]


def _history(records: list[dict[str, Any]], store: str | None, spec_path: Path | None) -> Any:
    from mlflowkit.flows.history import history

    try:
        registry = open_registry(store, spec_path)
    except Exception:  # no registry yet: the runs still show
        registry = None
    return history(records, registry)


@app.command("list")
def runs_list(
    store: StoreOpt = None, spec: SpecOpt = None, limit: Annotated[int, typer.Option(help="Show the newest N runs.")] = 20
) -> None:
    """Recent runs: status, duration, steps run or cached, version registered, Prefect state and trigger."""
    from mlflowkit.flows.history import trigger

    _, records = _runs(store, spec)
    found = _history(records[-limit:], store, spec)
    table = Table()
    for col in ("run", "spec", "status", "seconds", "ran", "cached", "registered", "prefect", "trigger", "flow run"):
        table.add_column(col)
    for r in found.records:
        statuses = [s["status"] for s in r.get("steps", [])]
        table.add_row(
            r["run_id"],
            r["spec_name"],
            r["status"],
            f"{r.get('seconds', 0):.2f}",
            str(statuses.count("ran")),
            str(statuses.count("cached")),
            r.get("registered") or "-",
            (r.get("prefect") or {}).get("state") or "-",
            trigger(r),
            (r.get("flow_run_id") or "-")[:8],
        )
    out.print(table)
    if found.note:
        out.print(f"[dim]note: {found.note}[/]")


@app.command("show")
def runs_show(run_id: str, store: StoreOpt = None, spec: SpecOpt = None) -> None:
    """One run: its steps with timings and outputs, its verdict, its error, and Prefect's view of it."""
    from mlflowkit.flows.history import trigger
    from mlflowkit.handoff import RunRecord

    st, records = _runs(store, spec)
    found = _history([_one_run(records, run_id)], store, spec)
    r = found.records[0]
    run = RunRecord.model_validate(r)  # records written by older versions read as the same type
    out.print(f"[bold]{run.run_id}[/] {run.spec_name} ({run.spec_path}): [bold]{run.status}[/] in {run.seconds:.2f}s")
    git, flow_run = run.git_commit or "-", run.flow_run_id or "-"
    out.print(f"spec {run.spec_hash[:12]}  params {json.dumps(run.params)}  git {git}  flow run {flow_run}")
    out.print(f"registered {r.get('registered') or '-'}  triggered by {trigger(r)}")
    prefect = r.get("prefect")
    if prefect:
        seconds = prefect.get("seconds")
        took = f"{seconds:.2f}s" if isinstance(seconds, int | float) else "-"
        when = f"{prefect.get('start') or '-'} → {prefect.get('end') or '-'}"
        out.print(f"prefect: {prefect['state']}  {when} ({took})", markup=False)
        out.print(f"  tags {', '.join(prefect.get('tags') or []) or '-'}  {prefect['url']}", markup=False)
    table = Table()
    for col in ("step", "kind", "status", "seconds", "outputs"):
        table.add_column(col)
    for s in run.steps:
        table.add_row(s.name, s.kind, s.status, f"{s.seconds:.2f}", ", ".join(s.outputs))
    out.print(table)
    if run.verdict is not None:
        verdict_table(run.verdict)
    if run.report:
        out.print(f"report: {st.root}/{run.report} (mlflowkit report {run.run_id} --open)", markup=False)
    if run.error:
        out.print(f"[red]error[/]: {run.error}", markup=True)
    if found.note:
        out.print(f"[dim]note: {found.note}[/]")


def report(
    run_id: Annotated[str, typer.Argument(help="The run (or a unique prefix of its id).")],
    output: Annotated[Path | None, typer.Option("--out", "-o", help="Write the HTML here instead of into the store.")] = None,
    open_: Annotated[bool, typer.Option("--open", help="Open it in the web browser.")] = False,
    store: StoreOpt = None,
    spec: SpecOpt = None,
) -> None:
    """Write a run's HTML report (lineage, data checks, metrics and plots, gates, deployments, model card)."""
    from mlflowkit.report import collect, render, write_report

    st, records = _runs(store, spec)
    rid = _one_run(records, run_id)["run_id"]
    registry = open_registry(store, spec)
    where: Path | None
    if output is not None:
        output.write_text(render(collect(st, rid, registry=registry)), encoding="utf-8")
        where = output.resolve()
    else:
        key = write_report(st, rid, registry=registry)
        where = Path(st.root) / key if st.is_local else None
        if where is None:
            out.print(f"wrote {st.uri}/{key}", markup=False)
    if where is not None:
        out.print(f"wrote {where}", markup=False)
        if open_:
            import webbrowser

            webbrowser.open(where.as_uri())
    elif open_:
        err.print("[yellow]--open needs a local file: use --out FILE[/]")
