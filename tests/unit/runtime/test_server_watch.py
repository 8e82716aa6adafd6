"""A run watching its local Prefect server: a dead server finishes the record as failed and tells the caller once;
a run that had finished already is left to end as it would have. The "server" is a real process whose command
line names the server module (all the watch looks at); killing it is the server dying."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from runtime_project import Project

from mlflowkit.errors import MlflowkitError
from mlflowkit.runtime.flow import _ended_if_server_dies
from mlflowkit.runtime.localapi import SERVER_MODULE, ServerInfo
from mlflowkit.runtime.locations import store_root
from mlflowkit.runtime.record import RunSession
from mlflowkit.runtime.runner import Runner


@pytest.fixture
def server() -> Iterator[tuple[ServerInfo, subprocess.Popen[bytes]]]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", SERVER_MODULE])
    info = ServerInfo(proc.pid, 9, socket.gethostname(), "0", "0", ui=False, idle_seconds=60, started_at=time.time())
    try:
        yield info, proc
    finally:
        proc.kill()
        proc.wait()


def _watchers_done(deadline: float = 30) -> None:
    end = time.monotonic() + deadline  # a hang guard
    while any(t.name == "mlflowkit-server-watch" for t in threading.enumerate()):
        assert time.monotonic() < end, "the watch never ended"
        time.sleep(0.05)


def _session(project: Project) -> tuple[Runner, RunSession]:
    spec, plan = project()
    runner = Runner(spec, plan, store_root(spec))
    return runner, RunSession(runner)


def _dies(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait()
    _watchers_done()


def test_a_dead_server_fails_the_record_and_tells_the_caller_once(project: Project, server: tuple[ServerInfo, subprocess.Popen[bytes]]) -> None:
    info, proc = server
    runner, session = _session(project)
    told: list[MlflowkitError] = []
    with _ended_if_server_dies(info, session, told.append):
        runner.execute("load", {})
        _dies(proc)
    assert len(told) == 1 and f"the local Prefect server (pid {info.pid}, " in str(told[0])
    assert "server.log" in str(told[0]) and "mlflowkit server start" in str(told[0])
    record = runner.store.read_json(f"runs/{runner.run_id}.json")
    assert record["status"] == "failed" and record["error"] == str(told[0])
    assert [s["status"] for s in record["steps"]] == ["ran", "skipped", "skipped", "skipped"]


def test_a_run_that_had_finished_is_left_to_end_as_it_would_have(
    project: Project, server: tuple[ServerInfo, subprocess.Popen[bytes]]
) -> None:
    info, proc = server
    runner, session = _session(project)
    told: list[MlflowkitError] = []
    with _ended_if_server_dies(info, session, told.append):
        runner.run_inline()
        result = session.finish()  # the flow finished the record, then the server went
        _dies(proc)
    assert told == [] and result.ok
    assert runner.store.read_json(f"runs/{runner.run_id}.json")["status"] == "completed"
