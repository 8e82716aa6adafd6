"""``mlflowkit server start|status|stop``: the local Prefect server that runs use when no server is configured.

The logic lives in :mod:`mlflowkit.runtime.localapi`; runs start the server themselves when they need it.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from mlflowkit.cli.common import err, fail, out
from mlflowkit.cli.help import HelpGroup
from mlflowkit.errors import MlflowkitError

__all__ = ["app"]

app = typer.Typer(
    help="The local Prefect server runs use when PREFECT_API_URL names none (one per user, stopped when idle).",
    no_args_is_help=True,
    cls=HelpGroup,
)


def _describe(info: object) -> None:
    from mlflowkit.runtime.localapi import ServerInfo
    from mlflowkit.runtime.locations import mlflowkit_home

    assert isinstance(info, ServerInfo)
    up = time.time() - info.started_at
    out.print(f"local Prefect server: running (pid {info.pid}, up {up:.0f}s)", markup=False)
    out.print(f"  api:      {info.url}", markup=False)
    out.print(f"  ui:       {info.ui_url or 'off (mlflowkit server start --ui)'}", markup=False)
    out.print(f"  versions: mlflowkit {info.mlflowkit}, prefect {info.prefect}", markup=False)
    out.print(f"  stops after {info.idle_seconds:.0f}s without a request", markup=False)
    out.print(f"  state:    {mlflowkit_home()}", markup=False)


@app.command()
def start(
    ui: Annotated[bool, typer.Option("--ui", help="Serve the Prefect UI and run its scheduler.")] = False,
) -> None:
    """Start the local server (runs start it when they need it; this starts it ahead, or with the UI)."""
    from mlflowkit.runtime.localapi import ensure_server

    try:
        info = ensure_server(ui=ui)
    except MlflowkitError as exc:
        fail(exc)
    _describe(info)


@app.command()
def status() -> None:
    """Whether the local server runs: pid, API and UI addresses, versions. Exit 1 when it does not."""
    from mlflowkit.runtime.localapi import running_server
    from mlflowkit.runtime.locations import configured_api_url, mlflowkit_home

    configured = configured_api_url()
    if configured:
        out.print(f"runs use the configured Prefect server {configured} (PREFECT_API_URL or profile)", markup=False)
    info = running_server()
    if info is None:
        out.print(f"local Prefect server: not running (state in {mlflowkit_home()})", markup=False)
        raise typer.Exit(1)
    _describe(info)


@app.command()
def stop() -> None:
    """Stop the local server (its database and flow-run history stay for the next start)."""
    from mlflowkit.runtime.localapi import stop_server

    info = stop_server()
    if info is None:
        err.print("local Prefect server: not running")
        return
    out.print(f"stopped the local Prefect server (pid {info.pid}, port {info.port})", markup=False)
