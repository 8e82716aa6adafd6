"""The ``mlflowkit`` command line: the app, assembled from one module per command group.

Exit codes: 0 success, 1 a run or command failed, 2 the spec (or the command line) is invalid.
Heavy modules load only in the commands that need them, so ``validate`` and ``edge`` stay fast and light.
"""

from __future__ import annotations

import typer

from mlflowkit.cli import edge, flows, init, models, monitor, plugins, policy, run, runs, triton

__all__ = ["app", "main"]

app = typer.Typer(
    name="mlflowkit",
    help="One YAML spec for the whole ML lifecycle.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(models.app, name="models")
app.add_typer(runs.app, name="runs")
app.add_typer(triton.app, name="triton")
app.add_typer(edge.app, name="edge")
app.add_typer(policy.app, name="policy")
app.add_typer(flows.app, name="flows")
app.command("monitor")(monitor.monitor)
app.add_typer(plugins.app, name="plugins")
app.add_typer(plugins.recipes_app, name="recipes")
app.command("init")(init.init)
app.command("validate")(run.validate)
app.command("plan")(run.plan)
app.command("run")(run.run)
app.command("schema")(run.schema)
app.command("report")(runs.report)


def main() -> None:
    """Entry point of the ``mlflowkit`` script."""
    app()
