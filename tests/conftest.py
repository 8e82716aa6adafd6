"""Test session setup: Prefect isolated per session (own PREFECT_HOME, no analytics), shared fixtures."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Before anything imports prefect: one PREFECT_HOME per test session, never the user's.
_SESSION_HOME = tempfile.mkdtemp(prefix="mlflowkit-tests-prefect-")
os.environ["PREFECT_HOME"] = _SESSION_HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
os.environ.pop("PREFECT_API_URL", None)
os.environ["MLFLOWKIT_USER"] = "tester"

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "churn"


@pytest.fixture
def churn_project(tmp_path: Path) -> Path:
    """A fresh copy of the reference example (spec, data, custom steps), without any state."""
    dest = tmp_path / "churn"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns(".mlflowkit", "__pycache__"))
    return dest


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_SESSION_HOME, ignore_errors=True)
