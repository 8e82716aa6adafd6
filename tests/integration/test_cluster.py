"""HPO on a real two-node Ray cluster on loopback: a head and a second ``ray start --address`` node.

Each node has one CPU, its own temp dir and its own custom resource (``head``, ``node2``), so trials
can only run side by side by landing on both nodes; the trial records say where each ran. The nodes
are stopped by signalling the ``ray start --block`` processes this module started (never ``ray stop``,
which stops every Ray instance of the user on the machine).
"""

from __future__ import annotations

import json
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
from contextlib import ExitStack
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _node_ports() -> list[str]:
    """Ports of a node's own services, so two nodes on one host never collide with each other or others."""
    args = []
    for flag in (
        "--node-manager-port",
        "--object-manager-port",
        "--dashboard-agent-listen-port",
        "--dashboard-agent-grpc-port",
        "--metrics-export-port",
        "--runtime-env-agent-port",
    ):
        args += [flag, str(_free_port())]
    return args


def _start(cmd: list[str], env: dict[str, str], temp: str, name: str) -> subprocess.Popen[bytes]:
    log = Path(temp) / f"{name}.log"  # a file, not a pipe: a pipe nobody reads would fill and block the node
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 90
    while "Ray runtime started" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            pytest.fail(f"ray start ({name}) did not come up:\n" + log.read_text()[-3000:])
        time.sleep(0.2)
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # `ray start --block` stops its node's processes on SIGTERM
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    with_group = proc.pid
    try:  # anything of that node left in its session
        os.killpg(with_group, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[tuple[str, dict[str, str]]]:
    """A head (1 CPU, resource ``head``) and a worker node (1 CPU, resource ``node2``); the head's address."""
    port = _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    common = ["--block", "--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    with ExitStack() as stack:
        head_temp = tempfile.mkdtemp(prefix="rayh")  # short: Ray's socket paths live under it
        node_temp = tempfile.mkdtemp(prefix="rayn")
        stack.callback(shutil.rmtree, head_temp, True)
        stack.callback(shutil.rmtree, node_temp, True)
        head_cmd = [RAY, "start", "--head", "--port", str(port), "--include-dashboard", "false", *common]
        head_cmd += ["--resources", '{"head": 1}', "--temp-dir", head_temp, "--ray-client-server-port", str(_free_port())]
        head = _start(head_cmd + _node_ports(), env, head_temp, "head")
        stack.callback(_stop, head)
        address = f"127.0.0.1:{port}"
        node_cmd = [RAY, "start", "--address", address, *common, "--resources", '{"node2": 1}', "--temp-dir", node_temp]
        node = _start(node_cmd + _node_ports(), env, node_temp, "node2")
        stack.callback(_stop, node)  # stopped first (ExitStack unwinds in reverse)
        yield address, env


# Runs in a process of its own: Ray allows one connection per process, and the test session may hold one.
DRIVER = textwrap.dedent(
    """
    import json, sys
    import ray
    import mlflowkit
    from mlflowkit.runtime.engine import run_spec
    spec = mlflowkit.load_spec(sys.argv[1])
    result = run_spec(spec, mlflowkit.compile(spec), orchestrate=False)
    train = next(s for s in result.steps if s.name == "train")
    ray.init(address=sys.argv[2], log_to_driver=False)
    nodes = {n["NodeID"]: sorted(n["Resources"]) for n in ray.nodes() if n["Alive"]}
    ray.shutdown()
    search = train.outputs["model"].meta.get("search") if "model" in train.outputs else None
    print(json.dumps({"ok": result.ok, "error": result.error, "search": search, "nodes": nodes}))
    """
)


def _project(folder: Path, address: str) -> Path:
    from sklearn.datasets import make_classification

    folder.mkdir(parents=True)
    x, y = make_classification(n_samples=300, n_features=5, n_informative=3, random_state=4)
    rows = ["f0,f1,f2,f3,f4,label"] + [",".join(f"{v:.6f}" for v in row) + f",{t}" for row, t in zip(x, y, strict=True)]
    (folder / "data.csv").write_text("\n".join(rows) + "\n")
    spec = f"""\
        spec: mlflowkit/v1
        name: cluster
        recipe: tabular-classification
        data: {{source: data.csv, target: label}}
        evaluate: {{metrics: [accuracy]}}
        register: {{model: cluster}}
        train:
          estimator: sklearn.ensemble.RandomForestClassifier
          params: {{n_estimators: 30}}
          preprocess: none
          seed: 1
          search:
            space: {{max_depth: [2, 3, 4, 6, 8, 12]}}
            cv: 2
          ray:
            address: "{address}"
            num_cpus_per_trial: 1
            runtime_env: {{env_vars: {{OMP_NUM_THREADS: "1"}}}}
        """
    (folder / "spec.yaml").write_text(textwrap.dedent(spec))
    return folder


def test_hpo_trials_land_on_both_nodes(two_nodes: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    address, env = two_nodes
    project = _project(tmp_path / "p", address)
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, str(project / "spec.yaml"), address],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["ok"], out["error"]
    search = out["search"]
    assert search["ray"]["started_local"] is False
    assert search["ray"]["gcs_address"].rsplit(":", 1)[1] == address.rsplit(":", 1)[1]

    cluster = out["nodes"]  # node id -> its resource names
    assert len(cluster) == 2
    head = next(n for n, res in cluster.items() if "head" in res)
    node2 = next(n for n, res in cluster.items() if "node2" in res)
    used = {n for t in search["trials"] for n in t["nodes"]}
    # One CPU per node and twelve one-CPU tasks: the second node ran some, the head the rest.
    assert used == {head, node2}
    assert all(t["nodes"] and len(t["node_ips"]) == 1 for t in search["trials"])  # one host, however many nodes
    assert all(t["error"] is None for t in search["trials"])
