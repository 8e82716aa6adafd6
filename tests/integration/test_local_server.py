"""The local Prefect server: one per user, reused, replaced when stale, off a taken port, stopped when idle; killed and
concurrent runs. Real servers and real CLI processes, under a home of this module's own: these tests stop and
replace its server, which must not be the one the rest of the session's runs talk to."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from local_server import flow_run  # tests/helpers, on sys.path through conftest
from runtime_project import make_project

from mlflowkit.runtime import localapi
from mlflowkit.runtime.flow import prefect_settings

pytestmark = [pytest.mark.prefect]

CLI = [sys.executable, "-c", "from mlflowkit.cli import main; main()"]


@pytest.fixture(scope="module", autouse=True)
def _own_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """MLFLOWKIT_HOME for this module only (its database migrated once here); its server stopped at the end."""
    home = tmp_path_factory.mktemp("local-server-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOWKIT_HOME", str(home))
        mp.setattr(localapi, "_used_port", None)  # this process's other runs talk to the session's server
        try:
            yield home
        finally:
            localapi.stop_server(home)


def _home() -> Path:
    return Path(os.environ["MLFLOWKIT_HOME"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]


def _cli(cwd: Path, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([*CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False, **kwargs)  # type: ignore[call-overload,no-any-return]


@pytest.mark.slow
def test_a_running_server_is_reused_and_a_stale_one_from_another_version_is_replaced() -> None:
    first = localapi.ensure_server()
    assert localapi.ensure_server().pid == first.pid  # found again through its state file, not started again
    # The state file now says an older mlflowkit started it: the server is stopped and a current one started.
    localapi.write_state(replace(first, mlflowkit="0.0.1"), _home())
    second = localapi.ensure_server()
    assert second.pid != first.pid and second.mlflowkit != "0.0.1"
    assert not _alive(first.pid)
    assert localapi.running_server() == second


def test_a_taken_port_moves_the_server_to_a_free_one(monkeypatch: pytest.MonkeyPatch) -> None:
    localapi.stop_server()
    monkeypatch.setattr(localapi, "_used_port", None)  # no earlier port of this process to take back
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        monkeypatch.setenv(localapi.PORT_ENV, str(port))
        info = localapi.ensure_server()
        assert info.port != port and localapi.running_server() == info


def test_a_state_file_naming_a_foreign_process_is_not_trusted() -> None:
    """A pid reused by another program (here: this test) is neither signalled nor talked to."""
    info = localapi.ensure_server()
    localapi.write_state(replace(info, pid=os.getpid()), _home())
    assert localapi.running_server() is None
    assert localapi.stop_server() is None and _alive(os.getpid())  # not signalled
    localapi.write_state(info, _home())
    assert localapi.running_server() == info


@pytest.mark.slow
def test_an_idle_server_stops_itself_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    localapi.stop_server()
    monkeypatch.setenv(localapi.IDLE_ENV, "1")
    info = localapi.ensure_server()
    deadline = time.monotonic() + 30
    while _alive(info.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(info.pid)
    assert not (_home() / "server.json").exists()  # it removed its own state file
    status = _cli(_home(), "server", "status")
    assert status.returncode == 1 and "not running" in status.stdout


@pytest.mark.slow
def test_server_cli_status_stop_start(tmp_path: Path) -> None:
    info = localapi.ensure_server()
    status = _cli(tmp_path, "server", "status")
    assert status.returncode == 0 and f"pid {info.pid}" in status.stdout and info.url in status.stdout
    stopped = _cli(tmp_path, "server", "stop")
    assert stopped.returncode == 0 and f"pid {info.pid}" in stopped.stdout
    assert not _alive(info.pid) and localapi.running_server() is None
    started = _cli(tmp_path, "server", "start")
    assert started.returncode == 0, started.stderr
    again = localapi.running_server()
    assert again is not None and f"pid {again.pid}" in started.stdout


def test_a_configured_server_takes_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOWKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    with prefect_settings():
        assert os.environ["PREFECT_API_URL"] == "http://127.0.0.1:9/api"
    assert not (tmp_path / "home").exists()  # no local server was started, nothing was written for one


def test_two_terminals_run_at_once_on_one_server(tmp_path: Path) -> None:
    make_project(tmp_path)
    localapi.stop_server()  # both runs race to start it
    env = {**os.environ, "COLUMNS": "200"}
    procs = [
        subprocess.Popen([*CLI, "run", "spec.yaml"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    records = [json.loads(p.read_text()) for p in (tmp_path / ".mlflowkit" / "runs").glob("*.json")]
    assert sorted(r["status"] for r in records) == ["completed", "completed"]
    assert len({r["flow_run_id"] for r in records}) == 2
    for r in records:
        assert flow_run(r["flow_run_id"])["state_type"] == "COMPLETED"  # both on the one local server


SLOW_STEPS = """\
import pathlib, time


def first(df):
    pathlib.Path("started").touch()
    time.sleep(300)
    return df


def second(df):
    return df
"""


def test_a_killed_run_is_marked_killed_and_leaves_no_process_of_its_own(tmp_path: Path) -> None:
    make_project(tmp_path, steps=SLOW_STEPS)
    server = localapi.ensure_server()
    proc = subprocess.Popen([*CLI, "run", "spec.yaml"], cwd=tmp_path, stdout=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "started").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the run never reached its slow step"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)

    # Nothing of the run's process group is left (the report writer and the server are not in it).
    leftovers = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True, check=False).stdout.split()
    assert leftovers == []
    # The server is the user's, tracked, still answering, and will stop when idle: no orphan.
    assert localapi.running_server() == server

    listed = _cli(tmp_path, "runs", "list")
    assert listed.returncode == 0 and "killed" in listed.stdout and "running" not in listed.stdout
    record = json.loads(next((tmp_path / ".mlflowkit" / "runs").glob("*.json")).read_text())
    assert record["status"] == "running" and record["pid"] == proc.pid  # on disk as left; read back as killed
    assert flow_run(record["flow_run_id"])["state_type"] == "RUNNING"  # named as soon as the flow run existed
    # The record was written again when `load` ended: the killed run shows it, its time, and how long it ran.
    assert [(s["name"], s["status"]) for s in record["steps"]] == [("load", "ran")]
    assert 0 < record["steps"][0]["seconds"] <= record["seconds"]
    shown = _cli(tmp_path, "runs", "show", record["run_id"])
    assert "killed" in shown.stdout and f"process {proc.pid}" in shown.stdout
    assert "killed in 0.00s" not in shown.stdout
    assert any(line.split()[:3] == ["│", "load", "│"] for line in shown.stdout.splitlines()), shown.stdout


def test_a_run_whose_server_dies_ends_at_once_and_says_so(tmp_path: Path) -> None:
    """Prefect's client would retry each request for about a minute: the run notices the dead server and ends."""
    make_project(tmp_path, steps=SLOW_STEPS)
    server = localapi.ensure_server()
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen([*CLI, "run", "spec.yaml"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "started").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the run never reached its slow step"
            time.sleep(0.1)
        state = localapi.read_state(_home())
        assert state is not None and state.pid == server.pid
        os.kill(state.pid, signal.SIGKILL)
        killed = time.monotonic()
        out, err = proc.communicate(timeout=120)
        took = time.monotonic() - killed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert took < 60, f"the run took {took:.0f}s to end after its server died"  # a hang guard, not a benchmark
    assert proc.returncode == 1, out + err
    assert "Traceback" not in out + err
    (line,) = [text for text in err.splitlines() if text.strip()]
    assert line.startswith(f"error: the local Prefect server (pid {server.pid}, ") and "stopped during the run" in line
    assert str(_home() / "server.log") in line and "mlflowkit server start" in line
    record = json.loads(next((tmp_path / ".mlflowkit" / "runs").glob("*.json")).read_text())
    assert record["status"] == "failed" and record["error"] == line.removeprefix("error: ")
    assert [(s["name"], s["status"]) for s in record["steps"] if s["status"] != "skipped"] == [("load", "ran")]
    assert not list((tmp_path / ".mlflowkit").rglob("version.json"))  # nothing registered
    assert localapi.ensure_server().pid != server.pid  # the next run starts a new one


def test_a_server_started_again_for_this_process_takes_its_port_back() -> None:
    """Prefect's in-process services keep the first API URL: a notebook's next run after an idle stop needs the same one."""
    first = localapi.ensure_server()
    localapi.stop_server()
    again = localapi.ensure_server()
    assert again.pid != first.pid and again.url == first.url



@pytest.mark.slow
def test_a_watched_server_outlives_its_idle_time_and_stops_once_unwatched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A step may send the server nothing for longer than its idle time: the run's watch keeps it up.

    A new home, so the server migrates its database first (longer than its idle time here): its idle clock
    starts once it answers, not when it was launched.
    """
    monkeypatch.setenv(localapi.IDLE_ENV, "2")
    info = localapi.ensure_server(home=tmp_path)
    gone: list[localapi.ServerInfo] = []
    try:
        with localapi.watch_server(info, gone.append):
            time.sleep(7)
        assert gone == [] and localapi.running_server(tmp_path) == info
        deadline = time.monotonic() + 30
        while _alive(info.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(info.pid)  # unwatched, it stops when idle as before
    finally:
        localapi.stop_server(tmp_path)
