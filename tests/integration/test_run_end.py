"""The end of a run as people see it: the terminal (`mlflowkit run`), and the flow run in the Prefect UI.

Real Prefect (the session's local server), read back through its REST API; the CLI runs as a subprocess on
a four-step project (tests/helpers/runtime_project.py), so each run takes seconds.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cli_run import run_cli
from runtime_project import STEPS, make_project

from mlflowkit.runtime.engine import RunResult, run_spec
from mlflowkit.runtime.localapi import running_server

pytestmark = [pytest.mark.prefect]

REFUSING = STEPS.replace(
    "def second(df):\n    return df\n",
    "def second(df):\n    raise __import__('mlflowkit').StepFailed('second', 'rows 3 and 4 are bad')\n",
)
RAISING = STEPS.replace("def second(df):\n    return df\n", "def second(df):\n    return df['no such column']\n")


def _api(path: str, body: dict[str, Any] | None = None) -> Any:
    info = running_server(Path(os.environ["MLFLOWKIT_HOME"]))
    assert info is not None, "the session's local Prefect server is not running"
    data = None if body is None else json.dumps({"limit": 200, **body}).encode()
    request = urllib.request.Request(f"{info.url}{path}", data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _flow_run(result: RunResult) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]], str]:
    """The flow run's state, its task runs, its logs, and its run-summary artifact's markdown."""
    from prefect.logging.handlers import APILogHandler

    assert result.flow_run_id
    APILogHandler().flush()  # logs go to the server in batches; at exit otherwise
    flow_run = _api(f"/flow_runs/{result.flow_run_id}")
    ids = {"any_": [result.flow_run_id]}
    tasks = _api("/task_runs/filter", {"flow_runs": {"id": ids}})
    logs = _api("/logs/filter", {"logs": {"flow_run_id": ids}})
    artifacts = _api("/artifacts/filter", {"artifacts": {"flow_run_id": ids}})
    (summary,) = [a["data"] for a in artifacts if (a["key"] or "").endswith("run-summary")]
    return flow_run, tasks, logs, summary


def test_a_refusal_fails_the_flow_run_with_its_message_and_every_task_keeps_its_name(tmp_path: Path) -> None:
    spec, plan = make_project(tmp_path, steps=REFUSING)
    result = run_spec(spec, plan, orchestrate=True, verbose=False)
    assert not result.ok and result.error == "step 'second' failed: rows 3 and 4 are bad"

    flow_run, tasks, logs, summary = _flow_run(result)
    # A failed run with mlflowkit's message, not an engine crash.
    assert (flow_run["state"]["type"], flow_run["state"]["message"]) == ("FAILED", result.error)
    # Tasks that never ran are named after their step (not `last-4f6`) and say why they did not run.
    states = {t["name"]: (t["state"]["type"], t["state"]["name"]) for t in tasks}
    assert states == {
        "load": ("COMPLETED", "Completed"),
        "first": ("COMPLETED", "Completed"),
        "second": ("FAILED", "Failed"),
        "last": ("COMPLETED", "Skipped"),
    }
    messages = [(log["level"], log["message"]) for log in logs]
    assert (20, "registered: nothing: the run stopped at step second") in messages
    assert (40, result.error) in messages
    assert not any("NotReady" in m or "NoneType" in m for _, m in messages), messages
    assert "| registered | nothing: the run stopped at step second |" in summary
    assert f"`{result.report_path}`" in summary and Path(str(result.report_path)).is_file()


def test_a_successful_run_logs_at_info_and_its_summary_carries_the_report(tmp_path: Path) -> None:
    spec, plan = make_project(tmp_path)
    result = run_spec(spec, plan, orchestrate=True, verbose=False)
    assert result.ok, result.error

    flow_run, tasks, logs, summary = _flow_run(result)
    assert flow_run["state"]["type"] == "COMPLETED"
    assert sorted(t["name"] for t in tasks) == ["first", "last", "load", "second"]
    infos = [log["message"] for log in logs if log["level"] == 20]
    assert f"report: {result.report_path} (`mlflowkit report {result.run_id}`)" in infos, infos
    assert "registered: nothing: no step of this spec registers a model" in infos
    assert summary.startswith("# chain: completed") and f"`{result.report_path}`" in summary


def test_a_refused_deployment_run_is_a_failed_flow_run_with_the_reason(tmp_path: Path) -> None:
    """A flow run started from a deployment with a param that breaks the spec: failed, saying why, no traceback."""
    from mlflowkit.flows.entry import spec_flow
    from mlflowkit.runtime.flow import prefect_settings

    make_project(tmp_path, spec_extra="params: {source: t.csv}\n")
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(spec_file.read_text().replace("source: t.csv, target", "source: '${params.source}', target"))
    with prefect_settings():
        state = spec_flow(spec_file)(source="missing.csv", return_state=True)
    flow_run_id = str(state.state_details.flow_run_id)
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
    flow_run = _api(f"/flow_runs/{flow_run_id}")
    assert flow_run["state"]["type"] == "FAILED", flow_run["state"]
    assert "missing.csv" in flow_run["state"]["message"] and "Engine" not in flow_run["state"]["message"]
    logs = _api("/logs/filter", {"logs": {"flow_run_id": {"any_": [flow_run_id]}}})
    assert not any("Encountered exception" in log["message"] for log in logs), [log["message"] for log in logs]


def test_the_cli_prints_a_failures_cause_once_with_a_hint_and_prefects_lines_only_with_v(tmp_path: Path) -> None:
    make_project(tmp_path, steps=REFUSING)
    quiet = run_cli(tmp_path, "run", "spec.yaml")
    assert quiet.returncode == 1
    said = quiet.stdout + quiet.stderr
    assert said.count("rows 3 and 4 are bad") == 1, said
    assert "error: step 'second' failed: rows 3 and 4 are bad" in quiet.stderr
    assert "hint: " in quiet.stderr and "failed at step second in " in quiet.stderr
    assert "registered nothing: the run stopped at step second" in quiet.stdout
    for noise in ("NotReady", "NoneType", "Finished in state", "Traceback", "ERROR"):
        assert noise not in said, noise

    verbose = run_cli(tmp_path, "run", "spec.yaml", "-v")
    assert verbose.returncode == 1
    assert "Finished in state Failed" in verbose.stderr and "Finished in state Skipped" in verbose.stderr


def test_the_cli_hint_names_the_line_of_a_users_step_that_raised(tmp_path: Path) -> None:
    make_project(tmp_path, steps=RAISING)
    ran = run_cli(tmp_path, "run", "spec.yaml")
    assert ran.returncode == 1
    line = RAISING.splitlines().index("    return df['no such column']") + 1
    assert f"hint: raised at chain_steps.py:{line} in second (-v shows the traceback)" in ran.stderr, ran.stderr
    assert "Traceback" not in ran.stdout + ran.stderr


def test_the_cli_names_the_report_and_opens_it_with_open(tmp_path: Path) -> None:
    make_project(tmp_path)
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\nprintf "%s" "$1" > {opened}\n')
    browser.chmod(0o755)
    env = {**os.environ, "BROWSER": str(browser)}
    ran = subprocess.run(
        [sys.executable, "-c", "from mlflowkit.cli import main; main()", "run", "spec.yaml", "--open"],
        cwd=tmp_path, env={**env, "COLUMNS": "200"}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    (report_line,) = [line for line in ran.stdout.splitlines() if line.startswith("report ")]
    report = Path(report_line.split(None, 1)[1])
    assert report.is_absolute() and report.is_file() and report.name == "report.html"
    assert "registered nothing: no step of this spec registers a model" in ran.stdout
    assert ran.stdout.splitlines()[-1].startswith("done in ")
    assert opened.read_text() == report.as_uri()


def test_no_prefect_telemetry_banner_in_a_terminal(tmp_path: Path) -> None:
    """Prefect prints a telemetry notice the first time it is imported in a terminal; a run never shows it."""
    code = "from mlflowkit.runtime.flow import prefect_settings\nwith prefect_settings():\n    import prefect.main\nprint('ok')\n"
    ci = {"CI", "GITHUB_ACTIONS", "GITLAB_CI", "BUILDKITE", "JENKINS_URL", "TF_BUILD", "CIRCLECI", "TRAVIS", "DO_NOT_TRACK"}
    env = {k: v for k, v in os.environ.items() if k not in ci} | {
        "PREFECT_HOME": str(tmp_path / "home"),  # a first import: no notice shown before
        "PREFECT_API_URL": "http://127.0.0.1:9/api",  # a configured server: nothing is started
    }

    def first_import(source: str) -> str:
        pid, fd = pty.fork()
        if pid == 0:  # the child: a terminal on stdin, stdout and stderr
            os.execve(sys.executable, [sys.executable, "-c", source], env)
        chunks = []
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.waitpid(pid, 0)
        return b"".join(chunks).decode(errors="replace")

    assert "anonymous usage" in first_import("import prefect.main\nprint('ok')\n")  # what a bare import shows
    (tmp_path / "home").rename(tmp_path / "home-before")
    shown = first_import(code)
    assert "ok" in shown and "anonymous usage" not in shown, shown
