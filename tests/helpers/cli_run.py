"""Run the ``mlflowkit`` CLI in a subprocess, as a user would, with a fixed width and no analytics."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-c", "from mlflowkit.cli import main; main()"]


def run_cli(folder: Path, *args: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    """``mlflowkit ARGS`` in ``folder``; output captured as text, the exit code not checked."""
    env = {**os.environ, "COLUMNS": "200", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    return subprocess.run([*CLI, *args], cwd=folder, env=env, capture_output=True, text=True, timeout=timeout, check=False)
