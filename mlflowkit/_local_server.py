"""What the local development servers mlflowkit starts (Triton, MLflow) share: stopping one by pid, and its log's tail."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["forget", "log_tail", "stop", "wait_ready", "zombie"]


def zombie(pid: int) -> bool:
    """True when ``pid`` has exited and waits to be reaped (or is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def stop(
    pid: int,
    *,
    ours: Callable[[int], bool],
    children: dict[int, subprocess.Popen[bytes]],
    timeout: float = 30.0,
    group: bool = False,
) -> None:
    """SIGTERM a server this package started, SIGKILL it after ``timeout``; a pid that ``ours`` disowns is left alone.

    Args:
        pid: the server's process (with ``group``: its process group, started with ``start_new_session``).
        ours: whether ``pid`` still is that server (a recycled pid must never be signalled).
        children: the servers this process started, by pid; the one stopped is reaped and removed.
        timeout: seconds to wait after SIGTERM.
        group: signal the whole process group (a server with workers of its own).
    """
    if not ours(pid):
        return
    kill: Callable[[int, int], None] = os.killpg if group else os.kill
    with contextlib.suppress(ProcessLookupError):
        kill(pid, signal.SIGTERM)
    child = children.pop(pid, None)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None and child.poll() is not None:
            return
        if child is None and (not ours(pid) or zombie(pid)):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        kill(pid, signal.SIGKILL)
    if child is not None:
        child.wait(timeout=10)


def log_tail(path: Path, lines: int = 25) -> str:
    """The last lines of a server's log, for an error message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_ready(
    process: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    log: Path,
    error: Callable[[str], Exception],
    on_timeout: Callable[[], None],
) -> None:
    """Wait until ``ready()``; raise ``error(message)`` (with the log's tail) if the process exits or ``timeout`` passes.

    ``on_timeout`` stops the process before the error is raised.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise error(f"{what} exited with code {process.returncode} while starting:\n{log_tail(log)}")
        if ready():
            return
        time.sleep(0.25)
    on_timeout()
    raise error(f"{what} was not ready after {timeout:.0f} s:\n{log_tail(log)}")


def forget(state: Path, pid: int | None, stop_it: Callable[[int], None]) -> bool:
    """Remove a server's state file and stop its process (when alive); True if one was running."""
    with contextlib.suppress(FileNotFoundError):
        state.unlink()
    if pid is None:
        return False
    stop_it(pid)
    return True
