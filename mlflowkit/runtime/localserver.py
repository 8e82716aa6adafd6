"""The local Prefect server process (``python -m mlflowkit.runtime.localserver``): Prefect's API on loopback.

Started by :func:`mlflowkit.runtime.localapi.ensure_server`, never imported by a run. It binds its port
before anything else (the preferred one, else any free one, so a taken port is no failure), serves
Prefect's API (and with ``--ui`` its UI and scheduler, like ``prefect server start``) with its database
under the mlflowkit home, writes ``server.json`` once it answers, and stops itself after ``--idle``
seconds without a request or an open connection.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from mlflowkit._version import __version__
from mlflowkit.runtime.localapi import ServerInfo, prefect_version, read_state, write_state

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class Activity:
    """ASGI wrapper that notes the time of the last request and how many connections are open."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.last = time.monotonic()
        self.open = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"}:
            await self.app(scope, receive, send)
            return
        self.open += 1
        self.last = time.monotonic()
        try:
            await self.app(scope, receive, send)
        finally:
            self.open -= 1
            self.last = time.monotonic()

    def idle_for(self) -> float:
        """Seconds since the last request ended (0 while one is open)."""
        return 0.0 if self.open else time.monotonic() - self.last


def _bind(port: int) -> socket.socket:
    """A listening socket on loopback: ``port`` if free, else any free port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A port whose last server just stopped still has its closed connections in TIME_WAIT; reusing it is
    # what a server started again for the same process needs (a port another process listens on stays taken).
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _settings(home: Path, port: int, ui: bool) -> None:
    """Prefect's settings for the server, set before Prefect is imported."""
    for key in ("PREFECT_API_URL", "PREFECT_PROFILE"):
        os.environ.pop(key, None)
    (home / "prefect").mkdir(parents=True, exist_ok=True)
    os.environ.update(
        PREFECT_HOME=str(home / "prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_API_HOST="127.0.0.1",
        PREFECT_SERVER_API_PORT=str(port),
        PREFECT_UI_ENABLED="true" if ui else "false",
        PREFECT_SERVER_LOGGING_LEVEL=os.environ.get("PREFECT_SERVER_LOGGING_LEVEL", "WARNING"),
        PREFECT_SERVER_LOG_RETRYABLE_ERRORS="true",  # a "database is locked" answer is worth a line in the log
    )


def _immediate_sqlite_writes() -> None:
    """Open every SQLite transaction of the server with ``BEGIN IMMEDIATE``.

    Prefect 3.8 opens most with ``BEGIN DEFERRED``: a transaction that reads, then writes while another
    connection (the task-run recorder, say) has written meanwhile, gets SQLITE_BUSY at once, bypassing
    the busy timeout; the API answers 503 and the client backs off ~2 s. An immediate transaction
    takes the write lock when it begins, so it waits in the busy timeout instead (WAL readers outside
    transactions never wait).
    """
    from contextlib import asynccontextmanager

    from prefect.server.database.configurations import AioSqliteConfiguration

    deferred = AioSqliteConfiguration.begin_transaction

    @asynccontextmanager
    async def begin_transaction(self: Any, session: Any, with_for_update: bool = False) -> Any:
        async with deferred(self, session, with_for_update=True) as transaction:
            yield transaction

    AioSqliteConfiguration.begin_transaction = begin_transaction  # type: ignore[method-assign]


def _watch(server: Any, activity: Activity, info: ServerInfo, home: Path, idle: float) -> None:
    """Write the state file once the server answers; then ask it to exit when idle for ``idle`` seconds."""
    while not server.started and not server.should_exit:
        time.sleep(0.02)
    if server.should_exit:
        return
    activity.last = time.monotonic()  # idle from now: migrating a new database may have taken longer than ``idle``
    write_state(info, home)
    while not server.should_exit:
        if activity.idle_for() > idle:
            server.should_exit = True
            return
        time.sleep(min(1.0, max(idle / 10, 0.05)))


def main(argv: list[str] | None = None) -> None:
    """Serve until idle, SIGTERM or SIGINT; remove the state file if it is still this server's."""
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}")
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--idle", type=float, required=True)
    parser.add_argument("--ui", action="store_true")
    args = parser.parse_args(argv)
    sock = _bind(args.port)
    port = sock.getsockname()[1]
    _settings(args.home, port, args.ui)

    import uvicorn
    from prefect.server.api.server import create_app

    _immediate_sqlite_writes()
    activity = Activity(create_app(ephemeral=not args.ui, final=True))
    config = uvicorn.Config(activity, log_level="warning", lifespan="on", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    info = ServerInfo(
        pid=os.getpid(),
        port=port,
        host=socket.gethostname(),
        mlflowkit=__version__,
        prefect=prefect_version(),
        ui=args.ui,
        idle_seconds=args.idle,
        started_at=time.time(),
    )
    threading.Thread(target=_watch, args=(server, activity, info, args.home, args.idle), daemon=True).start()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a closed terminal is no reason to stop
    try:
        server.run(sockets=[sock])
    finally:
        current = read_state(args.home)
        if current is not None and current.pid == os.getpid():
            with contextlib.suppress(OSError):
                (args.home / "server.json").unlink()


if __name__ == "__main__":
    main()
