"""Where a run keeps things: the store (--store, MLFLOWKIT_STORE, spec.store, the state folder) and the Prefect API."""

from __future__ import annotations

from pathlib import Path

import pytest
from runtime_project import Project

from mlflowkit.runtime.engine import run_spec
from mlflowkit.runtime.locations import configured_api_url, embedded_api, mlflowkit_home, state_dir, store_root


def test_the_store_is_the_override_else_the_environment_else_the_spec_else_the_state_folder(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, _ = project()
    assert store_root(spec) == str(state_dir(spec)) == str(tmp_path / ".mlflowkit")
    monkeypatch.setenv("MLFLOWKIT_STORE", "s3://bucket/prefix")
    assert store_root(spec) == "s3://bucket/prefix"
    assert store_root(spec, "/elsewhere") == "/elsewhere"
    monkeypatch.delenv("MLFLOWKIT_STORE")
    relative, _ = project(spec_extra="store: shared/store\n")
    assert store_root(relative) == str(tmp_path / "shared" / "store")  # relative to the spec, not the working directory


def test_a_run_with_its_store_elsewhere_leaves_nothing_next_to_the_spec(project: Project, tmp_path: Path) -> None:
    spec, plan = project()
    result = run_spec(spec, plan, store=str(tmp_path / "shared"), orchestrate=False)
    assert result.ok and (tmp_path / "shared" / "runs" / f"{result.run_id}.json").is_file()
    assert not (tmp_path / ".mlflowkit").exists()


def test_the_prefect_api_comes_from_the_environment_or_the_active_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("PREFECT_PROFILE", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    assert configured_api_url() is None and embedded_api()
    (tmp_path / "profiles.toml").write_text(
        'active = "team"\n[profiles.team]\nPREFECT_API_URL = "http://prefect:4200/api"\n[profiles.local]\n'
    )
    assert configured_api_url() == "http://prefect:4200/api" and not embedded_api()
    monkeypatch.setenv("PREFECT_PROFILE", "local")
    assert configured_api_url() is None
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    assert configured_api_url() == "http://127.0.0.1:4200/api"


def test_the_mlflowkit_home_is_the_environment_else_the_xdg_state_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOWKIT_HOME", str(tmp_path / "mine"))
    assert mlflowkit_home() == tmp_path / "mine"
    monkeypatch.delenv("MLFLOWKIT_HOME")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert mlflowkit_home() == tmp_path / "state" / "mlflowkit"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert mlflowkit_home() == tmp_path / "user" / ".local" / "state" / "mlflowkit"  # outside any project
