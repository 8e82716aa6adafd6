"""Hyper-parameter search on real Ray: same best as a serial loop, seeded, retried, on a given cluster, in a flow.

One local Ray instance (2 CPUs) serves the whole module; the kind sees it running and leaves it up.
The cluster test starts a head of its own with ``ray start`` and stops only that head's processes.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mlflowkit
from mlflowkit.errors import RegistryError, StepFailed
from mlflowkit.kinds._frames import load_frame
from mlflowkit.runtime.engine import RunResult, run_spec
from mlflowkit.store import ArtifactStore, ModelRegistry, Ref

pytestmark = [pytest.mark.ray]

HELPERS = Path(__file__).resolve().parent.parent / "helpers"
REPO = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(scope="module")  # one Ray for the module; shut down before other tests run
def ray_local() -> Iterator[Any]:
    """A local Ray instance for the session; its workers can import tests/helpers."""
    import ray  # installed with the dev extras; a missing Ray must fail, not skip
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HELPERS), *([saved] if saved else [])])  # workers inherit it
    sys.path.insert(0, str(HELPERS))
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        sys.path.remove(str(HELPERS))
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def _project(folder: Path, train: str, *, rows: int = 400, name: str = "hpo") -> Path:
    """A spec and a numeric CSV (a seeded make_classification) in ``folder``."""
    from sklearn.datasets import make_classification

    folder.mkdir(parents=True, exist_ok=True)
    x, y = make_classification(n_samples=rows, n_features=6, n_informative=4, flip_y=0.1, random_state=3)
    lines = ["f0,f1,f2,f3,f4,f5,label"] + [",".join(f"{v:.6f}" for v in row) + f",{t}" for row, t in zip(x, y, strict=True)]
    (folder / "data.csv").write_text("\n".join(lines) + "\n")
    spec = f"""\
        spec: mlflowkit/v1
        name: {name}
        recipe: tabular-classification
        data:
          source: data.csv
          target: label
        evaluate: {{metrics: [accuracy, roc_auc]}}
        register: {{model: {name}}}
        """
    (folder / "spec.yaml").write_text(textwrap.dedent(spec) + train)
    return folder


def _run(project: Path, **kw: Any) -> RunResult:
    spec = mlflowkit.load_spec(project / "spec.yaml")
    return run_spec(spec, mlflowkit.compile(spec), **kw)


def _outputs(result: RunResult, step: str = "train") -> dict[str, Ref]:
    record = next(s for s in result.steps if s.name == step)
    return {k: Ref.model_validate(v) for k, v in record.outputs.items()}


FOREST = """\
train:
  estimator: sklearn.ensemble.RandomForestClassifier
  params: {n_estimators: 15}
  preprocess: none
  seed: 5
"""


def test_grid_on_ray_finds_the_serial_loops_best(ray_local: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    search = """\
  search:
    space:
      max_depth: [2, 4, 8]
      min_samples_leaf: [1, 8]
    cv: 3
    metric: roc_auc
"""
    project = _project(tmp_path / "p", FOREST + search)
    caplog.set_level(logging.INFO, logger="mlflowkit")
    result = _run(project, orchestrate=False)
    assert result.ok, result.error

    out = _outputs(result)
    meta = out["model"].meta["search"]
    store = ArtifactStore(project / ".mlflowkit")
    train = load_frame(store, _outputs(result, "split")["train"])
    x, y = train.drop(columns=["label"]), train["label"]

    # The serial loop: scikit-learn's own cross_val_score over the same grid, splitter and seed.
    splitter = StratifiedKFold(n_splits=3, shuffle=True, random_state=5)
    grid = [{"max_depth": d, "min_samples_leaf": m} for d in (2, 4, 8) for m in (1, 8)]
    serial = [
        cross_val_score(RandomForestClassifier(n_estimators=15, random_state=5, **p), x, y, cv=splitter, scoring="roc_auc")
        for p in grid
    ]
    best = max(range(len(grid)), key=lambda i: (serial[i].mean(), -i))
    assert meta["best_params"] == grid[best]
    assert [t["params"] for t in meta["trials"]] == grid
    assert [t["mean"] for t in meta["trials"]] == pytest.approx([s.mean() for s in serial], abs=1e-12)
    assert [t["std"] for t in meta["trials"]] == pytest.approx([s.std() for s in serial], abs=1e-12)
    assert meta["ray"]["started_local"] is False  # the session's instance was reused, not a new one
    assert sorted(t["rank"] for t in meta["trials"]) == list(range(1, 7))

    # The final model is refit on the whole training split with the best params.
    assert out["model"].meta["params"] == {"n_estimators": 15, "random_state": 5, **grid[best]}
    assert json.loads(store.get_bytes(out["trials"]))["trials"] == meta["trials"]
    report = store.read_json(f"reports/{result.run_id}/train-trials.json")
    assert [row["trial"] for row in report["rows"]] == list(range(1, 7))
    assert {row["max_depth"] for row in report["rows"]} == {2, 4, 8}

    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("trials ")]
    assert [line.split(":")[0] for line in progress] == [f"trials {i}/6" for i in range(1, 7)]
    assert all("best so far" in line for line in progress)


def test_random_search_is_reproducible(ray_local: Any, tmp_path: Path) -> None:
    search = """\
  search:
    strategy: random
    n_trials: 5
    space:
      max_depth: [2, 3, 5, 8, null]
      min_samples_leaf: {low: 1, high: 30}
      max_features: {low: 0.2, high: 1.0}
    cv: 2
    metric: accuracy
"""
    metas = []
    for i in range(2):
        result = _run(_project(tmp_path / f"p{i}", FOREST + search), orchestrate=False)
        assert result.ok, result.error
        metas.append(_outputs(result)["model"].meta["search"])
    first, second = metas
    assert len(first["trials"]) == 5
    assert [t["params"] for t in first["trials"]] == [t["params"] for t in second["trials"]]
    assert [t["fold_scores"] for t in first["trials"]] == [t["fold_scores"] for t in second["trials"]]
    assert first["best_params"] == second["best_params"]
    assert all(isinstance(t["params"]["min_samples_leaf"], int) for t in first["trials"])
    assert len({t["params"]["max_features"] for t in first["trials"]}) == 5  # really sampled, not one value


KILLER = """\
train:
  estimator: mlflowkit_test_estimators.KillOnceClassifier
  params: {{marker: "{marker}"}}
  preprocess: none
  search:
    space: {{max_depth: [2, 3]}}
    cv: 2
  ray: {{max_retries: {retries}}}
export: {{kind: noop}}   # skl2onnx cannot convert this test estimator: register it without ONNX
"""


@pytest.fixture
def allow_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOWKIT_ALLOWED_MODULES", "mlflowkit_test_estimators")


def _dead(pid: int) -> bool:
    """Gone, or a zombie its parent (the raylet) has not reaped yet; waits a little for either."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in {"Z", "X"}:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.usefixtures("allow_helpers")
def test_a_trial_whose_worker_dies_is_retried(ray_local: Any, tmp_path: Path) -> None:
    marker = tmp_path / "killed"
    project = _project(tmp_path / "p", KILLER.format(marker=marker, retries=2))
    result = _run(project, orchestrate=False)
    assert result.ok, result.error

    killed = int(marker.read_text())
    assert _dead(killed)
    attempts = [int(p) for p in (tmp_path / "killed.attempts").read_text().split()]
    assert len(attempts) == 5  # 2 trials x 2 folds, plus the attempt that died
    assert attempts.count(killed) == 1  # the retry ran in another worker
    meta = _outputs(result)["model"].meta["search"]
    assert all(t["error"] is None and None not in t["fold_scores"] for t in meta["trials"])
    assert ModelRegistry(project / ".mlflowkit" / "registry").get("hpo", "champion").version == 1


@pytest.mark.usefixtures("allow_helpers")
def test_a_dead_worker_without_retries_fails_the_step_and_registers_nothing(ray_local: Any, tmp_path: Path) -> None:
    marker = tmp_path / "killed"
    project = _project(tmp_path / "p", KILLER.format(marker=marker, retries=0))
    result = _run(project, orchestrate=False)
    assert not result.ok
    error = result.exception
    assert isinstance(error, StepFailed) and error.step == "train"
    assert "trial " in error.reason and "max_depth=" in error.reason and "fold " in error.reason
    assert "max_retries=0" in error.reason
    assert "WorkerCrashedError" in error.reason or "died" in error.reason.lower()
    assert _dead(int(marker.read_text()))
    assert {s.name: s.status for s in result.steps}["register"] == "skipped"
    with pytest.raises(RegistryError):
        ModelRegistry(project / ".mlflowkit" / "registry").versions("hpo")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def ray_head() -> Iterator[tuple[int, dict[str, str]]]:
    """A separate one-node cluster (``ray start --head``) in a temp dir of its own, with its own token.

    Stopped by signalling the ``ray start --block`` process we started (it stops its children), then
    its process group; never ``ray stop``, which would stop every Ray instance on the machine.
    """
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="rayhead")  # short: Ray's socket paths live under it
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    ray_cli = str(Path(sys.executable).with_name("ray"))
    cmd = [ray_cli, "start", "--head", "--block", "--port", str(port), "--num-cpus", "2", "--include-dashboard", "false"]
    cmd += ["--node-ip-address", "127.0.0.1", "--temp-dir", temp, "--disable-usage-stats"]
    log = Path(temp) / "head.log"  # a file, not a pipe: a pipe nobody reads would fill and block the head
    with log.open("w") as out:
        head = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while "Ray runtime started" not in log.read_text():
            if head.poll() is not None or time.monotonic() > deadline:
                pytest.fail("ray start --head did not come up:\n" + log.read_text())
            time.sleep(0.2)
        yield port, env
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=10)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_ray_address_joins_that_cluster(ray_local: Any, ray_head: tuple[int, dict[str, str]], tmp_path: Path) -> None:
    port, env = ray_head
    train = FOREST + f"""\
  search:
    space: {{max_depth: [2, 4]}}
    cv: 2
  ray: {{address: "127.0.0.1:{port}", num_cpus_per_trial: 1}}
"""
    project = _project(tmp_path / "p", train)
    # Another process: this one is attached to the session's local instance, and Ray allows one per process.
    script = textwrap.dedent(
        """
        import json, sys
        import mlflowkit
        from mlflowkit.runtime.engine import run_spec
        spec = mlflowkit.load_spec(sys.argv[1])
        result = run_spec(spec, mlflowkit.compile(spec), orchestrate=False)
        train = next(s for s in result.steps if s.name == "train")
        print(json.dumps({"ok": result.ok, "error": result.error, "search": train.outputs["model"].meta.get("search") if "model" in train.outputs else None}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(project / "spec.yaml")], env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["ok"], out["error"]
    search = out["search"]
    # Seen from inside the trial tasks: the GCS of the head we started, not the session's local instance.
    assert search["ray"]["gcs_address"].rsplit(":", 1)[1] == str(port)
    assert search["ray"]["started_local"] is False
    here = ray_local.get_runtime_context()
    assert search["ray"]["gcs_address"] != here.gcs_address
    nodes = {n for t in search["trials"] for n in t["nodes"]}
    assert len(nodes) == 1 and here.get_node_id() not in nodes


def test_churn_hpo_example_registers_the_best_model_through_prefect(ray_local: Any, churn_project: Path) -> None:
    project = churn_project.parent / "churn-hpo"
    project.mkdir()
    shutil.copy(REPO / "examples" / "churn-hpo" / "spec.yaml", project / "spec.yaml")
    result = _run(project)
    assert result.ok, result.error
    assert result.orchestrated and result.flow_run_id
    assert {s.status for s in result.steps} == {"ran"}

    version = ModelRegistry(project / ".mlflowkit" / "registry").get("churn-hpo", "champion")
    lineage = version.lineage
    # Lineage -> run -> train step: the search that chose the registered params, with every trial.
    store = ArtifactStore(project / ".mlflowkit")
    record = store.read_json(f"runs/{lineage['run_id']}.json")
    train = next(s for s in record["steps"] if s["name"] == "train")
    search = train["outputs"]["model"]["meta"]["search"]
    assert len(search["trials"]) == 6
    assert all(t["mean"] is not None and t["std"] is not None for t in search["trials"])
    assert {k: lineage["params"][k] for k in search["best_params"]} == search["best_params"]
    assert lineage["artifacts"]["model"] == train["outputs"]["model"]["key"]
    trials = json.loads(store.get_bytes(train["outputs"]["trials"]["key"]))
    assert trials["best_params"] == search["best_params"] and trials["metric"] == "roc_auc"
    # ... and the version itself carries the search's outcome and every trial.
    assert lineage["search"]["best_params"] == search["best_params"]
    assert "trials" not in lineage["search"]
    assert "trials.json" in version.files
    assert json.loads(ModelRegistry(project / ".mlflowkit" / "registry").read_file("churn-hpo", 1, "trials.json")) == trials
