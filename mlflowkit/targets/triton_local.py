"""A real Triton Inference Server on this machine (CPU), from the ``nvidia-pytriton`` wheel, for development and tests.

The wheel ships the ``tritonserver`` binary and its Python backend. It pins numpy<2, so it gets a
virtualenv of its own (never the project's). That build has no ONNX Runtime backend: models are served
through the Python backend with a ``model.py`` that runs ONNX Runtime (``mlflowkit.targets.triton.backend``).

    mlflowkit triton up [--dir DIR] [--http-port 8000] [--grpc-port 8001]
    mlflowkit triton down [--dir DIR]

State lives in DIR (default ``.mlflowkit/triton``): ``models/`` (the model repository), ``backends/``,
``server.log`` and ``server.json`` (pid and URLs). The virtualenv is shared between folders, at
``$MLFLOWKIT_TRITON_VENV`` or ``~/.cache/mlflowkit/triton-venv``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from filelock import FileLock

from mlflowkit._local_server import forget, stop, wait_ready
from mlflowkit.errors import MlflowkitError

__all__ = [
    "TRUSTED_KEY_ENV",
    "VENV_ENV",
    "LocalTriton",
    "TritonLocalError",
    "default_venv",
    "down",
    "ensure_venv",
    "free_port",
    "status",
    "up",
]

VENV_ENV = "MLFLOWKIT_TRITON_VENV"
TRUSTED_KEY_ENV = "MLFLOWKIT_TRITON_TRUSTED_KEY"
# What the server's venv holds. numpy<2 because nvidia-pytriton pins it; onnxruntime for the model.py;
# cryptography for the model.py's signature check (a server started with a trusted key).
VENV_PACKAGES = ("nvidia-pytriton==0.7.0", "onnxruntime==1.32.0", "numpy<2", "cryptography==50.0.2")
_PACKAGES_MARK = ".mlflowkit-packages"
_STATE = "server.json"
# Servers this process started, kept so that they are reaped (and Popen does not warn about a live child).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class TritonLocalError(MlflowkitError):
    """The local Triton could not be set up, started or stopped; the message says why."""


@dataclass(frozen=True)
class LocalTriton:
    """A running local server, as recorded in ``DIR/server.json``."""

    dir: str
    pid: int
    http_port: int
    grpc_port: int
    model_repository: str
    venv: str
    log: str
    trusted_key: str | None = None

    @property
    def http_url(self) -> str:
        """The HTTP/REST endpoint."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        """The gRPC endpoint (host:port)."""
        return f"127.0.0.1:{self.grpc_port}"


def default_venv() -> Path:
    """``$MLFLOWKIT_TRITON_VENV``, or ``~/.cache/mlflowkit/triton-venv``."""
    return Path(os.environ.get(VENV_ENV) or Path.home() / ".cache" / "mlflowkit" / "triton-venv")


def _site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3*/site-packages"))
    if not found:
        raise TritonLocalError(f"no site-packages under {venv}")
    return found[0]


def _server_binary(venv: Path) -> Path:
    return _site_packages(venv) / "pytriton" / "tritonserver" / "bin" / "tritonserver"


def ensure_venv(venv: Path | None = None, *, python: str | None = None) -> Path:
    """Create (or reuse) the server's virtualenv with nvidia-pytriton, onnxruntime and numpy<2.

    Several processes may call this at once (test workers, CI jobs): a file lock beside the venv
    makes one build it and the others wait. A venv is reused when it holds :data:`VENV_PACKAGES` (a
    mark file records them); one built by an older mlflowkit gets the missing packages installed.

    Raises:
        TritonLocalError: the venv could not be created or the packages not installed (pip's output is included).
    """
    venv = Path(venv or default_venv()).expanduser().absolute()
    venv.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(venv) + ".lock", timeout=1800):
        wanted = "\n".join(VENV_PACKAGES) + "\n"
        mark = venv / _PACKAGES_MARK
        if _server_binary_exists(venv) and mark.is_file() and mark.read_text() == wanted:
            return venv
        python = python or sys.executable
        steps = [[str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *VENV_PACKAGES]]
        existing = _server_binary_exists(venv)
        if not existing:  # a venv from an older mlflowkit only gets what it lacks
            steps.insert(0, [python, "-m", "venv", "--clear", str(venv)])
        # The project's pins (tox sets PIP_CONSTRAINT) say numpy 2; this venv needs numpy<2 by design.
        env = {k: v for k, v in os.environ.items() if k not in {"PIP_CONSTRAINT", "PIP_REQUIRE_VIRTUALENV"}}
        for argv in steps:
            done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
            if done.returncode != 0 and existing:  # offline, say: the server still runs; signed checks need cryptography
                print(
                    f"warning: could not update the Triton venv at {venv} ({' '.join(VENV_PACKAGES)}); using it as it is",
                    file=sys.stderr,
                )
                return venv
            if done.returncode != 0:
                raise TritonLocalError(
                    f"building the Triton venv at {venv} failed: {' '.join(argv)} exited {done.returncode}:\n"
                    + (done.stderr or done.stdout)[-2000:]
                )
        mark.write_text(wanted)
    return venv


def _server_binary_exists(venv: Path) -> bool:
    try:
        return _server_binary(venv).is_file()
    except TritonLocalError:
        return False


def _stub_python(venv: Path) -> str:
    """The venv's Python version (``3.11``): the Python backend stub must match it."""
    return _site_packages(venv).parent.name.removeprefix("python")


def prepare_backends(venv: Path, folder: Path) -> Path:
    """``folder/backends/python``: the wheel's Python backend with the stub for the venv's Python beside it."""
    wheel = _site_packages(venv) / "pytriton" / "tritonserver"
    stub = wheel / "python_backend_stubs" / _stub_python(venv) / "triton_python_backend_stub"
    if not stub.is_file():
        raise TritonLocalError(f"nvidia-pytriton has no Python backend stub for Python {_stub_python(venv)} ({stub})")
    backends = folder / "backends"
    target = backends / "python"
    if not (target / "triton_python_backend_stub").is_file():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(wheel / "backends" / "python", target)
        shutil.copy2(stub, target / "triton_python_backend_stub")
    return backends


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(http_port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/health/ready", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def status(folder: str | os.PathLike[str]) -> LocalTriton | None:
    """The server recorded in ``folder`` if its process is alive, else None."""
    path = Path(folder) / _STATE
    try:
        server = LocalTriton(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return server if _is_our_server(server.pid) else None


def _is_our_server(pid: int) -> bool:
    """True when ``pid`` is alive and is a tritonserver (a recycled pid must never be signalled)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"tritonserver" in cmdline.split(b"\0", 1)[0]


def up(
    folder: str | os.PathLike[str],
    *,
    http_port: int = 8000,
    grpc_port: int = 8001,
    venv: Path | None = None,
    timeout: float = 180.0,
    extra_args: tuple[str, ...] = (),
    trusted_key: str | os.PathLike[str] | None = None,
) -> LocalTriton:
    """Start a local Triton (explicit model control) serving ``folder/models``, and wait until it is ready.

    Reuses a server already running from ``folder``. Listens on 127.0.0.1 only. With ``trusted_key`` (an
    ed25519 public key's PEM file), the server's environment names it in ``$MLFLOWKIT_TRITON_TRUSTED_KEY``
    and the generated ``model.py`` loads only versions whose manifest that key signed.

    Raises:
        TritonLocalError: the venv or backend could not be set up, or the server did not become ready
            within ``timeout`` seconds (the end of its log is included).
    """
    folder = Path(folder).absolute()
    key = None if trusted_key is None else str(Path(trusted_key).expanduser().absolute())
    running = status(folder)
    if running is not None:
        if running.trusted_key != key:
            raise TritonLocalError(
                f"a server is already running from {folder} with trusted key {running.trusted_key or 'none'}, "
                f"not {key or 'none'}; stop it first (mlflowkit triton down --dir {folder})"
            )
        return running
    venv = ensure_venv(venv)
    folder.mkdir(parents=True, exist_ok=True)
    models = folder / "models"
    models.mkdir(exist_ok=True)
    backends = prepare_backends(venv, folder)
    site = _site_packages(venv)
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(site / "nvidia_pytriton.libs"), env.get("LD_LIBRARY_PATH")) if p)
    # The Python backend stub runs the first `python3` on PATH: the venv's, with numpy<2 and onnxruntime.
    env["PATH"] = os.pathsep.join(p for p in (str(venv / "bin"), env.get("PATH")) if p)
    env.pop(TRUSTED_KEY_ENV, None)
    if key is not None:
        if not Path(key).is_file():
            raise TritonLocalError(f"trusted key {key} does not exist")
        env[TRUSTED_KEY_ENV] = key
    argv = [
        str(_server_binary(venv)),
        "--model-control-mode=explicit",
        f"--model-repository={models}",
        f"--backend-directory={backends}",
        "--http-address=127.0.0.1",
        f"--http-port={http_port}",
        "--grpc-address=127.0.0.1",
        f"--grpc-port={grpc_port}",
        "--allow-metrics=false",
        "--exit-timeout-secs=10",
        *extra_args,
    ]
    log = folder / "server.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    _CHILDREN[process.pid] = process
    server = LocalTriton(
        dir=str(folder),
        pid=process.pid,
        http_port=http_port,
        grpc_port=grpc_port,
        model_repository=str(models),
        venv=str(venv),
        log=str(log),
        trusted_key=key,
    )
    wait_ready(
        process,
        lambda: _ready(http_port),
        timeout=timeout,
        what="tritonserver",
        log=log,
        error=TritonLocalError,
        on_timeout=lambda: _stop(process.pid),
    )
    (folder / _STATE).write_text(json.dumps(asdict(server), indent=2))
    return server


def down(folder: str | os.PathLike[str], *, timeout: float = 30.0) -> bool:
    """Stop the server recorded in ``folder``; True if one was running."""
    server = status(folder)
    return forget(Path(folder) / _STATE, server.pid if server else None, lambda pid: _stop(pid, timeout))


def _stop(pid: int, timeout: float = 30.0) -> None:
    stop(pid, ours=_is_our_server, children=_CHILDREN, timeout=timeout)
