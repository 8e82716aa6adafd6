"""``mlflowkit edge keygen|pull|rollback|status|predict|serve|verify``: the edge runner on a device.

It needs only the ``edge`` extra (ONNX Runtime, numpy, cryptography); the logic lives in :mod:`mlflowkit.edge`,
imported inside each command. It prints JSON (for the device's scripts), so it shares nothing with the other
command modules and imports nothing of mlflowkit beyond :mod:`mlflowkit.edge` (an import contract holds it).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from mlflowkit.cli.help import HelpGroup

__all__ = ["app"]

app = typer.Typer(
    help="Edge devices: signing keys, pulling signed ONNX Runtime bundles, predicting and serving.",
    no_args_is_help=True,
    cls=HelpGroup,
)

DEFAULT_DIR = Path(os.environ.get("MLFLOWKIT_EDGE_DIR") or "/var/lib/mlflowkit-edge")
DirOpt = Annotated[Path, typer.Option("--dir", help="The device's bundle folder (default: $MLFLOWKIT_EDGE_DIR).")]
KeyOpt = Annotated[
    str | None, typer.Option("--public-key", help="The trusted public key (PEM file; default: $MLFLOWKIT_EDGE_PUBLIC_KEY).")
]


def _print(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def _fail(exc: Exception, code: int = 1) -> NoReturn:
    from mlflowkit.edge.errors import BundleRefused

    body: dict[str, Any] = {"error": str(exc)}
    if isinstance(exc, BundleRefused):
        body["reason"] = exc.reason
    issues = getattr(exc, "issues", None)
    if issues:
        body["details"] = issues
    sys.stderr.write(json.dumps(body, default=str) + "\n")
    raise typer.Exit(code)


def _log(message: str) -> None:
    sys.stderr.write(message + "\n")


@app.command()
def keygen(
    out: Annotated[Path, typer.Option("--out", help="The private key file; the public key goes beside it as .pub.")] = Path(
        "edge-signing.pem"
    ),
    force: Annotated[bool, typer.Option(help="Replace existing key files.")] = False,
) -> None:
    """Make an ed25519 keypair: OUT (private, mode 0600, for the publisher) and OUT.pub (for devices)."""
    from mlflowkit.edge.errors import EdgeError
    from mlflowkit.edge.signing import generate_keypair

    public = out.with_name(out.name + ".pub")
    try:
        kid = generate_keypair(out, public, overwrite=force)
    except EdgeError as exc:
        _fail(exc)
    _print({"private_key": str(out), "public_key": str(public), "key_id": kid})


@app.command()
def pull(
    source: Annotated[str, typer.Option("--source", help="Where the model's bundles are published (any fsspec URI).")],
    dir_: DirOpt = DEFAULT_DIR,
    channel: Annotated[str, typer.Option("--channel", help="The channel to follow.")] = "stable",
    public_key: KeyOpt = None,
    keep: Annotated[int, typer.Option("--keep", help="Bundles kept on the device (current and previous included).")] = 2,
) -> None:
    """Install the channel's current bundle: download, verify everything, then switch over atomically."""
    from mlflowkit.edge.device import Device
    from mlflowkit.edge.errors import EdgeError
    from mlflowkit.edge.signing import load_public_key

    try:
        result = Device(dir_).pull(source, channel=channel, public_key=load_public_key(public_key), keep=keep, log=_log)
    except EdgeError as exc:
        _fail(exc)
    _print(result)


@app.command()
def rollback(dir_: DirOpt = DEFAULT_DIR, public_key: KeyOpt = None) -> None:
    """Make the previous bundle current again (verified again first)."""
    from mlflowkit.edge.device import Device
    from mlflowkit.edge.errors import EdgeError
    from mlflowkit.edge.signing import PUBLIC_KEY_ENV, load_public_key

    try:
        key = load_public_key(public_key) if (public_key or os.environ.get(PUBLIC_KEY_ENV)) else None
        result = Device(dir_).rollback(public_key=key, log=_log)
    except EdgeError as exc:
        _fail(exc)
    _print(result)


@app.command()
def status(dir_: DirOpt = DEFAULT_DIR) -> None:
    """The current and previous bundles."""
    from mlflowkit.edge.device import Device

    _print(Device(dir_).status())


@app.command()
def verify(
    bundle: Annotated[Path, typer.Argument(help="A bundle folder.")],
    public_key: KeyOpt = None,
) -> None:
    """Verify a bundle folder: signature, every file, requirements against this device's ONNX Runtime."""
    from mlflowkit.edge.bundle import check_requirements
    from mlflowkit.edge.errors import EdgeError
    from mlflowkit.edge.runner import verify_installed
    from mlflowkit.edge.signing import load_public_key

    try:
        manifest = verify_installed(bundle, load_public_key(public_key))
        check_requirements(manifest)
    except EdgeError as exc:
        _fail(exc)
    _print({"ok": True, "name": manifest["name"], "version": manifest["version"], "signed_by": manifest["signed_by"]})


@app.command()
def predict(
    dir_: DirOpt = DEFAULT_DIR,
    json_: Annotated[
        str | None, typer.Option("--json", help='Inputs as JSON: {"col": v, ...}, [{...}, ...] or {"inputs": {"col": [...]}}.')
    ] = None,
    csv_: Annotated[Path | None, typer.Option("--csv", help="Inputs as a CSV file with a header row.")] = None,
) -> None:
    """Predict with the current bundle; prints labels, probabilities, model and version as JSON."""
    from mlflowkit.edge.device import Device
    from mlflowkit.edge.errors import EdgeError
    from mlflowkit.edge.runner import Runner

    if (json_ is None) == (csv_ is None):
        _fail(ValueError("give exactly one of --json and --csv"), 2)
    folder = Device(dir_).current()
    if folder is None:
        _fail(EdgeError(f"no bundle installed in {dir_}; run `mlflowkit edge pull` first"))
    try:
        runner = Runner(folder)
        payload = json.loads(json_) if json_ is not None else _read_csv(csv_, runner)  # type: ignore[arg-type]
        result = runner.predict(payload)
    except (EdgeError, ValueError, OSError) as exc:
        _fail(exc)
    _print(result)


def _read_csv(path: Path, runner: Any) -> dict[str, Any]:
    """A CSV as columns, typed by the contract: numbers parsed, empty cells missing (stdlib csv; no pandas)."""
    import csv

    dtypes = {t.get("column") or t["name"]: t["dtype"] for t in runner.contract["inputs"]}
    dtypes.update({f: runner.contract["inputs"][0]["dtype"] for f in runner.contract.get("features", []) if f not in dtypes})
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    columns: dict[str, list[Any]] = {}
    for name in rows[0] if rows else []:
        dtype = dtypes.get(name, "string")
        values: list[Any] = []
        for row in rows:
            cell = row[name]
            if cell == "" or cell is None:
                values.append(None)
            elif dtype == "string":
                values.append(cell)
            else:
                try:
                    values.append(int(cell) if dtype.startswith("int") else float(cell))
                except ValueError:
                    values.append(cell)  # the runner names the field and the value
        columns[name] = values
    return {"inputs": columns}


@app.command()
def serve(
    dir_: DirOpt = DEFAULT_DIR,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8080,
    max_body: Annotated[int, typer.Option("--max-body", help="Largest request body, in bytes.")] = 1 << 20,
    max_rows: Annotated[int, typer.Option("--max-rows", help="Most rows per request.")] = 100_000,
    threads: Annotated[int, typer.Option("--threads", help="ONNX Runtime threads per request.")] = 1,
    access_log: Annotated[bool, typer.Option("--access-log", help="Log every request to stderr.")] = False,
    log_predictions: Annotated[
        Path | None,
        typer.Option("--log-predictions", help="Append sampled inputs and outputs to this JSON-lines file (rotated)."),
    ] = None,
    log_sample: Annotated[float, typer.Option("--log-sample", min=0.0, max=1.0, help="Share of rows logged.")] = 1.0,
    log_max_bytes: Annotated[int, typer.Option("--log-max-bytes", min=1024, help="Rotate the log at this size.")] = 10 << 20,
) -> None:
    """Serve the current bundle over HTTP: POST /predict, GET /health, GET /contract; follows pulls and rollbacks."""
    from mlflowkit.edge.device import Device
    from mlflowkit.edge.predlog import PredictionLog
    from mlflowkit.edge.server import serve as run_server

    log = PredictionLog(log_predictions, sample=log_sample, max_bytes=log_max_bytes) if log_predictions else None
    run_server(
        Device(dir_), host=host, port=port, max_body=max_body, max_rows=max_rows, threads=threads, access_log=access_log,
        prediction_log=log,
    )  # fmt: skip
