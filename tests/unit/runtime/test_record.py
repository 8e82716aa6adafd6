"""The run record: the verdict and the registered version are found by their media type, whatever the stages are
called, and reach the record, `runs show` and the report; a record is finished once; old records still read."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from kind_harness import write_table
from runtime_project import Project
from typer.testing import CliRunner

import mlflowkit
from mlflowkit.cli import app
from mlflowkit.errors import GateFailed, MlflowkitError
from mlflowkit.handoff import RegisteredVersion, RunRecord, StepRecord, Verdict
from mlflowkit.report import collect, render
from mlflowkit.runtime.engine import run_spec
from mlflowkit.runtime.locations import store_root
from mlflowkit.runtime.record import RunSession, as_seen, process_start
from mlflowkit.runtime.runner import Progress, Runner
from mlflowkit.store import ArtifactStore, registry_at

RENAMED = """\
recipe: renamed
stages:
  ingest: {kind: load, section: data}
  hold_out: {kind: split, section: data.split, needs: [ingest]}
  fit: {kind: sklearn, needs: [hold_out]}
  score: {kind: evaluate, needs: [fit, hold_out]}
  decide: {kind: gates, needs: [score]}
  publish: {kind: register, needs: [decide, fit, score]}
defaults:
  data: {split: {test_size: 0.25, seed: 1}}
  fit: {estimator: sklearn.ensemble.RandomForestClassifier, params: {n_estimators: 10, max_depth: 3}}
  score: {metrics: [accuracy, f1]}
  decide: []
  publish: {}
"""


def renamed(project: Project, tmp_path: Path, rule: str) -> tuple[object, object]:
    csv = write_table(tmp_path / "gen" / "t.csv", rows=200).read_text()
    return project(RENAMED, name="renamed", target="churned", data=csv, spec_extra=f"decide:\n  - {rule}\npublish: {{model: renamed}}\n")


def test_other_stage_names_still_give_the_record_its_verdict_and_version(project: Project, tmp_path: Path) -> None:
    spec, plan = renamed(project, tmp_path, "accuracy >= 0.5")
    result = run_spec(spec, plan, orchestrate=False)  # type: ignore[arg-type]
    assert result.ok, result.error
    assert isinstance(result.verdict, Verdict) and result.verdict.passed
    assert [r.rule for r in result.verdict.rules] == ["accuracy >= 0.5"]
    assert result.version == RegisteredVersion(model="renamed", version=1, alias="champion")
    stored = RunRecord.model_validate_json(Path(store_root(spec), "runs", f"{result.run_id}.json").read_text())  # type: ignore[arg-type]
    assert stored.verdict == result.verdict and stored.version == result.version and stored.report == result.report

    # A rerun from the cache finds them in the cached outputs, and `run` prints the verdict it did not see live.
    again = run_spec(spec, plan)  # type: ignore[arg-type]
    assert again.ok and not again.orchestrated and again.version == result.version and again.verdict == result.verdict

    shown = CliRunner().invoke(app, ["runs", "show", result.run_id, "--store", store_root(spec)], env={"COLUMNS": "200"})  # type: ignore[arg-type]
    assert shown.exit_code == 0, shown.output
    assert "registered renamed v1" in shown.output and "gate verdict: PASS" in shown.output
    assert "accuracy >= 0.5" in shown.output and "decide" in shown.output and "publish" in shown.output

    page = render(collect(ArtifactStore(store_root(spec)), result.run_id, registry=registry_at(store_root(spec))))  # type: ignore[arg-type]
    assert "renamed v1 (champion)" in page and "accuracy &gt;= 0.5" in page and "no gates ran" not in page


def test_a_failing_gate_under_another_name_is_in_the_record_and_the_report(project: Project, tmp_path: Path) -> None:
    spec, plan = renamed(project, tmp_path, "accuracy >= 0.999")
    result = run_spec(spec, plan, orchestrate=False)  # type: ignore[arg-type]
    assert not result.ok and isinstance(result.exception, GateFailed) and result.exception.step == "decide"
    assert result.verdict is not None and not result.verdict.passed and result.version is None
    assert {s.name: s.status for s in result.steps}["publish"] == "skipped"
    page = render(collect(ArtifactStore(store_root(spec)), result.run_id))  # type: ignore[arg-type]
    assert "accuracy &gt;= 0.999" in page and "no version was registered" in page


def test_a_run_is_finished_once(project: Project) -> None:
    spec, plan = project()
    runner = Runner(spec, plan, store_root(spec))
    session = RunSession(runner)
    running = runner.store.read_json(f"runs/{runner.run_id}.json")
    assert running["status"] == "running" and running["finished_at"] == ""
    runner.run_inline()
    result = session.finish()
    assert result.ok and result.seconds > 0 and runner.store.read_json(f"runs/{runner.run_id}.json")["status"] == "completed"
    with pytest.raises(RuntimeError, match="is finished already"):
        session.finish()


def test_a_step_that_never_ran_fails_the_record(project: Project) -> None:
    spec, plan = project()
    runner = Runner(spec, plan, store_root(spec))
    session = RunSession(runner)
    runner.execute("load", {})  # the orchestrator stopped after one step
    result = session.finish()
    assert not result.ok and result.error == "the flow ended before every step ran"


def test_the_running_record_is_written_again_after_each_step(project: Project) -> None:
    """A run killed after N steps leaves a record that names those N steps, their times, and how long it ran."""
    spec, plan = project()
    runner = Runner(spec, plan, store_root(spec))
    session = RunSession(runner)
    seen: list[tuple[list[tuple[str, str]], float]] = []

    class OnDisk(Progress):  # told after the record is written: what a reader would find then
        def step_finished(self, record: StepRecord) -> None:
            raw = runner.store.read_json(f"runs/{runner.run_id}.json")
            seen.append(([(s["name"], s["status"]) for s in raw["steps"]], raw["seconds"]))

    runner.progress = OnDisk()
    runner.execute("load", {})
    runner.execute("first", {"load": runner.outputs["load"]})  # and then the process was killed
    assert [steps for steps, _ in seen] == [[("load", "ran")], [("load", "ran"), ("first", "ran")]]
    assert 0 < seen[0][1] <= seen[1][1]
    raw = runner.store.read_json(f"runs/{runner.run_id}.json")
    assert raw["status"] == "running" and raw["steps"][0]["seconds"] > 0
    assert as_seen({**raw, "pid": 2**22 + 1})["status"] == "killed"  # read back once its process is gone

    result = session.finish()  # a step ending after the finish does not write over the finished record
    runner.execute("second", {"first": runner.outputs["first"]})
    assert runner.store.read_json(f"runs/{runner.run_id}.json")["status"] == result.status == "failed"


def test_a_run_ended_from_outside_fails_with_the_reason_given(project: Project) -> None:
    """The local Prefect server died after `load`: the run is finished as failed with that reason, once."""
    spec, plan = project()
    runner = Runner(spec, plan, store_root(spec))
    session = RunSession(runner)
    runner.execute("load", {})
    result = session.finish(error=MlflowkitError("the local Prefect server stopped during the run"))
    assert result.status == "failed" and result.error == "the local Prefect server stopped during the run"
    assert [s.status for s in result.steps] == ["ran", "skipped", "skipped", "skipped"]
    with pytest.raises(RuntimeError, match="is finished already"):  # the flow's own finish, arriving later
        session.finish()


LEGACY = {  # a record as mlflowkit wrote it before the hand-offs were typed
    "run_id": "20260101-000000-abcdef", "spec_name": "churn-classifier", "spec_path": "spec.yaml", "spec_hash": "ab" * 32,
    "model": "churn", "params": {"n": 1}, "status": "failed", "started_at": "2026-01-01T00:00:00", "finished_at": "x",
    "seconds": 3.2, "orchestrated": True, "flow_run_id": None, "git_commit": None, "error": "step 'gates' failed: gates failed",
    "steps": [{"name": "gates", "kind": "gates", "status": "failed", "seconds": 0.1, "key": "k", "outputs": {}, "error": "x"}],
    "verdict": {"passed": False, "rules": [{"rule": "accuracy >= 0.9", "description": "", "value": 0.8, "threshold": 0.9,
                "baseline": None, "passed": False, "note": ""}], "metrics": {"accuracy": 0.8},
                "champion": {"version": None, "metrics": None, "note": "no champion yet"}, "on_missing_baseline": "pass",
                "run_id": "20260101-000000-abcdef", "ref": "objects/ab/abc"},
    "version": None, "trigger": {"deployment": "churn/lifecycle", "deployment_id": "d", "scheduled": True}, "report": None,
}  # fmt: skip


def test_records_written_before_the_types_still_list_and_show(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    store.write_json(f"runs/{LEGACY['run_id']}.json", LEGACY)
    listed = CliRunner().invoke(app, ["runs", "list", "--store", str(tmp_path / "store")], env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and "schedule (churn/lifecycle)" in listed.output, listed.output
    shown = CliRunner().invoke(app, ["runs", "show", "20260101", "--store", str(tmp_path / "store")], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "gate verdict: FAIL" in shown.output and "accuracy >= 0.9" in shown.output
    record = RunRecord.model_validate(json.loads(json.dumps(LEGACY)))
    assert record.trigger is not None and record.trigger.scheduled and record.verdict is not None
    assert "schedule" in render(collect(store, str(LEGACY["run_id"])))


def test_a_record_on_disk_from_another_host_or_a_live_process_is_not_called_killed() -> None:
    base = {
        "run_id": "r", "spec_name": "s", "spec_path": "p", "spec_hash": "h", "model": "m",
        "status": "running", "started_at": "2026-01-01T00:00:00+00:00",
    }  # fmt: skip
    me = {**base, "host": socket.gethostname(), "pid": os.getpid(), "pid_started": process_start(os.getpid())}
    assert as_seen(me)["status"] == "running"
    assert as_seen({**me, "pid_started": 1})["status"] == "killed"  # the pid now belongs to another process
    assert as_seen({**me, "host": "elsewhere", "pid": 2**22 + 1})["status"] == "running"  # cannot tell from here
    assert as_seen(base)["status"] == "running"  # a record from before pids were kept
    finished = {**me, "pid_started": 1, "status": "completed"}
    assert as_seen(finished) is finished  # only a running record can have been killed


def test_the_record_keeps_the_specs_description_model_card_and_library_versions(project: Project, tmp_path: Path) -> None:
    import sklearn

    csv = write_table(tmp_path / "gen" / "t.csv", rows=200).read_text()
    card = (
        "description: Who cancels next month\n"
        "model_card: {intended_use: retention offers, limitations: 'never saw <b>minors</b>'}\n"
        "decide: []\npublish: {model: renamed}\n"
    )
    spec, plan = project(RENAMED, name="renamed", target="churned", data=csv, spec_extra=card)
    result = run_spec(spec, plan, orchestrate=False)  # type: ignore[arg-type]
    assert result.ok, result.error
    stored = RunRecord.model_validate_json(Path(store_root(spec), "runs", f"{result.run_id}.json").read_text())  # type: ignore[arg-type]
    assert stored.description == "Who cancels next month"
    assert (stored.intended_use, stored.limitations) == ("retention offers", "never saw <b>minors</b>")
    assert stored.libraries["scikit-learn"] == sklearn.__version__ and stored.libraries["mlflowkit"] == mlflowkit.__version__
    assert {"pandas", "numpy"} <= set(stored.libraries)
