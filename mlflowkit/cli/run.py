"""``mlflowkit validate|plan|run|schema``: check a spec, show its plan, run it, print the spec format.

Heavy modules load only in the commands that need them, so ``validate`` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.markup import escape
from rich.table import Table

from mlflowkit.cli.common import SetOpt, SpecArg, StoreOpt, err, fail, load_spec_file, out, verdict_table
from mlflowkit.errors import MlflowkitError

if TYPE_CHECKING:
    from mlflowkit.cli.progress import RunDisplay
    from mlflowkit.handoff import RunResult
    from mlflowkit.plan.model import Plan

__all__ = ["plan", "run", "schema", "validate"]


def validate(
    specs: Annotated[list[Path], typer.Argument(help="Spec files to check.")],
    set_: SetOpt = None,
    no_data_check: Annotated[
        bool,
        typer.Option(
            "--no-data-check",
            help="Do not open the data source (e.g. remote data without credentials here): skip its existence and header checks.",
        ),
    ] = False,
) -> None:
    """Check spec files: syntax, types, recipe, kinds, estimator arguments, references, the data's header. Writes nothing."""
    failed = False
    for path in specs:
        try:
            spec = load_spec_file(path, set_, read_data=not no_data_check)
        except typer.Exit:
            failed = True
            continue
        out.print(f"[green]✓[/] {path}: valid ({spec.recipe}, {len(spec.recipe_def.stages) + len(spec.steps)} steps)")
    if failed:
        raise typer.Exit(2)


def plan(
    spec_path: SpecArg,
    set_: SetOpt = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="tree, mermaid or json.")] = "tree",
) -> None:
    """Compile a spec and show its plan: steps, kinds, dependencies, cache keys."""
    from mlflowkit.plan.compile import compile_spec

    compiled = compile_spec(load_spec_file(spec_path, set_))
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


def _summary(result: RunResult) -> None:
    table = Table(title=f"run {result.run_id}", title_justify="left")
    for col in ("step", "kind", "status", "seconds", "outputs"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    for rec in result.steps:
        table.add_row(rec.name, rec.kind, rec.status, f"{rec.seconds:.2f}", ", ".join(rec.outputs))
    out.print(table)


def _raised_at(exc: BaseException | None) -> str | None:
    """``file:line in function`` of the innermost frame of the project's own code that raised (a user's step)."""
    import site
    import traceback

    cause = exc.__cause__ if exc is not None else None
    if cause is None or cause.__traceback__ is None:
        return None
    skip = (os.path.dirname(os.__file__), os.path.dirname(typer.__file__).rsplit(os.sep, 1)[0], *site.getsitepackages())
    skip += (str(Path(__file__).resolve().parents[1]),)  # mlflowkit itself
    frames = [f for f in traceback.extract_tb(cause.__traceback__) if not f.filename.startswith(skip)]
    if not frames:
        return None
    frame = frames[-1]
    where = os.path.relpath(frame.filename) if not os.path.relpath(frame.filename).startswith("..") else frame.filename
    return f"{where}:{frame.lineno} in {frame.name}"


def _hint(result: RunResult, spec_path: Path) -> str:
    """What to do about a failed run: where a user's code raised, or what to change; rerunning reuses the cache."""
    from mlflowkit.errors import GateFailed, StepFailed

    exc = result.exception
    again = f"`mlflowkit run {spec_path}` again reruns only what changed"
    if isinstance(exc, GateFailed):
        return f"the candidate was not registered; improve the model or revise the rule under gates: in {spec_path}, then {again}"
    raised = _raised_at(exc)
    if raised is not None:
        return f"raised at {raised} (-v shows the traceback); fix it, then {again}"
    if isinstance(exc, StepFailed) and result.report_path:
        return f"the report shows what step {exc.step!r} saw; after a fix, {again}"
    return f"after a fix, {again}"


def _end(result: RunResult, spec_path: Path, took: float) -> None:
    """The run's end: what it registered (or why nothing), its verdict, the report, the time; a failure's cause once."""
    from mlflowkit.errors import GateFailed
    from mlflowkit.run_summary import outcome

    said = outcome(result)
    where = f"Prefect flow run {result.flow_run_id}" if result.orchestrated else "all steps cached; no flow run needed"
    rows = [("registered", said.registered)]
    if said.verdict is not None:
        rows.append(("verdict", said.verdict))
    rows.append(("report", result.report_path or "-"))
    for name, value in rows:
        color = "red" if value.startswith(("failed", "nothing")) and not result.ok else ""
        shown = escape(value)
        out.print(f"[bold]{name:<11}[/]{f'[{color}]{shown}[/]' if color else shown}")
    if result.ok:
        out.print(f"[green]done[/] in {took:.2f}s ({where})")
        return
    # The cause, once: a failed gate is the verdict line above; anything else is the step's message.
    if not isinstance(result.exception, GateFailed):
        err.print(f"[bold red]error[/]: {escape(result.error or 'the run failed')}")
    step = f" at step {said.failed_step}" if said.failed_step else ""
    err.print(f"[bold]hint[/]: {escape(_hint(result, spec_path))}")
    err.print(f"[red]failed[/]{step} in {took:.2f}s ({where})")


def _open_report(result: RunResult) -> None:
    """Open the report in the user's browser (``$BROWSER`` or the system's), or say why not."""
    import webbrowser

    path = result.report_path
    if not path or "://" in path:
        why = "the run has no report" if not path else f"{escape(path)} is not a local file"
        err.print(f"[yellow]warning[/]: report not opened: {why}")
        return
    if not webbrowser.open(Path(path).as_uri()):
        err.print(f"[yellow]warning[/]: no browser to open {escape(path)} (set $BROWSER)")


def _server_gone(display: RunDisplay, exc: MlflowkitError) -> NoReturn:
    """The local Prefect server died mid-run (the record says so already): say it in one line and end now.

    Prefect's client would retry every request for about a minute; the steps still running are cut off.
    A version being registered then is committed whole or not at all (the registry commits in one atomic step).
    """
    display.close()
    err.print(f"[bold red]error[/]: {escape(str(exc))}")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exc.exit_code)  # from the watching thread, past Prefect's threads and their retries


def run(
    spec_path: SpecArg,
    set_: SetOpt = None,
    store: StoreOpt = None,
    from_step: Annotated[str | None, typer.Option("--from", help="Rerun this step and every step after it.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's logs.")] = False,
    open_report: Annotated[bool, typer.Option("--open", help="Open the run's HTML report in a browser when it ends.")] = False,
) -> None:
    """Run a spec as a Prefect flow; unchanged steps are taken from the cache."""
    from mlflowkit.cli.progress import RunDisplay

    with RunDisplay(out) as display:  # spinners in a terminal, plain lines in a log; stopped before the summary
        display.starting(f"loading {spec_path}")
        spec = load_spec_file(spec_path, set_)
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
            result = run_spec(
                spec,
                compiled,
                store=store,
                from_step=from_step,
                progress=display,
                report="inline" if open_report else "background",  # a report to open must be written first
                verbose=verbose,
                on_server_gone=lambda exc: _server_gone(display, exc),
            )
        except MlflowkitError as exc:  # the policy changed since loading, the store cannot be opened: nothing ran
            display.close()
            fail(exc)
    from mlflowkit.handoff import VERDICT, find_output

    _summary(result)
    if result.verdict and any(s.status == "cached" and find_output(s.outputs, VERDICT) for s in result.steps):
        verdict_table(result.verdict)  # the step that decided was cached: its live report was not printed
    if result.tracking is not None and result.tracking.url:
        out.print(f"MLflow: {result.tracking.url}", markup=False)
    elif result.tracking is not None:
        err.print(f"[yellow]warning[/]: not logged to MLflow yet ({escape(result.tracking.note)}); queued for the next run")
    from mlflowkit.runtime.record import process_seconds

    took = process_seconds() or result.seconds  # what the user waited: start-up and loading the spec included
    _end(result, spec_path, took)
    if open_report:
        _open_report(result)
    if not result.ok:
        raise typer.Exit(result.exception.exit_code if result.exception is not None else 1)


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
