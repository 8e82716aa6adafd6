"""The device under stress, in real processes: a pull killed mid-download, and `serve` fed bad input on loopback."""

from __future__ import annotations

import http.client
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helpers"))
from edge_helpers import CLI, Exported, edge, predict_version, publish, row, shared_keys, shared_models

from mlflowkit.edge.device import FAULT_SLOW_DOWNLOAD_ENV, Device
from mlflowkit.edge.signing import load_public_key


@pytest.fixture(scope="session")
def models() -> tuple[list[Exported], pd.DataFrame]:
    return shared_models()


@pytest.fixture(scope="session")
def keys() -> tuple[Path, Path]:
    return shared_keys()




def test_a_pull_killed_mid_download_leaves_v1_serving_and_the_next_pull_succeeds(tmp_path: Path, models, keys) -> None:  # type: ignore[no-untyped-def]
    exported, test = models
    private, public = keys
    location, device = tmp_path / "published", tmp_path / "device"
    publish(location, private, exported[0], 1, test)
    Device(device).pull(str(location / "churn"), channel="stable", public_key=load_public_key(str(public)))
    publish(location, private, exported[1], 2, test)

    # Fault injection: the pull sleeps after every 1 KiB chunk, so it is surely mid-copy when killed.
    env = {**os.environ, FAULT_SLOW_DOWNLOAD_ENV: "0.2"}
    argv = [*CLI, "edge", "pull", "--source", str(location / "churn"), "--dir", str(device), "--public-key", str(public)]
    pull = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert pull.stderr is not None
        for line in pull.stderr:  # wait until it has written part of model.onnx
            if line.startswith("FAULT slow download: model.onnx"):
                break
        else:
            pytest.fail("the pull never started copying model.onnx")
        staged = list((device / ".staging").glob("*/model.onnx"))
        assert staged and staged[0].stat().st_size < len(exported[1][0])  # half a model on disk
        pull.send_signal(signal.SIGKILL)
    finally:
        pull.kill()
        pull.wait(timeout=30)
        if pull.stderr is not None:
            pull.stderr.close()
    assert pull.returncode == -signal.SIGKILL

    # The device still runs v1, from a fresh process, and the half download is not a bundle.
    assert os.readlink(device / "current") == "bundles/churn-v1"
    assert predict_version(device, test) == 1
    assert sorted(p.name for p in (device / "bundles").iterdir()) == ["churn-v1"]

    # The next pull cleans the leftovers and installs v2.
    again = edge("pull", "--source", str(location / "churn"), "--dir", str(device), "--public-key", str(public), check=True)
    assert json.loads(again.stdout)["status"] == "installed"
    assert predict_version(device, test) == 2
    assert not list((device / ".staging").glob("*")) if (device / ".staging").exists() else True
    assert Device(device).status()["previous"]["version"] == 1


# ---------------------------------------------------------------------------------------------- serve


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Client:
    def __init__(self, port: int) -> None:
        self.port = port

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            conn.close()

    def predict(self, payload: Any) -> tuple[int, Any]:
        return self.request("POST", "/predict", json.dumps(payload).encode())


@pytest.fixture
def served(tmp_path: Path, models, keys) -> Iterator[tuple[Client, subprocess.Popen[str], Path, Path]]:  # type: ignore[no-untyped-def]
    exported, test = models
    private, public = keys
    location, device = tmp_path / "published", tmp_path / "device"
    publish(location, private, exported[0], 1, test)
    edge("pull", "--source", str(location / "churn"), "--dir", str(device), "--public-key", str(public), check=True)
    port = free_port()
    server = subprocess.Popen(
        [*CLI, "edge", "serve", "--dir", str(device), "--port", str(port), "--log-predictions", str(tmp_path / "predictions.jsonl")],
        stderr=subprocess.PIPE,
        text=True,
    )
    client = Client(port)
    deadline = time.monotonic() + 60
    while True:
        try:
            if client.request("GET", "/health")[0] == 200:
                break
        except OSError:
            pass
        assert server.poll() is None, server.stderr.read() if server.stderr else ""
        assert time.monotonic() < deadline, "the server did not come up"
        time.sleep(0.1)
    try:
        yield client, server, location, device
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if server.stderr is not None:
            server.stderr.close()


def test_serve_answers_bad_input_with_clear_4xx_and_keeps_serving(served, models) -> None:  # type: ignore[no-untyped-def]
    client, server, _, _ = served
    _, test = models
    good = row(test)

    def still_serving() -> None:
        status, health = client.request("GET", "/health")
        assert status == 200 and health["version"] == 1
        status, answer = client.predict(good)
        assert status == 200 and answer["version"] == 1 and answer["predictions"][0] in ("yes", "no")
        assert server.poll() is None

    still_serving()
    status, contract = client.request("GET", "/contract")
    assert status == 200 and contract["contract"]["features"] == list(good)
    assert contract["contract"]["input_policy"] == {"nan": "reject"}

    columns = {k: [v, v] for k, v in good.items()}
    cases: list[tuple[str, bytes, int, str, str]] = [
        (
            "wrong dtype",
            json.dumps(good | {"age": "forty"}).encode(),
            422,
            "dtype",
            "inputs.age[0]: expected a number (float32), got a string ('forty')",
        ),
        (
            "wrong dtype (bool)",
            json.dumps(good | {"contract": True}).encode(),
            422,
            "dtype",
            "inputs.contract[0]: expected a string, got a boolean (true)",
        ),
        (
            "wrong shape (nested)",
            json.dumps({"inputs": columns | {"age": [[30], [31]]}}).encode(),
            422,
            "shape",
            "inputs.age[0]: expected a number (float32), got a list of 1",
        ),
        (
            "wrong shape (lengths)",
            json.dumps({"inputs": columns | {"age": [30]}}).encode(),
            422,
            "shape",
            "every column needs the same number of rows",
        ),
        (
            "wrong shape (scalar column)",
            json.dumps({"inputs": columns | {"age": 30}}).encode(),
            422,
            "shape",
            "inputs.age: expected a list with one value per row",
        ),
        (
            "extra field",
            json.dumps(good | {"favourite_colour": "green"}).encode(),
            422,
            "unknown_field",
            "unknown field(s) favourite_colour",
        ),
        (
            "missing field",
            json.dumps({k: v for k, v in good.items() if k != "tenure_months"}).encode(),
            422,
            "missing_field",
            "missing field(s) tenure_months",
        ),
        (
            "NaN",
            json.dumps(good | {"monthly_charges": math.nan}).encode(),
            422,
            "nan",
            "inputs.monthly_charges[0]: nan is not allowed (NaN policy: reject)",
        ),
        (
            "null",
            json.dumps(good | {"gender": None}).encode(),
            422,
            "nan",
            "inputs.gender[0]: missing value is not allowed (NaN policy: reject)",
        ),
        ("not JSON", b"{age: 30", 400, "invalid_json", "the body is not valid JSON"),
        ("nested too deeply", b"[" * 200_000 + b"]" * 200_000, 400, "invalid_json", "the body nests too deeply"),
        (
            "10 MB body",
            b'{"inputs": {"age": [' + b"1," * (5 << 20) + b"1]}}",
            413,
            "body_too_large",
            "the limit is 1048576 bytes",
        ),
    ]
    for label, body, want_status, code, text in cases:
        status, answer = client.request("POST", "/predict", body)
        assert status == want_status, (label, answer)
        error = answer["error"]
        assert text in error["message"], (label, error)
        if "details" in error and want_status == 422:
            assert code in {d["code"] for d in error["details"]}, (label, error)
        still_serving()

    # Every problem of a request at once, not the first only.
    status, answer = client.predict(good | {"age": "x", "gender": 3, "extra": 1})
    assert status == 422 and {d["code"] for d in answer["error"]["details"]} == {"dtype", "unknown_field"}
    assert len(answer["error"]["details"]) == 3
    # Wrong routes and methods are clear too.
    assert client.request("GET", "/nope")[0] == 404
    assert client.request("GET", "/predict")[0] == 405
    still_serving()


def test_serve_follows_a_pull_and_keeps_the_old_bundle_when_the_new_one_fails(served, models, keys) -> None:  # type: ignore[no-untyped-def]
    client, server, location, device = served
    exported, test = models
    private, public = keys
    publish(location, private, exported[1], 2, test)
    edge("pull", "--source", str(location / "churn"), "--dir", str(device), "--public-key", str(public), check=True)
    status, answer = client.predict(row(test))
    assert status == 200 and answer["version"] == 2  # the next request after the pull
    # A bundle damaged on the device itself (after its pull verified it) is refused at load: v2 keeps answering.
    edge("rollback", "--dir", str(device), check=True)
    status, answer = client.predict(row(test))
    assert status == 200 and answer["version"] == 1
    (device / "bundles" / "churn-v2" / "model.onnx").write_bytes(b"garbage")
    os.replace(device / "current", device / "current.bak")
    os.symlink("bundles/churn-v2", device / "current")
    status, answer = client.predict(row(test))
    assert status == 200 and answer["version"] == 1
    status, health = client.request("GET", "/health")
    assert health["version"] == 1 and "modified-file" in health["last_refused"]
    assert server.poll() is None


def test_serve_logs_sampled_predictions_that_monitor_reads(served, models) -> None:  # type: ignore[no-untyped-def]
    from mlflowkit.runtime.monitor import read_live

    client, server, _, device = served
    _, test = models
    rows = [row(test, i) for i in range(5)]
    assert client.predict(rows)[0] == 200  # records
    columns = {k: [r[k] for r in rows[:3]] for k in rows[0]}
    assert client.predict({"inputs": columns})[0] == 200  # columns
    assert client.predict({"inputs": {"nope": [1]}})[0] == 422  # refused: not logged
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=15)
    log = device.parent / "predictions.jsonl"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == 8 and {line["version"] for line in lines} == {1}
    assert lines[0]["inputs"] == rows[0] and lines[5]["inputs"] == rows[0]
    assert all(line["label"] in ("yes", "no") and set(line["probabilities"]) == {"yes", "no"} for line in lines)
    live = read_live(str(log))
    assert len(live) == 8 and set(rows[0]) <= set(live.columns) and set(live["prediction"]) <= {"yes", "no"}
