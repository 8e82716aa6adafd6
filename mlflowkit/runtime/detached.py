"""Start a process that outlives this one and is nobody's child (the local server, a run's report writer).

Through a launcher that starts it in a session of its own and exits at once: the process is reparented,
never left a zombie, never in a run's process group (a Ctrl-C or kill of the run's group spares it),
and this process holds no ``Popen`` for it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["spawn_detached"]

_LAUNCH = """
import subprocess, sys
with open(sys.argv[1], "ab") as log:
    p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                         start_new_session=True, close_fds=True)
print(p.pid)
"""


def spawn_detached(args: Sequence[str], *, log: Path | str = os.devnull, env: Mapping[str, str] | None = None) -> int:
    """Start ``args`` detached, its output appended to ``log``; its pid.

    Raises:
        OSError: the launcher could not start it (the message says why).
    """
    launched = subprocess.run(
        [sys.executable, "-S", "-c", _LAUNCH, str(log), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=None if env is None else dict(env),
        timeout=60,
        check=False,
    )
    if launched.returncode != 0 or not launched.stdout.strip().isdigit():
        raise OSError(f"could not start {args[0]}: {launched.stderr.strip()[-500:]}")
    return int(launched.stdout)
