"""``mlflowkit triton up|down|status``: a real Triton Inference Server on this machine, for development and tests.

The logic lives in :mod:`mlflowkit.targets.triton_local`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlflowkit.cli.common import err, out
from mlflowkit.cli.help import HelpGroup

__all__ = ["app"]

app = typer.Typer(
    help="A local Triton Inference Server (CPU, from the nvidia-pytriton wheel) for development.",
    no_args_is_help=True,
    cls=HelpGroup,
)

DirOpt = Annotated[Path, typer.Option("--dir", help="Server state: model repository, backends, log, pid.")]
DEFAULT_DIR = Path(".mlflowkit") / "triton"


@app.command()
def up(
    dir_: DirOpt = DEFAULT_DIR,
    http_port: Annotated[int, typer.Option("--http-port", help="HTTP/REST port on 127.0.0.1.")] = 8000,
    grpc_port: Annotated[int, typer.Option("--grpc-port", help="gRPC port on 127.0.0.1.")] = 8001,
    venv: Annotated[
        Path | None, typer.Option("--venv", help="The server's virtualenv (default: $MLFLOWKIT_TRITON_VENV).")
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for readiness.")] = 180.0,
    trusted_key: Annotated[
        Path | None,
        typer.Option("--trusted-key", help="An ed25519 public key (PEM): load only versions whose manifest it signed."),
    ] = None,
) -> None:
    """Start Triton (explicit model control) on DIR/models; build its virtualenv first if needed."""
    from mlflowkit.targets import triton_local

    try:
        server = triton_local.up(
            dir_, http_port=http_port, grpc_port=grpc_port, venv=venv, timeout=timeout, trusted_key=trusted_key
        )
    except triton_local.TritonLocalError as exc:
        err.print(f"[bold red]error[/]: {exc}", markup=True)
        raise typer.Exit(1) from None
    out.print(f"Triton is ready (pid {server.pid})")
    out.print(f"  http:             {server.http_url}")
    out.print(f"  grpc:             {server.grpc_url}")
    out.print(f"  model repository: {server.model_repository}")
    out.print(f"  log:              {server.log}")
    if server.trusted_key:
        out.print(f"  trusted key:      {server.trusted_key} (unsigned or tampered versions do not load)")


@app.command()
def down(dir_: DirOpt = DEFAULT_DIR) -> None:
    """Stop the server started from DIR."""
    from mlflowkit.targets import triton_local

    out.print("stopped" if triton_local.down(dir_) else f"no server running from {dir_}")


@app.command()
def status(dir_: DirOpt = DEFAULT_DIR) -> None:
    """Show the server started from DIR, if it runs; exit 1 if it does not."""
    from mlflowkit.targets import triton_local

    server = triton_local.status(dir_)
    if server is None:
        out.print(f"no server running from {dir_}")
        raise typer.Exit(1)
    out.print(f"running (pid {server.pid}): http {server.http_url}, grpc {server.grpc_url}, models {server.model_repository}")
