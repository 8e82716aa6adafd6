"""``mlflowkit runs list|show|compare`` and ``mlflowkit report``: past runs (store and Prefect), side by side, and reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from mlflowkit.cli.common import SpecOpt, StoreOpt, err, existing_store, open_registry, out, store_uri, verdict_table
from mlflowkit.cli.help import HelpGroup
from mlflowkit.fmt import interval

__all__ = ["app", "report"]

app = typer.Typer(
    help="Past runs: status, steps, timings, metrics and params; compare runs side by side.", no_args_is_help=True, cls=HelpGroup
)


def _runs(store: str | None, spec_path: Path | None, *, listing: bool = False) -> tuple[Any, list[dict[str, Any]]]:
    from mlflowkit.runtime.record import as_seen
    from mlflowkit.store import ArtifactStore

    st = ArtifactStore(existing_store(store_uri(store, spec_path), listing=listing))
    records = [as_seen(st.read_json(k)) for k in st.list_keys("runs") if k.endswith(".json")]
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


MetricOpt = Annotated[list[str] | None, typer.Option("--metric", "-m", help="Add a metric column (repeatable): roc_auc.")]
ParamOpt = Annotated[list[str] | None, typer.Option("--param", "-p", help="Add a param column (repeatable): n_estimators.")]
FilterOpt = Annotated[
    list[str] | None,
    typer.Option("--filter", "-f", help="Keep runs where NAME OP VALUE holds (repeatable): roc_auc>=0.8, status=completed."),
]


def _chosen(summaries: list[Any], names: list[str], what: str) -> None:
    """Exit 2 naming the closest names when a --metric/--param/--sort/--filter name is unknown to every run."""
    import difflib

    from mlflowkit.run_summary import known_names

    known = known_names(summaries)
    for name in names:
        if name not in known and summaries:
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(known)}"
            err.print(f"[bold red]error[/]: no run has a {what} called {name!r}{hint}")
            raise typer.Exit(2)


@app.command("list")
def runs_list(
    store: StoreOpt = None,
    spec: SpecOpt = None,
    limit: Annotated[int, typer.Option(help="Show the newest N runs (after filtering).")] = 20,
    metric: MetricOpt = None,
    param: ParamOpt = None,
    sort: Annotated[str | None, typer.Option("--sort", help="Sort by a column, metric or param (default: start time).")] = None,
    desc: Annotated[bool, typer.Option("--desc", help="Sort descending.")] = False,
    filter_: FilterOpt = None,
) -> None:
    """Recent runs: status, verdict, duration, steps run or cached, version, Prefect state, trigger; chosen metrics and params.

    mlflowkit runs list --metric roc_auc --param n_estimators --sort roc_auc --desc --filter status=completed
    """
    from mlflowkit.flows.history import trigger
    from mlflowkit.handoff import RunRecord
    from mlflowkit.run_summary import RunFilter, fmt, sort_key, summarize

    st, records = _runs(store, spec, listing=True)
    try:
        filters = [RunFilter.parse(f) for f in filter_ or []]
    except ValueError as exc:
        err.print(f"[bold red]error[/]: {escape(str(exc))}")
        raise typer.Exit(2) from None
    summaries = [summarize(st, RunRecord.model_validate(r)) for r in records]
    _chosen(summaries, [*(metric or []), *(param or []), *([sort] if sort else []), *(f.name for f in filters)], "column")
    summaries = [s for s in summaries if all(f(s) for f in filters)]
    if sort:
        summaries.sort(key=sort_key(sort), reverse=desc)
        summaries = summaries[:limit]
    else:
        summaries = summaries[-limit:][::-1] if desc else summaries[-limit:]
    found = _history([s.record.to_json() for s in summaries], store, spec)
    by_id = {s.run_id: s for s in summaries}
    table = Table()
    columns = ["run", "spec", "status", "verdict", "seconds", "ran/cached", "registered"]
    columns += [*(metric or []), *(param or []), "prefect", "trigger", "flow run"]
    chosen = [*(metric or []), *(param or [])]
    for col in columns:  # the run id and the columns asked for are never cut; others give way on a narrow terminal
        wide = col == "run" or col in chosen
        right = col in (metric or [])
        table.add_column(col, justify="right" if right else "left", no_wrap=wide, min_width=len(col) if wide else None)
    for r in found.records:
        summary = by_id[r["run_id"]]
        statuses = [s["status"] for s in r.get("steps", [])]
        metrics = []
        for name in metric or []:
            value, ci = summary.metrics.get(name), summary.intervals.get(name)
            metrics.append(fmt(value) + (f" {interval(*ci)}" if ci and value is not None else ""))  # 95% interval
        table.add_row(
            r["run_id"],
            r["spec_name"],
            r["status"],
            summary.verdict,
            f"{r.get('seconds', 0):.2f}",
            f"{statuses.count('ran')}/{statuses.count('cached')}",
            r.get("registered") or "-",
            *metrics,
            *(fmt(summary.param(name)) for name in param or []),
            (r.get("prefect") or {}).get("state") or "-",
            trigger(r),
            (r.get("flow_run_id") or "-")[:8],
        )
    out.print(table)
    if found.note:
        out.print(f"[dim]note: {found.note}[/]")


@app.command("compare")
def runs_compare(
    run_ids: Annotated[list[str], typer.Argument(help="Two or more runs (or unique prefixes of their ids).", show_default=False)],
    html: Annotated[Path | None, typer.Option("--html", help="Also write a comparison page with charts here.")] = None,
    open_: Annotated[bool, typer.Option("--open", help="Open the page in the web browser.")] = False,
    only_differences: Annotated[bool, typer.Option("--diff", help="Show only the fields that differ.")] = False,
    store: StoreOpt = None,
    spec: SpecOpt = None,
) -> None:
    """Runs side by side: params, metrics with intervals, gate verdicts, data fingerprints, lineage; differences marked (≠).

    --html writes a self-contained page with a chart per metric across the runs and their ROC curves (or
    residuals) overlaid.
    """
    from mlflowkit.handoff import RunRecord
    from mlflowkit.run_summary import compare, summarize

    if len(run_ids) < 2:
        err.print("[bold red]error[/]: compare needs at least two runs")
        raise typer.Exit(2)
    st, records = _runs(store, spec)
    chosen = [_one_run(records, run_id) for run_id in run_ids]
    summaries = [summarize(st, RunRecord.model_validate(r)) for r in chosen]
    rows = compare(summaries)
    table = Table(title=f"{len(summaries)} runs; ≠ marks what differs", title_justify="left")
    table.add_column("")
    table.add_column("field")
    for s in summaries:
        table.add_column(s.run_id)
    section = ""
    for row in rows:
        if only_differences and not row.differs:
            continue
        if row.section != section:
            section = row.section
            table.add_section()
        mark = "[bold yellow]≠[/]" if row.differs else ""
        cells = [f"[bold]{escape(v)}[/]" if row.differs else escape(v) for v in row.values]
        table.add_row(mark, f"{row.section}: {escape(row.name)}", *cells)
    out.print(table)
    if html is not None:
        from mlflowkit.report.compare import render_comparison

        html.write_text(render_comparison(summaries), encoding="utf-8")
        where = html.resolve()
        out.print(f"wrote {where}", markup=False)
        if open_:
            import webbrowser

            webbrowser.open(where.as_uri())


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
    if run.tracking is not None:
        where = run.tracking.url if run.tracking.state == "logged" else f"{run.tracking.uri}: {run.tracking.note}"
        out.print(f"MLflow: {run.tracking.state} {where}", markup=False)
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
