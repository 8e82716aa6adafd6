"""Bad input a user can give: each is one line naming the field and what to do, exit 1 or 2, nothing written.

Validate (and so ``run``, which validates first) catches what can be known before a run; the load and
train steps catch the rest (data that changed after validate, or a spec loaded without the data check).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cli_run import run_cli

import mlflowkit
from mlflowkit.errors import StepFailed
from mlflowkit.kinds._source import source_problem
from mlflowkit.runtime.engine import run_spec
from mlflowkit.spec.load import load_spec
from mlflowkit.targets.triton_local import free_port

REPO = Path(__file__).resolve().parents[3]
HEAD = "spec: mlflowkit/v1\nname: bad\nrecipe: tabular-classification\n"


def _project(folder: Path, body: str) -> Path:
    shutil.copytree(REPO / "tests" / "specs" / "invalid" / "data", folder / "data")
    (folder / "spec.yaml").write_text(HEAD + body, encoding="utf-8")
    return folder / "spec.yaml"


def _cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(folder, *args)


CASES = {
    "source_is_a_folder": ("data: {source: data, target: churned}\n", "data.source", "is a folder, not a file", "name a CSV or Parquet file"),
    "source_is_a_device": ("data: {source: /dev/zero, target: churned}\n", "data.source", "/dev/zero is a device", "name a CSV or Parquet file"),
    "store_is_a_system_folder": (
        "store: /etc\ndata: {source: data/churn.csv, target: churned}\n",
        "store",
        "/etc is a system folder",
        "point store: at a folder",
    ),
    "gate_reads_no_metric": (
        "data: {source: data/churn.csv, target: churned}\ngates:\n  - 1 >= 0\n",
        "gates[0]",
        "reads no metric",
        "compare a metric",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_run_refuses_before_anything_is_written(name: str, tmp_path: Path) -> None:
    body, path, message, hint = CASES[name]
    _project(tmp_path, body)
    etc_before = sorted(os.listdir("/etc"))
    before = sorted(p.name for p in tmp_path.iterdir())
    result = _cli(tmp_path, "run", "spec.yaml")
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    (line,) = [text for text in output.splitlines() if text.startswith("spec.yaml:")]
    assert f": {path}: " in line and message in line, output
    assert f"hint: {hint}" in output
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no .mlflowkit/, no state, no run record
    assert sorted(os.listdir("/etc")) == etc_before


def test_a_source_on_a_host_that_cannot_be_reached_says_so_and_exits_2(tmp_path: Path) -> None:
    """Offline (here: a closed port on loopback), an https:// source names the host it cannot reach, not a missing object."""
    port = free_port()
    _project(tmp_path, f"data: {{source: 'https://127.0.0.1:{port}/churn.csv', target: churned}}\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = _cli(tmp_path, "run", "spec.yaml")
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output and "no object" not in output
    (line,) = [text for text in output.splitlines() if text.startswith("spec.yaml:")]
    assert ": data.source: " in line and f"cannot reach host 127.0.0.1:{port} (connection refused)" in line, output
    assert sorted(p.name for p in tmp_path.iterdir()) == before


class _NotFound(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_error(404)

    do_HEAD = do_GET

    def log_message(self, *args: object) -> None:
        pass


def test_a_host_that_answers_404_is_a_missing_object() -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), _NotFound) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            problem = source_problem(f"http://127.0.0.1:{server.server_address[1]}/no-such-file.csv")
        finally:
            server.shutdown()
    assert problem is not None and problem.message.startswith("no object at http://127.0.0.1:")


def test_a_source_that_became_a_folder_or_a_device_fails_the_load_step_in_one_line(tmp_path: Path) -> None:
    # Validated without the data check (as for data that exists only where the run happens), then run.
    for source, said in (("data", "is a folder, not a file"), ("/dev/zero", "is a device, not a data file")):
        folder = tmp_path / source.strip("/").replace("/", "-")
        folder.mkdir()
        spec = load_spec(_project(folder, f"data: {{source: {source}, target: churned}}\n"), read_data=False)
        result = run_spec(spec, mlflowkit.compile(spec), orchestrate=False)
        assert isinstance(result.exception, StepFailed), result.error
        assert result.exception.step == "load"
        assert said in result.exception.reason and "\n" not in result.exception.reason
        assert "name a CSV or Parquet file" in result.exception.reason


def test_a_target_with_one_class_stops_at_train_and_registers_nothing(tmp_path: Path) -> None:
    rows = "\n".join(f"{i},{i % 5},yes" for i in range(60))
    (tmp_path / "d.csv").write_text("a,b,churned\n" + rows + "\n")
    (tmp_path / "spec.yaml").write_text(HEAD + "data: {source: d.csv, target: churned}\n")
    spec = load_spec(tmp_path / "spec.yaml")
    result = run_spec(spec, mlflowkit.compile(spec), orchestrate=False)
    assert isinstance(result.exception, StepFailed), result.error
    assert result.exception.step == "train"
    assert "target 'churned' has 1 class (only 'yes') in the training split; a classifier needs two or more" in result.exception.reason
    assert [s.name for s in result.steps if s.status == "ran"] == ["load", "split", "checks"]
    assert not (tmp_path / ".mlflowkit" / "registry").exists() or not any((tmp_path / ".mlflowkit" / "registry").rglob("version.json"))


@pytest.mark.parametrize(
    ("how", "store", "said"),
    [
        ("env", "/proc/mlflowkit-store", "/proc/mlflowkit-store is a system folder"),
        ("env", "data/churn.csv", "data/churn.csv is a file, not a folder"),
        ("--store", "data/churn.csv", "data/churn.csv is a file, not a folder"),
    ],
)
def test_a_store_given_outside_the_spec_is_refused_the_same_way(
    how: str, store: str, said: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # validate checks spec.store at its line; --store and $MLFLOWKIT_STORE are only known when the run starts.
    _project(tmp_path, "data: {source: data/churn.csv, target: churned}\n")
    data = (tmp_path / "data" / "churn.csv").read_bytes()
    before = sorted(p.name for p in tmp_path.iterdir())
    if how == "env":
        monkeypatch.setenv("MLFLOWKIT_STORE", store)
        result = _cli(tmp_path, "run", "spec.yaml")
    else:
        monkeypatch.delenv("MLFLOWKIT_STORE", raising=False)
        result = _cli(tmp_path, "run", "spec.yaml", "--store", store)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    given = "$MLFLOWKIT_STORE" if how == "env" else "--store"
    assert f"{given}: store: {said}" in output, output
    assert f"hint: point {given} at a folder" in output
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "data" / "churn.csv").read_bytes() == data
