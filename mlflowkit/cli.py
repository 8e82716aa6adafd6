"""The ``mlflowkit`` command line: validate, plan, run, schema, models, runs.

Exit codes: 0 success, 1 a run or command failed, 2 the spec (or the command line) is invalid.
Heavy modules load only in the commands that need them, so ``validate`` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from mlflowkit import cli_edge, cli_flows, cli_init, cli_monitor, cli_plugins, cli_policy, cli_triton
from mlflowkit.errors import MlflowkitError, SpecError

if TYPE_CHECKING:
    from mlflowkit.kinds.base import Report
    from mlflowkit.plan.model import Plan, PlanStep
    from mlflowkit.runtime.engine import RunResult, StepRecord
    from mlflowkit.spec.models import SpecBase

app = typer.Typer(
    name="mlflowkit",
    help="One YAML spec for the whole ML lifecycle.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
models_app = typer.Typer(help="Registered models: versions, aliases, lineage.", no_args_is_help=True)
runs_app = typer.Typer(help="Past runs: status, steps, timings.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(runs_app, name="runs")
app.add_typer(cli_triton.app, name="triton")
app.add_typer(cli_edge.app, name="edge")
app.add_typer(cli_policy.app, name="policy")
app.add_typer(cli_flows.app, name="flows")
app.command("monitor")(cli_monitor.monitor)
app.add_typer(cli_plugins.app, name="plugins")
app.add_typer(cli_plugins.recipes_app, name="recipes")
app.command("init")(cli_init.init)

# Without a terminal (CI logs, pipes) rich assumes 80 columns and truncates tables; logs can be wide.
_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160
out = Console(highlight=False, soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True)

SpecArg = Annotated[Path, typer.Argument(help="The spec file (YAML).", show_default=False)]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override a param: --set params.NAME=VALUE (repeatable).")]
StoreOpt = Annotated[str | None, typer.Option("--store", help="Artifact store / registry root (any fsspec URI).")]


def _fail(exc: MlflowkitError) -> NoReturn:
    err.print(f"[bold red]error[/]: {exc}" if not isinstance(exc, SpecError) else str(exc), markup=not isinstance(exc, SpecError))
    raise typer.Exit(exc.exit_code)


def _load(path: Path, overrides: list[str] | None, *, policy: bool = True) -> SpecBase:
    from mlflowkit.spec.load import load_spec

    if not path.is_file():
        err.print(f"[bold red]error[/]: no spec file at {path}")
        raise typer.Exit(2)
    try:
        return load_spec(path, overrides=overrides or (), policy=policy)
    except SpecError as exc:
        _fail(exc)


@app.command()
def validate(specs: Annotated[list[Path], typer.Argument(help="Spec files to check.")], set_: SetOpt = None) -> None:
    """Check spec files: syntax, types, recipe, kinds, references. Writes nothing."""
    failed = False
    for path in specs:
        try:
            spec = _load(path, set_)
        except typer.Exit:
            failed = True
            continue
        out.print(f"[green]✓[/] {path}: valid ({spec.recipe}, {len(spec.recipe_def.stages) + len(spec.steps)} steps)")
    if failed:
        raise typer.Exit(2)


@app.command()
def plan(
    spec_path: SpecArg,
    set_: SetOpt = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="tree, mermaid or json.")] = "tree",
) -> None:
    """Compile a spec and show its plan: steps, kinds, dependencies, cache keys."""
    from mlflowkit.plan.compile import compile_spec

    compiled = compile_spec(_load(spec_path, set_))
    if fmt == "json":
        out.print(compiled.to_json(), markup=False)
    elif fmt == "mermaid":
        out.print(compiled.to_mermaid(), markup=False)
    elif fmt == "tree":
        out.print(compiled.to_tree(), markup=False)
        out.print()
        out.print("```mermaid", markup=False)
        out.print(compiled.to_mermaid(), markup=False)
        out.print("```", markup=False)
    else:
        err.print(f"[bold red]error[/]: --format must be tree, mermaid or json (got {fmt!r})")
        raise typer.Exit(2)


class _Progress:
    """Prints one line per step event; safe to call from Prefect's worker threads."""

    icons: ClassVar[dict[str, str]] = {
        "ran": "[green]✓[/]",
        "cached": "[cyan]↺[/]",
        "failed": "[red]✗[/]",
        "skipped": "[dim]-[/]",
    }

    def step_started(self, step: PlanStep) -> None:
        out.print(f"  [dim]→ {step.name} ({step.kind})[/]")

    def report(self, report: Report) -> None:
        if report.rows is None:
            out.print(f"  [bold]{report.title}[/]\n{report.markdown}")
            return
        table = Table(title=report.title, title_justify="left")
        columns = list(dict.fromkeys(k for row in report.rows for k in row))
        for col in columns:
            table.add_column(col)
        for row in report.rows:
            table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
        out.print(table)

    def step_finished(self, record: StepRecord) -> None:
        note = f"  [red]{record.error}[/]" if record.error else ""
        out.print(f"  {self.icons.get(record.status, '?')} {record.name:<16} {record.status:<7} {record.seconds:7.2f}s{note}")


def _summary(result: RunResult) -> None:
    table = Table(title=f"run {result.run_id}", title_justify="left")
    for col in ("step", "kind", "status", "seconds", "outputs"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    for rec in result.steps:
        table.add_row(rec.name, rec.kind, rec.status, f"{rec.seconds:.2f}", ", ".join(rec.outputs))
    out.print(table)


def _verdict_table(verdict: dict[str, Any]) -> None:
    table = Table(title="gate verdict: " + ("[green]PASS[/]" if verdict.get("passed") else "[red]FAIL[/]"), title_justify="left")
    for col in ("rule", "value", "threshold", "result", "note"):
        table.add_column(col)

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    for rule in verdict.get("rules", []):
        table.add_row(
            rule["rule"],
            fmt(rule["value"]),
            fmt(rule["threshold"]),
            "[green]pass[/]" if rule["passed"] else "[red]fail[/]",
            rule.get("note") or "",
        )
    out.print(table)


@app.command()
def run(
    spec_path: SpecArg,
    set_: SetOpt = None,
    store: StoreOpt = None,
    from_step: Annotated[str | None, typer.Option("--from", help="Rerun this step and every step after it.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's logs.")] = False,
) -> None:
    """Run a spec as a Prefect flow; unchanged steps are taken from the cache."""
    spec = _load(spec_path, set_)
    from mlflowkit.plan.compile import compile_spec

    compiled: Plan = compile_spec(spec)
    if from_step is not None and from_step not in {s.name for s in compiled.steps}:
        from mlflowkit.plugins import did_you_mean

        hint = did_you_mean(from_step, [s.name for s in compiled.steps])
        err.print(
            f"[bold red]error[/]: --from names no step {from_step!r}{'; ' + hint if hint else ''} "
            f"(steps: {', '.join(s.name for s in compiled.steps)})"
        )
        raise typer.Exit(2)
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from mlflowkit.runtime.engine import run_spec

    out.print(f"[bold]{spec.name}[/]: {len(compiled.steps)} steps (recipe {spec.recipe})")
    try:
        result = run_spec(spec, compiled, store=store, from_step=from_step, progress=_Progress())
    except MlflowkitError as exc:  # the policy changed since loading, the store cannot be opened: nothing ran
        _fail(exc)
    _summary(result)
    if result.verdict and not any(s.name == "gates" and s.status in {"ran", "failed"} for s in result.steps):
        _verdict_table(result.verdict)  # the gates step was cached: its live report was not printed
    where = "Prefect flow run " + str(result.flow_run_id) if result.orchestrated else "all steps cached; no flow run needed"
    if result.ok:
        out.print(f"[green]done[/] in {result.seconds:.2f}s ({where})")
        return
    assert result.exception is not None
    _fail(result.exception)


@app.command()
def schema(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Print the JSON Schema of the spec format (for editors and CI)."""
    from mlflowkit.spec.schema import json_schema

    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if output:
        output.write_text(text)
        err.print(f"wrote {output}")
    else:
        sys.stdout.write(text)


def _store(store: str | None, spec_path: Path | None) -> str:
    if store:
        return store
    if spec_path is not None:
        from mlflowkit.runtime.engine import store_root

        return store_root(_load(spec_path, None, policy=False))  # finding a store is not running the spec
    return os.environ.get("MLFLOWKIT_STORE") or str(Path(".mlflowkit").resolve())


SpecOpt = Annotated[Path | None, typer.Option("--spec", help="Use the store of this spec.")]


def _registry(store: str | None, spec_path: Path | None) -> Any:
    from mlflowkit.store import registry_at

    return registry_at(_store(store, spec_path))


@models_app.command("list")
def models_list(store: StoreOpt = None, spec: SpecOpt = None) -> None:
    """Every registered model, with its newest version and aliases."""
    registry = _registry(store, spec)
    table = Table()
    for col in ("model", "versions", "latest", "aliases"):
        table.add_column(col)
    for name in registry.models():
        versions = registry.versions(name)
        aliases = ", ".join(f"{a} → v{v}" for a, v in sorted(registry.aliases(name).items()))
        table.add_row(name, str(len(versions)), f"v{versions[-1].version}" if versions else "-", aliases)
    out.print(table)


@models_app.command("show")
def models_show(
    model: str,
    version: Annotated[str, typer.Argument(help="Version number or alias.")] = "champion",
    store: StoreOpt = None,
    spec: SpecOpt = None,
) -> None:
    """One model version: lineage, metrics, aliases, files."""
    registry = _registry(store, spec)
    try:
        mv = registry.get(model, version)
    except MlflowkitError as exc:
        _fail(exc)
    out.print(f"[bold]{mv.model} v{mv.version}[/]  created {mv.created_at}  aliases: {', '.join(mv.aliases) or '-'}")
    out.print(f"files: {', '.join(mv.files)}")
    out.print_json(json.dumps(mv.lineage, default=str))
    history = [e for e in registry.history(model) if mv.version in (e.version, e.previous)]
    for event in history:
        out.print(
            f"  {event.at}  {event.alias}: v{event.previous or '-'} → v{event.version or '-'}  by {event.actor}: {event.reason}"
        )


ReasonOpt = Annotated[str, typer.Option("--reason", "-r", help="Why; recorded in the audit log with who and when.")]


@models_app.command("promote")
def models_promote(
    model: str,
    version: Annotated[int, typer.Argument(help="The version to make champion.")],
    reason: ReasonOpt,
    force: Annotated[bool, typer.Option(help="Promote even a version that failed its gates.")] = False,
    store: StoreOpt = None,
    spec: SpecOpt = None,
) -> None:
    """Make a version the champion; the old champion becomes `previous`.

    With --spec, the version is first deployed to the spec's `deploy:` targets (all or nothing), so that
    a version the policy held as challenger reaches them once it is approved.
    """
    from mlflowkit.policy import authorize, current_actor
    from mlflowkit.store.promotion import promote

    policy = cli_policy.governing_policy(spec)
    registry = _registry(store, spec)
    actor = current_actor()
    section = _load(spec, None).section("deploy") if spec is not None else None
    targets = list(getattr(section, "targets", None) or ())
    try:
        authorize(policy, "promote", actor, model)
        required = policy is not None and policy.promotion.require_approval
        if targets:
            from mlflowkit import release

            report = release.promote(
                registry, model, version, targets=targets, reason=reason, actor=actor, force=force,
                require_approval=required, log=lambda line: out.print(f"[dim]{line}[/]"),
            )  # fmt: skip
            for entry in report.targets:
                out.print(f"  {entry['target']} at {entry['destination']}: {entry['status']}")
            if not report.ok:
                err.print(f"[bold red]error[/]: {report.note}")
                raise typer.Exit(1)
        else:
            promote(registry, model, version, reason=reason, force=force, actor=actor, require_approval=required)
    except MlflowkitError as exc:
        _fail(exc)
    promoted = registry.get(model, version)
    out.print(f"[green]✓[/] {model} v{promoted.version} is champion ({', '.join(promoted.aliases)})")


@models_app.command("rollback")
def models_rollback(
    model: str,
    reason: ReasonOpt,
    to: Annotated[int | None, typer.Option("--to", help="Roll back to this version instead of `previous`.")] = None,
    store: StoreOpt = None,
    spec: SpecOpt = None,
) -> None:
    """Return `champion` to the version it replaced (or --to VERSION), and redeploy it to every target of the release.

    The targets are those of the champion's release record (Triton, edge channels, ...). All or nothing:
    if a target fails, the ones already moved get the champion back and `champion` does not move (exit 1).
    """
    from mlflowkit.policy import authorize, current_actor
    from mlflowkit.release import rollback

    policy = cli_policy.governing_policy(spec)
    registry = _registry(store, spec)
    actor = current_actor()
    try:
        authorize(policy, "rollback", actor, model)
        report = rollback(registry, model, reason=reason, to=to, actor=actor, log=lambda line: out.print(f"  [dim]{line}[/]"))
    except MlflowkitError as exc:
        _fail(exc)
    for entry in report.targets:
        mark = "[green]✓[/]" if entry["status"] == f"v{report.to_version} serving" else "[red]✗[/]"
        detail = f": {entry['error']}" if "error" in entry else ""
        out.print(f"{mark} {entry['target']} at {entry['destination']}: {entry['status']}{detail}")
    if report.note:
        out.print(f"{'[red]error[/]' if not report.ok else '[dim]note[/]'}: {report.note}")
    if not report.ok:
        raise typer.Exit(1)
    out.print(f"[green]✓[/] {model} v{report.to_version} is champion again")


models_app.command("approve")(cli_policy.models_approve)
models_app.command("audit")(cli_policy.models_audit)


@models_app.command("history")
def models_history(model: str, store: StoreOpt = None, spec: SpecOpt = None) -> None:
    """Every alias move of a model: when, which alias, from and to which version, who, why."""
    registry = _registry(store, spec)
    try:
        events = registry.history(model)
        approvals, problems = registry.approvals(model), registry.verify_audit(model)
    except MlflowkitError as exc:
        _fail(exc)
    table = Table()
    for col in ("when", "alias", "from", "to", "who", "why"):
        table.add_column(col)
    rows = [
        (e.at, e.alias, f"v{e.previous}" if e.previous else "-", f"v{e.version}" if e.version else "-", e.actor, e.reason)
        for e in events
    ]
    rows += [(a.at, "(approval)", "-", f"v{a.version}", a.actor, a.reason) for a in approvals]
    for row in sorted(rows, key=lambda r: r[0]):
        table.add_row(*row)
    out.print(table)
    for problem in problems:  # the log was edited by hand: say so wherever it is read
        err.print(f"[bold red]audit log tampered[/]: {problem} (see `mlflowkit models audit {model}`)")


def _runs(store: str | None, spec_path: Path | None) -> tuple[Any, list[dict[str, Any]]]:
    from mlflowkit.store import ArtifactStore

    st = ArtifactStore(_store(store, spec_path))
    records = [st.read_json(k) for k in st.list_keys("runs") if k.endswith(".json")]
    return st, sorted(records, key=lambda r: r["started_at"])


def _history(records: list[dict[str, Any]], store: str | None, spec_path: Path | None) -> Any:
    from mlflowkit.flows.history import history

    try:
        registry = _registry(store, spec_path)
    except Exception:  # no registry yet: the runs still show
        registry = None
    return history(records, registry)


@runs_app.command("list")
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


@runs_app.command("show")
def runs_show(run_id: str, store: StoreOpt = None, spec: SpecOpt = None) -> None:
    """One run: its steps with timings and outputs, its verdict, its error, and Prefect's view of it."""
    from mlflowkit.flows.history import trigger

    st, records = _runs(store, spec)
    match = [r for r in records if r["run_id"].startswith(run_id)]
    if len(match) != 1:
        err.print(f"[bold red]error[/]: {'no run' if not match else 'several runs'} matching {run_id!r}")
        raise typer.Exit(1)
    found = _history(match, store, spec)
    r = found.records[0]
    out.print(f"[bold]{r['run_id']}[/] {r['spec_name']} ({r['spec_path']}): [bold]{r['status']}[/] in {r.get('seconds', 0):.2f}s")
    git, flow_run = r.get("git_commit") or "-", r.get("flow_run_id") or "-"
    out.print(f"spec {r['spec_hash'][:12]}  params {json.dumps(r['params'])}  git {git}  flow run {flow_run}")
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
    for s in r["steps"]:
        table.add_row(s["name"], s["kind"], s["status"], f"{s['seconds']:.2f}", ", ".join(s["outputs"]))
    out.print(table)
    if r.get("verdict"):
        _verdict_table(r["verdict"])
    if r.get("report"):
        out.print(f"report: {st.root}/{r['report']} (mlflowkit report {r['run_id']} --open)", markup=False)
    if r.get("error"):
        out.print(f"[red]error[/]: {r['error']}", markup=True)
    if found.note:
        out.print(f"[dim]note: {found.note}[/]")


@app.command()
def report(
    run_id: Annotated[str, typer.Argument(help="The run (or a unique prefix of its id).")],
    output: Annotated[Path | None, typer.Option("--out", "-o", help="Write the HTML here instead of into the store.")] = None,
    open_: Annotated[bool, typer.Option("--open", help="Open it in the web browser.")] = False,
    store: StoreOpt = None,
    spec: SpecOpt = None,
) -> None:
    """Write a run's HTML report (lineage, data checks, metrics and plots, gates, deployments, model card)."""
    from mlflowkit.report import collect, render, write_report
    from mlflowkit.store import registry_at

    st, records = _runs(store, spec)
    match = [r for r in records if r["run_id"].startswith(run_id)]
    if len(match) != 1:
        err.print(f"[bold red]error[/]: {'no run' if not match else 'several runs'} matching {run_id!r}")
        raise typer.Exit(1)
    rid = match[0]["run_id"]
    registry = registry_at(_store(store, spec))
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


def main() -> None:
    """Entry point of the ``mlflowkit`` script."""
    app()
