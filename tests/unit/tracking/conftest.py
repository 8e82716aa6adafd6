"""A ``project`` fixture (as in tests/unit/runtime): a small project of its own in a temp folder, no policy, no store override."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "helpers"))
from runtime_project import Project, make_project

from mlflowkit.policy import POLICY_ENV


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """``project(recipe=..., spec_extra=..., steps=...)``: see :func:`runtime_project.make_project`."""
    monkeypatch.delenv(POLICY_ENV, raising=False)
    monkeypatch.delenv("MLFLOWKIT_STORE", raising=False)
    monkeypatch.delenv("MLFLOWKIT_TRACKING_URI", raising=False)
    return partial(make_project, tmp_path)
