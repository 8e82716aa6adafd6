"""``mlflowkit tracking sync|status|server``: the MLflow outbox of a store, and a local ``mlflow server`` for development.

The logic lives in :mod:`mlflowkit.tracking` (MLflow's client is imported only when something is sent).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from mlflowkit.cli.common import SpecOpt, StoreOpt, err, fail, open_registry, out, store_uri
from mlflowkit.cli.help import HelpGroup
from mlflowkit.errors import MlflowkitError

if TYPE_CHECKING:
    from mlflowkit.store import ModelRegistry

__all__ = ["app", "mirror_alias_move"]

app = typer.Typer(
    help="MLflow tracking: send what the store still owes MLflow; a local MLflow server.", no_args_is_help=True, cls=HelpGroup
)
server_app = typer.Typer(
    help="A local `mlflow server` (SQLite, its UI) in a virtualenv of its own, for development.",
    no_args_is_help=True,
    cls=HelpGroup,
)
app.add_typer(server_app, name="server")

DirOpt = Annotated[Path, typer.Option("--dir", help="Server state: SQLite database, artifacts, log, pid.")]
DEFAULT_DIR = Path(".mlflowkit") / "mlflow"


def mirror_alias_move(store: str | None, spec: Path | None, registry: ModelRegistry, model: str) -> None:
    """After a promotion or rollback: tell MLflow, when a run logged ``model`` there (a warning when it cannot be told)."""
    from mlflowkit.store import ArtifactStore
    from mlflowkit.tracking.sync import after_alias_move

    note = after_alias_move(ArtifactStore(store_uri(store, spec)), registry, model)
    if note:
        err.print(f"[yellow]warning[/]: {note}", markup=True)


@app.command("status")
def status(store: StoreOpt = None, spec: SpecOpt = None) -> None:
    """What the store still owes MLflow: queued runs and alias moves, with attempts and the last error."""
    from mlflowkit.store import ArtifactStore
    from mlflowkit.tracking.outbox import pending

    items = pending(ArtifactStore(store_uri(store, spec)))
    if not items:
        out.print("nothing queued: MLflow has every run and alias move")
        return
    table = Table()
    for col in ("what", "model", "server", "queued", "attempts", "last error"):
        table.add_column(col)
    for item in items:
        what = f"run {item.run_id}" if item.kind == "run" else "aliases"
        table.add_row(what, item.model, item.target.uri, item.queued_at[:19], str(item.attempts), item.last_error)
    out.print(table)


@app.command("sync")
def sync(store: StoreOpt = None, spec: SpecOpt = None) -> None:
    """Send the queued runs and alias moves now (exit 1 when some could not be sent: they stay queued)."""
    from mlflowkit.store import ArtifactStore
    from mlflowkit.tracking.sync import flush

    registry = open_registry(store, spec)
    done = flush(ArtifactStore(store_uri(store, spec)), registry)
    for run_id, (_, url) in done.logged.items():
        out.print(f"[green]✓[/] run {run_id}: {url}", markup=True)
    aliases = sum(1 for item in done.sent if item.kind == "aliases")
    if aliases:
        out.print(f"[green]✓[/] aliases of {aliases} model(s) in step")
    for uri, problem in done.errors.items():
        err.print(f"[bold red]error[/]: {uri}: {problem}", markup=False)
    if done.left:
        err.print(f"{len(done.left)} item(s) still queued (mlflowkit tracking status)")
        raise typer.Exit(1)
    if not done.sent:
        out.print("nothing queued")


@server_app.command("up")
def server_up(
    dir_: DirOpt = DEFAULT_DIR,
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1.")] = 5000,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for it to answer.")] = 120.0,
) -> None:
    """Start a local MLflow server (the first time, build its virtualenv: a few minutes)."""
    from mlflowkit.tracking import local_server

    try:
        server = local_server.up(dir_, port=port, timeout=timeout)
    except MlflowkitError as exc:
        fail(exc)
    out.print(f"[green]✓[/] MLflow at {server.url} (pid {server.pid}); log {server.log}", markup=True)
    out.print(
        f"  log runs to it: tracking: {{uri: {server.url}}} in a spec, or MLFLOWKIT_TRACKING_URI={server.url}", markup=False
    )


@server_app.command("down")
def server_down(dir_: DirOpt = DEFAULT_DIR) -> None:
    """Stop the local MLflow server."""
    from mlflowkit.tracking import local_server

    out.print("stopped" if local_server.down(dir_) else f"no MLflow server running from {dir_}")
