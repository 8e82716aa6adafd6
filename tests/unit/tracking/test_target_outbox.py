"""Where runs are logged (spec section, environment), the section's validation, and the store's outbox."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from runtime_project import Project

from mlflowkit.errors import SpecError
from mlflowkit.store import ArtifactStore
from mlflowkit.tracking.outbox import done, enqueue, pending, retry_later
from mlflowkit.tracking.target import TRACKING_URI_ENV, TrackingTarget, remember, remembered, target_for


def test_the_section_wins_and_the_environment_stands_in(project: Project) -> None:
    spec, _ = project(spec_extra="tracking: {uri: 'http://127.0.0.1:5999', experiment: exp, registered_model: m2}\n")
    target = target_for(spec, "chain", env={TRACKING_URI_ENV: "http://elsewhere:1"})
    assert target == TrackingTarget(uri="http://127.0.0.1:5999", experiment="exp", registered_model="m2", registry=True)
    plain, _ = project(name="plain")
    assert target_for(plain, "chain", env={}) is None
    from_env = target_for(plain, "chain", env={TRACKING_URI_ENV: "https://mlflow.example:443/"})
    assert from_env is not None and from_env.base == "https://mlflow.example:443" and from_env.experiment == "plain"
    with pytest.raises(ValueError, match="not an http"):
        target_for(plain, "chain", env={TRACKING_URI_ENV: "file:///tmp/mlruns"})


def test_tracking_does_not_change_the_spec_hash(project: Project) -> None:
    plain, _ = project()
    tracked, _ = project(spec_extra="tracking: {uri: 'http://127.0.0.1:5999'}\n")
    assert plain.spec_hash == tracked.spec_hash


def test_a_bad_section_is_a_spec_error_at_its_line(project: Project, tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        project(spec_extra="tracking:\n  uri: ftp://nope\n  timeout: 0\n  experiment: x\n")
    found = {(i.path, i.line) for i in info.value.issues}
    assert ("tracking.uri", 6) in found and ("tracking.timeout", 7) in found, found


def test_validate_with_tracking_loads_no_mlflow(project: Project) -> None:
    spec, _ = project(spec_extra="tracking: {uri: 'http://127.0.0.1:5999'}\n")
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom mlflowkit.cli import app\n"
        "result = CliRunner().invoke(app, ['validate', 'spec.yaml'])\nassert result.exit_code == 0, result.output\n"
        "print('mlflow' in sys.modules)\n"
    )
    done_ = subprocess.run([sys.executable, "-c", code], cwd=spec.spec_dir, capture_output=True, text=True, timeout=120, check=False)
    assert done_.returncode == 0, done_.stderr
    assert done_.stdout.strip().splitlines()[-1] == "False"


def test_the_outbox_keeps_runs_before_alias_moves_and_counts_attempts(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    target = TrackingTarget(uri="http://127.0.0.1:1", experiment="e", registered_model="m")
    enqueue(store, "aliases", "m", target)
    enqueue(store, "run", "m", target, run_id="20260102-000000-bbbbbb")
    enqueue(store, "run", "m", target, run_id="20260101-000000-aaaaaa")
    assert [(i.kind, i.run_id) for i in pending(store)] == [
        ("run", "20260101-000000-aaaaaa"),
        ("run", "20260102-000000-bbbbbb"),
        ("aliases", None),
    ]
    first = pending(store)[0]
    retry_later(store, first, "refused")
    again = enqueue(store, "run", "m", target, run_id=first.run_id)  # queued again: its history stays
    assert (again.attempts, again.last_error, again.queued_at) == (1, "refused", first.queued_at)
    done(store, again)
    assert [i.run_id for i in pending(store)] == ["20260102-000000-bbbbbb", None]
    (tmp_path / "store" / "tracking" / "outbox" / "junk.json").write_text("{not json")
    assert len(pending(store)) == 2  # a foreign or half-written file is not sent, and breaks nothing


def test_the_store_remembers_where_a_model_is_logged(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    assert remembered(store, "churn") is None
    target = TrackingTarget(uri="http://127.0.0.1:5000", experiment="e", registered_model="churn-prod")
    remember(store, "churn", target)
    assert remembered(store, "churn") == target


def test_what_counts_as_a_server_that_stopped_answering() -> None:
    """Only those stop the sending; an item MLflow refuses (or a record gone from the store) waits alone."""
    import requests
    from mlflow.exceptions import MlflowException

    from mlflowkit.tracking.sync import unreachable

    assert unreachable(ConnectionRefusedError(111, "refused")) and unreachable(TimeoutError("timed out"))
    assert unreachable(requests.exceptions.ReadTimeout("read timeout"))
    wrapped = MlflowException("API request to http://x/api failed with exception HTTPConnectionPool(...): Max retries exceeded")
    assert unreachable(wrapped)
    chained = MlflowException("API request failed")
    chained.__cause__ = requests.exceptions.ConnectionError("reset")  # as `raise ... from` leaves it
    assert unreachable(chained)
    assert not unreachable(MlflowException("INVALID_PARAMETER_VALUE: param 'x' was already logged with another value"))
    assert not unreachable(FileNotFoundError("runs/r1.json")) and not unreachable(ValueError("bad record"))
