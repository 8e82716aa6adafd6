"""A real ``mlflow server`` on this machine (SQLite backend, its UI), for development, examples and tests.

The full ``mlflow`` package (server and UI) pins a pyarrow other than the project's, so it lives in a
virtualenv of its own, built on first use under a file lock (several test workers may ask at once) at
``$MLFLOWKIT_MLFLOW_VENV`` or ``~/.cache/mlflowkit/mlflow-venv``. mlflowkit itself talks to the server
with MLflow's client only (``mlflowkit[tracking]``).

    mlflowkit tracking server up [--dir DIR] [--port 5000]
    mlflowkit tracking server down [--dir DIR]

State lives in DIR (default ``.mlflowkit/mlflow``): ``mlflow.db``, ``artifacts/``, ``server.log`` and
``server.json`` (pid and URL). The server listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from filelock import FileLock

from mlflowkit._local_server import forget, stop, wait_ready
from mlflowkit.errors import MlflowkitError

__all__ = ["SERVER_PACKAGES", "VENV_ENV", "LocalMlflow", "MlflowServerError", "down", "ensure_venv", "status", "up"]

VENV_ENV = "MLFLOWKIT_MLFLOW_VENV"
SERVER_PACKAGES = ("mlflow==3.17.2",)
"""The server's venv: the same MLflow release as the client pinned in ``mlflowkit[tracking]``."""
_MARK, _STATE = ".mlflowkit-packages", "server.json"
# Servers this process started, kept so that they are reaped (and Popen does not warn about a live child).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class MlflowServerError(MlflowkitError):
    """The local MLflow server could not be set up, started or stopped; the message says why."""


@dataclass(frozen=True)
class LocalMlflow:
    """A running local server, as recorded in ``DIR/server.json``."""

    dir: str
    pid: int
    port: int
    log: str

    @property
    def url(self) -> str:
        """The tracking URI (and the UI)."""
        return f"http://127.0.0.1:{self.port}"


def ensure_venv(venv: Path | None = None) -> Path:
    """Create (or reuse) the server's virtualenv with :data:`SERVER_PACKAGES`; one process builds it, others wait.

    Raises:
        MlflowServerError: the venv could not be created or MLflow not installed (pip's output is included).
    """
    venv = Path(venv or os.environ.get(VENV_ENV) or Path.home() / ".cache" / "mlflowkit" / "mlflow-venv").expanduser().absolute()
    venv.parent.mkdir(parents=True, exist_ok=True)
    wanted = "\n".join(SERVER_PACKAGES) + "\n"
    with FileLock(str(venv) + ".lock", timeout=1800):
        mark = venv / _MARK
        if (venv / "bin" / "mlflow").is_file() and mark.is_file() and mark.read_text() == wanted:
            return venv
        # The project's pins (tox sets PIP_CONSTRAINT) hold another pyarrow; this venv is the server's alone.
        env = {k: v for k, v in os.environ.items() if k not in {"PIP_CONSTRAINT", "PIP_REQUIRE_VIRTUALENV"}}
        for argv in (
            [sys.executable, "-m", "venv", "--clear", str(venv)],
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *SERVER_PACKAGES],
        ):
            done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
            if done.returncode != 0:
                raise MlflowServerError(
                    f"building the MLflow server venv at {venv} failed: {' '.join(argv)} exited {done.returncode}:\n"
                    + (done.stderr or done.stdout)[-2000:]
                )
        mark.write_text(wanted)
    return venv


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _warm(port: int, deadline: float) -> None:
    """Wait for the first API answer: a new server sets up its stores on the first request (15 s here, once)."""
    url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=1"
    with contextlib.suppress(urllib.error.URLError, OSError):
        urllib.request.urlopen(url, timeout=max(1.0, deadline - time.monotonic())).close()


def _is_ours(pid: int) -> bool:
    """True when ``pid`` is alive and runs MLflow (a recycled pid must never be signalled)."""
    try:
        return b"mlflow" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def status(folder: str | os.PathLike[str]) -> LocalMlflow | None:
    """The server recorded in ``folder`` if it is alive, else None."""
    try:
        server = LocalMlflow(**json.loads((Path(folder) / _STATE).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return server if _is_ours(server.pid) else None


def up(folder: str | os.PathLike[str], *, port: int = 5000, venv: Path | None = None, timeout: float = 120.0) -> LocalMlflow:
    """Start ``mlflow server`` (SQLite under ``folder``, artifacts served by it) and wait until it answers.

    Reuses a server already running from ``folder``.

    Raises:
        MlflowServerError: the venv could not be built, or the server did not answer within ``timeout`` seconds
            (the end of its log is included).
    """
    folder = Path(folder).absolute()
    running = status(folder)
    if running is not None:
        return running
    venv = ensure_venv(venv)
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "server.log"
    argv = [
        str(venv / "bin" / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{folder / 'mlflow.db'}",
        "--artifacts-destination",
        str(folder / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    # No telemetry (no network here); no GenAI job runner (scoring, trace archival): it costs start-up and shutdown.
    quiet = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env = {**os.environ, **quiet}
    with open(log, "ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    _CHILDREN[process.pid] = process
    server = LocalMlflow(dir=str(folder), pid=process.pid, port=port, log=str(log))
    wait_ready(
        process,
        lambda: _healthy(port),
        timeout=timeout,
        what="mlflow server",
        log=log,
        error=MlflowServerError,
        on_timeout=lambda: _stop(process.pid),
    )
    _warm(port, time.monotonic() + timeout)
    (folder / _STATE).write_text(json.dumps(asdict(server), indent=2))
    return server


def down(folder: str | os.PathLike[str], *, timeout: float = 30.0) -> bool:
    """Stop the server recorded in ``folder`` (and its workers); True if one was running."""
    server = status(folder)
    return forget(Path(folder) / _STATE, server.pid if server else None, lambda pid: _stop(pid, timeout))


def _stop(pid: int, timeout: float = 30.0) -> None:
    stop(pid, ours=_is_ours, children=_CHILDREN, timeout=timeout, group=True)  # the server and its workers
