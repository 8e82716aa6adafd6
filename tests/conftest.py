"""Test session setup: Prefect isolated per session (own PREFECT_HOME, no analytics), shared fixtures.

Runs use mlflowkit's local Prefect server; the session gives it a home of its own (MLFLOWKIT_HOME),
any free port and a short idle stop, and stops it at the end. A test that needs a plain
`prefect server start` asks for ``prefect_server`` (started and stopped per module).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# Before anything imports prefect: one PREFECT_HOME per test session, never the user's.
_SESSION_HOME = tempfile.mkdtemp(prefix="mlflowkit-tests-prefect-")
os.environ["PREFECT_HOME"] = _SESSION_HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
os.environ.pop("PREFECT_API_URL", None)
os.environ["MLFLOWKIT_USER"] = "tester"
_MLFLOWKIT_HOME = tempfile.mkdtemp(prefix="mlflowkit-tests-home-")
os.environ["MLFLOWKIT_HOME"] = _MLFLOWKIT_HOME  # the session's local Prefect server lives here
os.environ["MLFLOWKIT_SERVER_PORT"] = "0"  # any free port: other sessions may run beside this one
os.environ["MLFLOWKIT_SERVER_IDLE_SECONDS"] = "900"  # a session that dies leaves no server for long

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "churn"

# The real-data matrix (tests/realdata) is a test env of its own: `tox -e realdata` sets this variable.
collect_ignore = [] if os.environ.get("MLFLOWKIT_REALDATA") else ["realdata"]
sys.path.insert(0, str(REPO / "tests" / "helpers"))


@pytest.fixture
def churn_project(tmp_path: Path) -> Path:
    """A fresh copy of the reference example (spec, data, custom steps), with no state."""
    dest = tmp_path / "churn"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns(".mlflowkit", "__pycache__"))
    return dest


# moto's S3 checks If-None-Match and then writes, in two steps; one request at a time makes that
# check-and-write atomic, as it is on S3 itself. Prints the port it listens on.
_MOTO_SERVER = """
import threading
from werkzeug.serving import make_server
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
app = DomainDispatcherApplication(create_backend_app)
one_at_a_time = threading.Lock()
def serial(environ, start_response):
    with one_at_a_time:
        return list(app(environ, start_response))
server = make_server("127.0.0.1", 0, serial, threaded=True, request_handler=MotoRequestHandler)
print(server.port, flush=True)
server.serve_forever()
"""
S3_BUCKET = "mlflowkit-test"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """An S3-compatible server on loopback (moto in server mode) for the session; its endpoint URL.

    Credentials and the endpoint reach s3fs/botocore the usual way, through ``AWS_*`` variables
    (set here for this process and the subprocesses it starts), never through a spec.
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", _MOTO_SERVER], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True
    )
    saved = {k: os.environ.get(k) for k in _S3_ENV}
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        assert line.isdigit(), f"moto server did not start (exit {proc.poll()})"
        endpoint = f"http://127.0.0.1:{line}"
        os.environ.update(
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",  # moto accepts any credentials
            AWS_DEFAULT_REGION="us-east-1",
            AWS_ENDPOINT_URL=endpoint,
        )
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_S3_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")


@pytest.fixture
def s3_root(s3_server: str) -> str:
    """A fresh ``s3://`` prefix on the session's S3 server."""
    return f"s3://{S3_BUCKET}/{uuid.uuid4().hex}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from mlflowkit.runtime.localapi import stop_server

    if "prefect" in sys.modules:  # the last runs' logs and events reach the server before it stops
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        for worker in (APILogWorker, EventsWorker):
            worker.drain_all(timeout=30)
    stop_server(Path(_MLFLOWKIT_HOME))
    shutil.rmtree(_SESSION_HOME, ignore_errors=True)
    shutil.rmtree(_MLFLOWKIT_HOME, ignore_errors=True)


def free_port() -> int:
    """A free TCP port on loopback."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `prefect server start` on a free loopback port (its own PREFECT_HOME); its API URL. Stopped after the module."""
    import subprocess
    import sys
    import time

    import httpx

    home = tmp_path_factory.mktemp("prefect-server-home")
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    log = open(home / "server.log", "w")  # closed in the teardown below
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.time() + 120
    try:
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (home / "server.log").read_text()[-2000:]
            assert time.time() < deadline, "prefect server did not come up in 120 s"
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
