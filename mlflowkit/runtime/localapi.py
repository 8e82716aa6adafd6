"""The user's local Prefect API: started once, found again by a state file, reused by every run, stopped when idle.

Runs without a configured server (``PREFECT_API_URL`` or an active profile's) talk to one local Prefect
server per user, kept under :func:`~mlflowkit.runtime.locations.mlflowkit_home`: its database is migrated
once, not on every run, and no run waits for it to stop. The server writes ``server.json`` (pid, port,
versions) once it listens; clients read it under ``server.lock``, check that the pid is alive and is
this server (its command line), that its versions are theirs and that it answers, and start a new one
otherwise. A server left by another version is stopped and replaced. The server stops itself after
:data:`IDLE_ENV` seconds without a request, so a killed run never leaves one running for good. A run
watches the server's process (:func:`watch_server`): one that dies mid-run is noticed within a second,
where Prefect's client would retry for minutes; the watch also keeps the server from stopping as idle
under a step that sends it nothing for a long time.

This module never imports Prefect (the server is a process of its own); :mod:`.localserver` is
the server process.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from mlflowkit._version import __version__
from mlflowkit.errors import MlflowkitError
from mlflowkit.runtime.detached import spawn_detached
from mlflowkit.runtime.locations import mlflowkit_home

__all__ = [
    "IDLE_ENV",
    "PORT_ENV",
    "ServerInfo",
    "ensure_server",
    "gone_message",
    "prefect_version",
    "running_server",
    "stop_server",
    "watch_server",
]

IDLE_ENV = "MLFLOWKIT_SERVER_IDLE_SECONDS"
"""Seconds without a request after which the local server stops itself (default 3600)."""
PORT_ENV = "MLFLOWKIT_SERVER_PORT"
"""The port the local server prefers (default 4280); when it is taken, any free port."""
DEFAULT_PORT = 4280
DEFAULT_IDLE = 3600.0
SERVER_MODULE = "mlflowkit.runtime.localserver"
_used_port: int | None = None
"""The port this process's runs last talked to. Prefect's in-process services (events, concurrency slots) keep
the API URL they were first given, so a server started again for this process (after an idle stop or a
replacement) takes that port back when it is free; otherwise a notebook's next run would wait on a dead URL."""
_START_TIMEOUT = 120.0  # a first start on a loaded machine migrates a new database: tens of seconds


@dataclass(frozen=True)
class ServerInfo:
    """What ``server.json`` says about a running local server."""

    pid: int
    port: int
    host: str
    mlflowkit: str
    prefect: str
    ui: bool
    idle_seconds: float
    started_at: float

    @property
    def url(self) -> str:
        """Its Prefect API URL."""
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui_url(self) -> str | None:
        """Its Prefect UI, when it serves one."""
        return f"http://127.0.0.1:{self.port}" if self.ui else None


def prefect_version() -> str:
    """The installed Prefect's version, read from its metadata (importing Prefect costs a second)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("prefect")
    except PackageNotFoundError:
        raise MlflowkitError("running a flow needs Prefect: pip install 'mlflowkit[run]'") from None


def _state_file(home: Path) -> Path:
    return home / "server.json"


def read_state(home: Path | None = None) -> ServerInfo | None:
    """The state file's server, or None when there is none or it cannot be read (an older format, a torn file)."""
    try:
        raw = json.loads(_state_file(home or mlflowkit_home()).read_text())
        return ServerInfo(**{k: raw[k] for k in ServerInfo.__dataclass_fields__})
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_state(info: ServerInfo, home: Path) -> None:
    """Write the state file atomically (the server does, once it listens)."""
    path = _state_file(home)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(info), indent=2))
    os.replace(tmp, path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive, but not ours
        return True
    try:  # a zombie is dead, whoever has yet to reap it
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _is_our_server(pid: int) -> bool:
    """Whether ``pid`` runs a local server (so a reused pid is never signalled)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return _alive(pid) and sys.platform != "linux"  # no /proc: trust the pid
    return SERVER_MODULE.encode() in cmdline


def _answers(port: int, timeout: float = 2.0) -> bool:
    """Whether a Prefect API answers its health check on ``port`` (plain http.client: httpx costs 0.1 s)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/api/health")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _lock(home: Path) -> object:
    from filelock import FileLock

    home.mkdir(parents=True, exist_ok=True)
    return FileLock(str(home / "server.lock"), timeout=_START_TIMEOUT + 30)


def running_server(home: Path | None = None) -> ServerInfo | None:
    """The local server if it is running and answers; never starts one."""
    info = read_state(home)
    if info is None or info.host != socket.gethostname() or not _alive(info.pid) or not _is_our_server(info.pid):
        return None
    return info if _answers(info.port) else None


def _current(info: ServerInfo, ui: bool) -> bool:
    return info.mlflowkit == __version__ and info.prefect == prefect_version() and (info.ui or not ui)


def ensure_server(
    *, ui: bool = False, home: Path | None = None, on_start: Callable[[str], None] | None = None
) -> ServerInfo:
    """The local server, started if none of this version runs; one at a time under the lock.

    Args:
        ui: the server must serve the Prefect UI (and run Prefect's scheduler); one without it is replaced.
        home: the state folder; default :func:`~mlflowkit.runtime.locations.mlflowkit_home`.
        on_start: told when a server is being started (that takes seconds; finding one takes milliseconds).

    Raises:
        MlflowkitError: the server did not come up (its log's last lines say why).
    """
    global _used_port  # noqa: PLW0603 (one value per process, on purpose)
    home = home or mlflowkit_home()
    with _lock(home):  # type: ignore[attr-defined]
        info = running_server(home)
        if info is None or not _current(info, ui):
            stale = read_state(home)
            if stale is not None and stale.host == socket.gethostname() and _is_our_server(stale.pid):
                _terminate(stale.pid)  # another version's (or one without the UI asked for): replace it
            if on_start is not None:
                on_start("starting the local Prefect server")
            info = _start(home, ui=ui)
        _used_port = info.port
        return info


def _start(home: Path, *, ui: bool) -> ServerInfo:
    """Start a server process, detached from this one, and wait until it answers."""
    _state_file(home).unlink(missing_ok=True)
    log = home / "server.log"
    preferred = str(_used_port) if _used_port else os.environ.get(PORT_ENV, str(DEFAULT_PORT))
    idle = os.environ.get(IDLE_ENV, str(DEFAULT_IDLE))
    args = [sys.executable, "-m", SERVER_MODULE, "--home", str(home), "--port", preferred, "--idle", idle]
    env = {k: v for k, v in os.environ.items() if k not in {"PREFECT_API_URL", "PREFECT_PROFILE"}}
    try:
        pid = spawn_detached([*args, *(["--ui"] if ui else [])], log=log, env=env)
    except OSError as exc:
        raise MlflowkitError(f"the local Prefect server could not be launched: {exc}") from None
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        info = read_state(home)
        if info is not None and info.pid == pid and _answers(info.port):
            return info
        if not _alive(pid):
            break
        time.sleep(0.05)
    if _alive(pid):
        _terminate(pid)
    tail = log.read_text(errors="replace").strip().splitlines()[-15:] if log.exists() else []
    raise MlflowkitError(f"the local Prefect server did not start; log {log}:\n" + "\n".join(tail))


def _terminate(pid: int, timeout: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL after ``timeout``; True when it is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return not _alive(pid)


def stop_server(home: Path | None = None) -> ServerInfo | None:
    """Stop the local server (waiting until it is gone); the one stopped, or None when none ran."""
    home = home or mlflowkit_home()
    with _lock(home):  # type: ignore[attr-defined]
        info = read_state(home)
        if info is None or info.host != socket.gethostname() or not _is_our_server(info.pid):
            _state_file(home).unlink(missing_ok=True)
            return None
        _terminate(info.pid)
        _state_file(home).unlink(missing_ok=True)
        return info


def gone_message(info: ServerInfo, home: Path | None = None) -> str:
    """One line for a run whose local server died under it: which server, where its log is, how to start it again."""
    log = (home or mlflowkit_home()) / "server.log"
    return (
        f"the local Prefect server (pid {info.pid}, {info.url}) stopped during the run; its log: {log}; "
        "`mlflowkit server start` starts it again (so does the next run)"
    )


@contextlib.contextmanager
def watch_server(info: ServerInfo, on_gone: Callable[[ServerInfo], None], *, every: float = 0.5) -> Iterator[None]:
    """While the block runs, check every ``every`` seconds that the server's process is alive and is the server.

    ``on_gone(info)`` is called once, from the watching thread, when it is not (killed, crashed, replaced):
    a run then ends at once instead of waiting for Prefect's client to give up on a dead URL (it retries
    each request for about a minute, with back-off). The check is a signal 0 and a read of ``/proc``.
    A step may send the server nothing for longer than its idle time (an hour of training): the watch
    asks the server's health four times per idle time, so it never stops itself under a running run.
    """
    stop = threading.Event()
    keep_alive = max(info.idle_seconds / 4, every)

    def watch() -> None:
        asked = time.monotonic()
        while not stop.wait(every):
            if not _alive(info.pid) or not _is_our_server(info.pid):
                if not stop.is_set():
                    on_gone(info)
                return
            if time.monotonic() - asked >= keep_alive:
                _answers(info.port)  # a request: the server's idle clock starts again
                asked = time.monotonic()

    threading.Thread(target=watch, name="mlflowkit-server-watch", daemon=True).start()
    try:
        yield
    finally:
        stop.set()  # not joined: on_gone may be ending the run (the caller decides how)
