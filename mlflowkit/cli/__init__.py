"""The ``mlflowkit`` command line: the app, assembled from one module per command group.

Exit codes: 0 success, 1 a run or command failed, 2 the spec (or the command line) is invalid.
Heavy modules load only in the commands that need them, so ``validate`` and ``edge`` stay fast and light.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Annotated, NoReturn

import typer

from mlflowkit.cli import edge, flows, init, models, monitor, plugins, policy, run, runs, server, store, tracking, triton
from mlflowkit.cli.help import EDGE, EVERYDAY, MODELS, OPERATIONS, HelpGroup

__all__ = ["app", "main"]

app = typer.Typer(
    name="mlflowkit",
    help="One YAML spec for the whole ML lifecycle: data checks, training, gates, registry, deployment.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    cls=HelpGroup,
)

# Panels, in the order of the help: what a data scientist does every day, the registered models, what
# MLOps and operations run (schedules, drift, policy, a Triton for development, plug-ins), and devices.
app.command("init", rich_help_panel=EVERYDAY)(init.init)
app.command("validate", rich_help_panel=EVERYDAY)(run.validate)
app.command("plan", rich_help_panel=EVERYDAY)(run.plan)
app.command("run", rich_help_panel=EVERYDAY)(run.run)
app.add_typer(runs.app, name="runs", rich_help_panel=EVERYDAY)
app.command("report", rich_help_panel=EVERYDAY)(runs.report)
app.add_typer(plugins.recipes_app, name="recipes", rich_help_panel=EVERYDAY)
app.command("schema", rich_help_panel=EVERYDAY)(run.schema)
app.add_typer(models.app, name="models", rich_help_panel=MODELS)
app.add_typer(flows.app, name="flows", rich_help_panel=OPERATIONS)
app.command("monitor", rich_help_panel=OPERATIONS)(monitor.monitor)
app.add_typer(policy.app, name="policy", rich_help_panel=OPERATIONS)
app.add_typer(store.app, name="store", rich_help_panel=OPERATIONS)
app.add_typer(tracking.app, name="tracking", rich_help_panel=OPERATIONS)
app.add_typer(server.app, name="server", rich_help_panel=OPERATIONS)
app.add_typer(triton.app, name="triton", rich_help_panel=OPERATIONS)
app.add_typer(plugins.app, name="plugins", rich_help_panel=OPERATIONS)
app.add_typer(edge.app, name="edge", rich_help_panel=EDGE)


def _print_version(value: bool) -> None:
    if value:
        from mlflowkit._version import __version__

        typer.echo(f"mlflowkit {__version__}")
        raise typer.Exit


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", "-V", help="Print the version and exit.", callback=_print_version, is_eager=True)
    ] = False,
) -> None:
    """One YAML spec for the whole ML lifecycle: data checks, training, gates, registry, deployment."""


def main() -> None:
    """Entry point of the ``mlflowkit`` script.

    After a command that loaded the heavy libraries, exits without tearing the interpreter down:
    Python's final garbage collection over the heaps of pandas, scikit-learn, Great Expectations and
    Prefect takes seconds of CPU and frees nothing the operating system would not. Exit handlers
    still run and the output is flushed first.
    """
    try:
        app()
    except SystemExit as exc:
        if not _HEAVY.isdisjoint(sys.modules):
            _exit_now(exc.code)
        raise


_HEAVY = frozenset({"mlflowkit.runtime", "pandas", "prefect", "sklearn", "great_expectations", "ray", "torch"})


def _exit_now(code: object) -> NoReturn:
    import atexit

    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()  # Prefect's event flush, logging, temporary files
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code or 0)
