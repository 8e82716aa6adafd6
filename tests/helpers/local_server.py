"""The test session's local Prefect server (one per session, under its own MLFLOWKIT_HOME) and checks on a project's state.

Runs without PREFECT_API_URL use mlflowkit's local server; the session gives it a home of its own
(``MLFLOWKIT_HOME``), any free port, and stops it at the end, so no test touches a user's server.
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path
from typing import Any

from mlflowkit.runtime.localapi import running_server


def untouched_state(project: Path) -> bool:
    """True when nothing was written next to the spec: no ``.mlflowkit`` folder, or an empty one."""
    state = project / ".mlflowkit"
    return not state.exists() or not any(state.rglob("*"))


def flow_run(flow_run_id: str) -> dict[str, Any]:
    """A flow run as the session's local server has it."""
    info = running_server(Path(os.environ["MLFLOWKIT_HOME"]))
    assert info is not None, "the session's local Prefect server is not running"
    with urllib.request.urlopen(f"{info.url}/flow_runs/{flow_run_id}", timeout=10) as response:
        return dict(json.load(response))
