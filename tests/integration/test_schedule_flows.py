"""Specs as Prefect deployments on a real `prefect server start`: schedules, a run started through the API, artifacts.

One server for the module (the ``prefect_server`` fixture); a `mlflowkit flows serve` process runs
the flow runs and is stopped at the end. The tests run in file order: the bad folder first, so the
server is still empty when it is checked that nothing was registered.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helpers"))
from flows_helpers import flows_serve

pytestmark = [pytest.mark.prefect]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "churn"

CHURN_SCHEDULES = """
schedule:
  - name: nightly
    cron: "0 2 * * *"
    timezone: Europe/Berlin
  - name: weekly-big
    rrule: "FREQ=WEEKLY;BYDAY=SU;BYHOUR=4"
    params: {n_estimators: 300}
    active: false
"""
SECOND_SCHEDULE = """
schedule: {interval: 6h, timezone: America/New_York, params: {max_depth: 4}}
"""


def _cli(*args: str, api: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_HOME"} | {"PREFECT_API_URL": api, "COLUMNS": "200"}
    cmd = [sys.executable, "-c", "from mlflowkit.cli import main; main()", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def _post(api: str, path: str, body: dict[str, object]) -> list[dict[str, object]]:
    response = httpx.post(f"{api}{path}", json=body, timeout=10)
    response.raise_for_status()
    return response.json()  # type: ignore[no-any-return]


def _deployments(api: str) -> dict[str, dict[str, object]]:
    found = _post(api, "/deployments/filter", {"deployments": {"tags": {"all_": ["mlflowkit"]}}, "limit": 50, "offset": 0})
    flows = {f["id"]: f["name"] for f in _post(api, "/flows/filter", {"limit": 50, "offset": 0})}
    return {f"{flows[d['flow_id']]}/{d['name']}": d for d in found}


@pytest.fixture(scope="module")
def specs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two specs (the reference example and a second one on the same data), each with schedules."""
    root = tmp_path_factory.mktemp("specs")
    for name, extra, rename in (("churn", CHURN_SCHEDULES, None), ("churn-shallow", SECOND_SCHEDULE, "churn-shallow")):
        dest = root / name
        shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns(".mlflowkit", "__pycache__"))
        text = (dest / "spec.yaml").read_text() + extra
        if rename:
            text = text.replace("name: churn-classifier", f"name: {rename}").replace("model: churn\n", f"model: {rename}\n")
        (dest / "spec.yaml").write_text(text)
    (root / "notes.yaml").write_text("not: a spec\n")  # YAML that is not a spec is skipped, not an error
    return root


def test_a_bad_spec_registers_none_and_names_the_file(specs_dir: Path, prefect_server: str, tmp_path: Path) -> None:
    folder = tmp_path / "with-bad"
    shutil.copytree(specs_dir, folder, ignore=shutil.ignore_patterns(".mlflowkit"))
    bad = folder / "zz-bad" / "spec.yaml"
    bad.parent.mkdir()
    bad.write_text(
        "spec: mlflowkit/v1\nname: bad-one\nrecipe: tabular-classification\n"
        'data: {source: data.csv, target: y}\nschedule:\n  cron: "0 25 * * *"\n'
    )
    started = time.perf_counter()
    result = _cli("flows", "deploy", str(folder), api=prefect_server, cwd=folder)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "zz-bad/spec.yaml:6:9" in result.stderr  # the file, line and column of the bad cron
    assert "hour field: 25 is out of range 0-23" in result.stderr
    assert "nothing registered" in result.stderr
    assert _deployments(prefect_server) == {}  # the two good specs were not registered either
    assert _post(prefect_server, "/flows/filter", {"limit": 10, "offset": 0}) == []
    print(f"bad folder refused in {time.perf_counter() - started:.1f}s")


@pytest.fixture(scope="module")
def registered(specs_dir: Path, prefect_server: str) -> dict[str, dict[str, object]]:
    result = _cli("flows", "deploy", str(specs_dir), api=prefect_server, cwd=specs_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "registered 2 deployment(s)" in result.stdout
    return _deployments(prefect_server)


def test_two_specs_become_deployments_with_their_schedules(registered: dict[str, dict[str, object]]) -> None:
    assert sorted(registered) == ["churn-classifier/lifecycle", "churn-shallow/lifecycle"]
    churn = registered["churn-classifier/lifecycle"]
    assert set(churn["tags"]) == {"mlflowkit", "spec:churn-classifier", "model:churn"}  # type: ignore[arg-type]
    assert churn["parameters"] == {"n_estimators": 150, "max_depth": 10, "min_accuracy": 0.7}
    assert churn["entrypoint"] == "mlflowkit.flows.entry.flow"
    schema = churn["parameter_openapi_schema"]["properties"]  # type: ignore[index]
    assert schema["n_estimators"]["type"] == "integer" and schema["min_accuracy"]["type"] == "number"
    schedules = {s["slug"]: s for s in churn["schedules"]}  # type: ignore[union-attr]
    assert schedules["nightly"]["schedule"]["cron"] == "0 2 * * *"
    assert schedules["nightly"]["schedule"]["timezone"] == "Europe/Berlin"
    assert schedules["nightly"]["active"] is True
    assert "FREQ=WEEKLY;BYDAY=SU;BYHOUR=4" in schedules["weekly-big"]["schedule"]["rrule"]
    assert schedules["weekly-big"]["active"] is False
    assert schedules["weekly-big"]["parameters"] == {"n_estimators": 300}
    (shallow,) = registered["churn-shallow/lifecycle"]["schedules"]  # type: ignore[misc]
    assert shallow["slug"] == "schedule-1"
    assert shallow["schedule"]["interval"] == 6 * 3600
    assert shallow["schedule"]["timezone"] == "America/New_York"
    assert shallow["parameters"] == {"max_depth": 4}


def test_flows_list_shows_schedules_as_the_spec_wrote_them(specs_dir: Path, prefect_server: str, registered: object) -> None:
    listed = _cli("flows", "list", api=prefect_server, cwd=specs_dir)
    assert listed.returncode == 0, listed.stderr
    assert "nightly: cron 0 2 * * * (Europe/Berlin)" in listed.stdout
    assert "weekly-big: rrule FREQ=WEEKLY;BYDAY=SU;BYHOUR=4 (UTC) (paused)" in listed.stdout
    assert "schedule-1: every 6 hours from " in listed.stdout and "(America/New_York)" in listed.stdout
    assert "DTSTART" not in listed.stdout


def test_registering_again_is_idempotent(specs_dir: Path, prefect_server: str, registered: dict[str, dict[str, object]]) -> None:
    result = _cli("flows", "deploy", str(specs_dir), api=prefect_server, cwd=specs_dir)
    assert result.returncode == 0, result.stderr
    again = _deployments(prefect_server)
    assert {k: d["id"] for k, d in again.items()} == {k: d["id"] for k, d in registered.items()}
    assert {k: sorted(s["slug"] for s in d["schedules"]) for k, d in again.items()} == {  # type: ignore[union-attr]
        "churn-classifier/lifecycle": ["nightly", "weekly-big"],
        "churn-shallow/lifecycle": ["schedule-1"],
    }
    assert "orphan" not in result.stdout


@pytest.fixture(scope="module")
def serving(specs_dir: Path, prefect_server: str, registered: dict[str, dict[str, object]]) -> Iterator[subprocess.Popen[str]]:
    """`mlflowkit flows serve` in its own process group, stopped (SIGTERM, then SIGKILL) after the module."""
    with flows_serve(specs_dir, prefect_server) as proc:
        yield proc


def test_a_run_started_through_the_api_with_a_param_completes_with_artifacts(
    specs_dir: Path, prefect_server: str, registered: dict[str, dict[str, object]], serving: subprocess.Popen[str]
) -> None:
    deployment_id = registered["churn-classifier/lifecycle"]["id"]
    started = time.perf_counter()
    flow_run = httpx.post(
        f"{prefect_server}/deployments/{deployment_id}/create_flow_run", json={"parameters": {"n_estimators": 40}}, timeout=10
    ).json()
    assert flow_run["parameters"]["n_estimators"] == 40
    deadline = time.time() + 300
    while True:
        state = httpx.get(f"{prefect_server}/flow_runs/{flow_run['id']}", timeout=10).json()
        if state["state_type"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}:
            break
        assert serving.poll() is None, (specs_dir / "serve.log").read_text()[-3000:]
        assert time.time() < deadline, f"flow run still {state['state_name']} after 300 s"
        time.sleep(1)
    assert state["state_type"] == "COMPLETED", (specs_dir / "serve.log").read_text()[-3000:]
    print(f"flow run completed {time.perf_counter() - started:.1f}s after it was created")
    # Tagged with spec and model when created, and with the version once register ran.
    assert {"mlflowkit", "spec:churn-classifier", "model:churn", "version:1"} <= set(state["tags"])

    artifacts = _post(
        prefect_server, "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run["id"]]}}, "limit": 50, "offset": 0}
    )
    keys = {a["key"] for a in artifacts}
    assert {
        "churn-classifier-checks-results",
        "churn-classifier-evaluate-metrics",
        "churn-classifier-gates-verdict",
        "churn-classifier-run-summary",
    } <= keys, keys
    summary = next(a for a in artifacts if a["key"] == "churn-classifier-run-summary")
    assert summary["type"] == "markdown" and "churn v1" in summary["data"]
    metrics = next(a for a in artifacts if a["key"] == "churn-classifier-evaluate-metrics")
    assert metrics["type"] == "table" and "roc_auc" in metrics["data"]

    # The run's record: the param from the API, the deployment that started it, and its report.
    store = specs_dir / "churn" / ".mlflowkit"
    (record_file,) = (store / "runs").glob("*.json")
    import json

    record = json.loads(record_file.read_text())
    assert record["params"]["n_estimators"] == 40
    assert record["flow_run_id"] == flow_run["id"]
    assert record["trigger"]["deployment"] == "churn-classifier/lifecycle" and record["trigger"]["scheduled"] is False
    assert (record["version"]["model"], record["version"]["version"], record["version"]["alias"]) == ("churn", 1, "champion")
    assert (store / record["report"]).is_file()

    # Run history reads the Prefect API: state and the deployment that started the run.
    listed = _cli("runs", "list", "--store", str(store), api=prefect_server, cwd=specs_dir)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if record["run_id"] in line)
    assert "Completed" in row and "deployment churn-classifier/lifecycle" in row and "churn v1" in row


def test_a_deleted_spec_is_reported_and_pruned(
    specs_dir: Path, prefect_server: str, registered: dict[str, dict[str, object]]
) -> None:
    gone = specs_dir / "churn-shallow"
    shutil.move(gone / "spec.yaml", specs_dir / "churn-shallow.yaml.bak")
    try:
        reported = _cli("flows", "deploy", str(specs_dir), api=prefect_server, cwd=specs_dir)
        assert reported.returncode == 0, reported.stderr
        assert "orphan: churn-shallow/lifecycle (its spec file was deleted" in reported.stdout
        assert "churn-shallow/lifecycle" in _deployments(prefect_server)  # reported, not deleted
        pruned = _cli("flows", "deploy", str(specs_dir), "--prune", api=prefect_server, cwd=specs_dir)
        assert pruned.returncode == 0, pruned.stderr
        assert "deleted: churn-shallow/lifecycle" in pruned.stdout
        assert sorted(_deployments(prefect_server)) == ["churn-classifier/lifecycle"]
    finally:
        shutil.move(specs_dir / "churn-shallow.yaml.bak", gone / "spec.yaml")
