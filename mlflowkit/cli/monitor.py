"""``mlflowkit monitor SPEC --data URI``: check live data for drift against the champion, retrain when it moved.

The flow is :func:`mlflowkit.runtime.monitor.run_monitor`.
Exit codes: 0 when the check ran (drift or not; see ``--fail-on-drift``), 1 when it could not run
or the retraining it triggered failed, 2 for a bad spec.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlflowkit.cli.common import SpecArg, StoreOpt, fail, load_spec_file, out

__all__ = ["monitor"]


def monitor(
    spec: SpecArg,
    data: Annotated[
        str | None,
        typer.Option("--data", help="Live data: a file, glob or URI (CSV, Parquet, JSON lines); default: monitor.data."),
    ] = None,
    store: StoreOpt = None,
    trigger: Annotated[bool, typer.Option("--trigger/--no-trigger", help="Retrain on drift when on_drift says so.")] = True,
    out_file: Annotated[Path | None, typer.Option("--out", help="Also write the HTML drift report to this file.")] = None,
    fail_on_drift: Annotated[bool, typer.Option("--fail-on-drift", help="Exit with 3 when the data drifted.")] = False,
) -> None:
    """Check a batch of live data against the champion's reference profile; retrain when it drifted."""
    from rich.table import Table

    from mlflowkit.errors import MlflowkitError
    from mlflowkit.flows.entry import start_training_deployment
    from mlflowkit.runtime.monitor import run_monitor
    from mlflowkit.store import ArtifactStore

    loaded = load_spec_file(spec, None)
    try:
        result = run_monitor(
            loaded, data, store=store, trigger=trigger, log=lambda line: out.print(f"[dim]{line}[/]"),
            start_deployment=start_training_deployment,
        )  # fmt: skip
    except MlflowkitError as exc:
        fail(exc)
    report = result.report
    table = Table(title=f"drift: {report.model} v{report.version}, {report.rows} live rows")
    for col in ("feature", "type", "status", "metrics", "why"):
        table.add_column(col)
    for f in [*report.features, *([report.prediction] if report.prediction else [])]:
        metrics = ", ".join(f"{k} {v:.3g}" for k, v in f.metrics.items() if isinstance(v, float))
        colour = {"ok": "green", "drift": "red", "missing": "red"}.get(f.status, "dim")
        table.add_row(f.feature, f.type, f"[{colour}]{f.status}[/]", metrics, "; ".join(f.reasons))
    out.print(table)
    if report.performance:
        p = report.performance
        out.print(f"performance: {p['metric']} = {p.get('value')} on {p['rows']} labelled rows")
        out.print(f"  at evaluation: {p.get('baseline')}")
    colour = {"ok": "green", "drift": "red"}.get(report.verdict, "yellow")
    out.print(f"verdict: [bold {colour}]{report.verdict}[/]" + (f" — {'; '.join(report.reasons)}" if report.reasons else ""))
    out.print(f"report: {result.html_key} (in the store)")
    if out_file is not None:
        st = ArtifactStore(result.store_root)
        out_file.write_bytes(st.get_bytes(result.html_key))
        out.print(f"wrote {out_file}")
    if result.trigger:
        t = result.trigger
        if t["via"] == "deployment":
            where = f"deployment {t['deployment']} (flow run {t['flow_run_id']})"
        else:
            where = f"run {t.get('run_id')}"
        out.print(f"retraining triggered: {where}")
        if t["via"] == "local" and not t.get("ok"):
            raise typer.Exit(1)
    if fail_on_drift and report.drifted:
        raise typer.Exit(3)
