"""Deploys to a real Triton server (the nvidia-pytriton build, started once per session): rollout, load, rollback.

The server runs models through the Python backend (that build has no ONNX Runtime backend). Nothing is
mocked: every failure below is a real failure of a real server, and each test checks that the version
that served before still serves, with the same answers, and that the error text is Triton's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlflowkit.kinds.export import export_onnx
from mlflowkit.targets import triton_local
from mlflowkit.targets.contract import Contract, feeds, run_onnx
from mlflowkit.targets.triton import TritonDeployError, TritonTarget, deploy, infer

pytestmark = [pytest.mark.triton]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "churn"
sys.path.insert(0, str(EXAMPLE))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helpers"))
from churn_steps import add_features  # noqa: E402
from triton_helpers import ask_http, local_triton  # noqa: E402


@pytest.fixture(scope="session")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[triton_local.LocalTriton]:
    """One real server for the session; its venv is built once ($MLFLOWKIT_TRITON_VENV) and reused."""
    yield from local_triton(tmp_path_factory, "triton")


Exported = tuple[bytes, Contract]


@pytest.fixture(scope="session")
def models() -> tuple[list[Exported], pd.DataFrame]:
    """Three different exported churn models, and held-out rows."""
    from sklearn.ensemble import RandomForestClassifier

    from mlflowkit.kinds.train import _pipeline

    frame = add_features(pd.read_csv(EXAMPLE / "data" / "churn.csv"))
    train, test = frame.iloc[:4800], frame.iloc[4800:].reset_index(drop=True)
    x, y = train.drop(columns=["churned"]), train["churned"]
    exported = []
    for trees, depth in ((10, 4), (20, 6), (30, 8)):
        model = _pipeline(RandomForestClassifier(n_estimators=trees, max_depth=depth, random_state=0), x).fit(x, y)
        data, contract = export_onnx(model, test, features=list(x.columns), classes=list(model.classes_), target="churned")
        assert contract.parity["ok"]
        exported.append((data, contract))
    return exported, test


def settings(server: triton_local.LocalTriton, **kw: Any) -> TritonTarget:
    return TritonTarget.model_validate(
        {
            "target": "triton",
            "url": server.http_url,
            "grpc_url": server.grpc_url,
            "model_repository": server.model_repository,
            "backend": "python",
            "ready_timeout": 120,
            **kw,
        }
    )


def served(server: triton_local.LocalTriton, name: str, exported: Exported, rows: pd.DataFrame) -> str:
    """Ask the server (no version: whatever serves) and check the answers equal local ORT's; the version that answered."""
    import tritonclient.grpc as triton_grpc
    import tritonclient.http as triton_http

    data, contract = exported
    inputs = feeds(contract, rows)
    expected = run_onnx(data, inputs)
    http = triton_http.InferenceServerClient(server.http_url.removeprefix("http://"))
    grpc = triton_grpc.InferenceServerClient(server.grpc_url)
    for client, protocol in ((http, "http"), (grpc, "grpc")):
        got = infer(client, protocol, name, contract, inputs)
        assert [v.decode() for v in got["label"].reshape(-1)] == expected["label"].tolist(), protocol
        np.testing.assert_allclose(got["probabilities"], expected["probabilities"], atol=1e-6, err_msg=protocol)
    return str(ask_http(server, name, contract, rows).get_response()["model_version"])


def repository(server: triton_local.LocalTriton, name: str) -> tuple[list[str], str]:
    folder = Path(server.model_repository) / name
    return sorted(p.name for p in folder.iterdir() if p.is_dir()), (folder / "config.pbtxt").read_text()


LOAD = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    import pandas as pd
    import tritonclient.http as triton_http
    from mlflowkit.targets.contract import Contract, feeds

    url, name, contract_path, rows_path, stop, out = sys.argv[1:7]
    contract = Contract.model_validate_json(Path(contract_path).read_text())
    inputs = feeds(contract, pd.read_parquet(rows_path))
    client = triton_http.InferenceServerClient(url)
    ok, failed, errors, versions = 0, 0, [], {}

    def write(record):  # atomically: the test reads it while this process runs
        Path(out + ".tmp").write_text(json.dumps(record))
        os.replace(out + ".tmp", out)
    deadline = time.monotonic() + 240  # bounded: never runs on if the test dies
    while not Path(stop).exists() and time.monotonic() < deadline and ok + failed < 200_000:
        tensors = []
        for input_name, array in inputs.items():
            tensor = triton_http.InferInput(input_name, list(array.shape), "BYTES" if array.dtype == object else "FP32")
            tensor.set_data_from_numpy(array)
            tensors.append(tensor)
        try:
            version = client.infer(name, tensors).get_response()["model_version"]
            ok += 1
            versions[version] = versions.get(version, 0) + 1
        except Exception as exc:
            failed += 1
            errors.append(str(exc)[:300])
        if (ok + failed) % 20 == 0:
            write({"ok": ok, "failed": failed, "errors": errors[:5], "versions": versions})
    write({"ok": ok, "failed": failed, "errors": errors[:5], "versions": versions, "done": True})
    """
)


@pytest.mark.slow
def test_rollout_v1_v2_under_load_over_http_and_grpc(
    triton: triton_local.LocalTriton, models: tuple[list[Exported], pd.DataFrame], tmp_path: Path
) -> None:
    exported, test = models
    target = settings(triton, keep_versions=2, smoke_rows=32)
    rows = test.head(64)

    first = deploy(target, name="churn", version=1, model=exported[0][0], contract=exported[0][1], smoke=test)
    assert first["previous"] is None and set(first["smoke"]) == {"http", "grpc"}
    assert first["smoke"]["http"]["rows"] == 32
    assert served(triton, "churn", exported[0], rows) == "1"

    # A second process sends requests without pause while v2 rolls out.
    (tmp_path / "contract.json").write_text(exported[1][1].model_dump_json())
    test.head(1).to_parquet(tmp_path / "row.parquet")
    stop, out = tmp_path / "stop", tmp_path / "load.json"
    argv = [sys.executable, "-c", LOAD, triton.http_url.removeprefix("http://"), "churn", str(tmp_path / "contract.json"),
            str(tmp_path / "row.parquet"), str(stop), str(out)]  # fmt: skip
    load = subprocess.Popen(argv)
    try:
        deadline = time.monotonic() + 60
        while not (out.exists() and json.loads(out.read_text())["ok"] >= 20):
            assert load.poll() is None and time.monotonic() < deadline, "the load process did not start sending"
            time.sleep(0.1)
        second = deploy(target, name="churn", version=2, model=exported[1][0], contract=exported[1][1], smoke=test)
        served_by_v2 = json.loads(out.read_text())["versions"].get("2", 0)
        deadline = time.monotonic() + 60
        while json.loads(out.read_text())["versions"].get("2", 0) < served_by_v2 + 20:
            assert load.poll() is None and time.monotonic() < deadline, "no requests reached v2"
            time.sleep(0.1)
    finally:
        stop.touch()
        load.wait(timeout=60)
    record = json.loads(out.read_text())
    print(f"\nrequests during the v1 -> v2 rollout: {record}")
    assert record["done"] and record["failed"] == 0, record["errors"]
    assert record["ok"] >= 40 and record["versions"]["1"] > 0 and record["versions"]["2"] > 0
    assert second["previous"] == 1 and second["removed_versions"] == []
    assert second["candidate"]["model"] == "churn__candidate" and set(second["candidate"]["smoke"]) == {"http", "grpc"}

    assert served(triton, "churn", exported[1], rows) == "2"
    # A third version: the oldest folder goes, only after v3 answered correctly.
    third = deploy(target, name="churn", version=3, model=exported[2][0], contract=exported[2][1], smoke=test)
    assert third["removed_versions"] == [1]
    assert served(triton, "churn", exported[2], rows) == "3"
    folders, config = repository(triton, "churn")
    assert folders == ["2", "3"] and "versions: [ 3 ]" in config


def serve_v1(triton: triton_local.LocalTriton, models: tuple[list[Exported], pd.DataFrame], name: str) -> TritonTarget:
    exported, test = models
    target = settings(triton)
    deploy(target, name=name, version=1, model=exported[0][0], contract=exported[0][1], smoke=test)
    assert served(triton, name, exported[0], test.head(8)) == "1"
    return target


def assert_v1_still_serves(triton: triton_local.LocalTriton, models: tuple[list[Exported], pd.DataFrame], name: str) -> None:
    exported, test = models
    assert served(triton, name, exported[0], test.head(32)) == "1"
    folders, config = repository(triton, name)
    assert folders == ["1"] and "versions: [ 1 ]" in config
    # No candidate is left loaded or in the repository.
    assert not (Path(triton.model_repository) / f"{name}__candidate").exists()
    assert never_loaded(triton, f"{name}__candidate")


def never_loaded(triton: triton_local.LocalTriton, name: str, version: int | None = None) -> bool:
    """True when the server's index has no entry for ``name`` (at ``version``, when given) in any state."""
    import tritonclient.http as triton_http

    http = triton_http.InferenceServerClient(triton.http_url.removeprefix("http://"))
    entries = [m for m in http.get_model_repository_index() if m.get("name") == name]
    return not [m for m in entries if version is None or m.get("version") == str(version)]


def test_batched_requests_and_non_ascii_categories_answer_like_local_ort(triton: triton_local.LocalTriton) -> None:
    """Concurrent requests that the dynamic batcher runs together each get their own rows' answers, UTF-8 intact."""
    import tritonclient.http as triton_http
    from sklearn.ensemble import RandomForestClassifier

    from mlflowkit.kinds.train import _pipeline

    frame = add_features(pd.read_csv(EXAMPLE / "data" / "churn.csv"))
    # A known category that is not ASCII: read as "b'...'" it would be an unknown one, and the answers would differ.
    frame["contract"] = frame["contract"].replace({"month-to-month": "mois-à-mois"})
    train, test = frame.iloc[:4800], frame.iloc[4800:].reset_index(drop=True)
    x = train.drop(columns=["churned"])
    model = _pipeline(RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0), x).fit(x, train["churned"])
    data, contract = export_onnx(model, test, features=list(x.columns), classes=list(model.classes_), target="churned")
    assert contract.parity["ok"] and (test["contract"] == "mois-à-mois").sum() > 10
    # A long queue delay, so that requests sent together are run together.
    target = settings(triton, dynamic_batching={"max_queue_delay_microseconds": 50_000})
    deploy(target, name="batched", version=1, model=data, contract=contract, smoke=test)

    chunks = [test.iloc[i : i + 1 + i % 3] for i in range(0, 96, 4)]  # 24 requests of 1 to 3 rows
    bad = {5, 17}  # these send bytes that are not UTF-8: they fail alone, the requests batched with them do not

    def ask(numbered: tuple[int, pd.DataFrame]) -> tuple[dict[str, Any], dict[str, Any] | str]:
        number, rows = numbered
        inputs = feeds(contract, rows)
        expected = run_onnx(data, inputs)
        if number in bad:
            inputs["gender"] = np.array([[b"\xff\xfe"]] * len(rows), dtype=object)
        client = triton_http.InferenceServerClient(triton.http_url.removeprefix("http://"))
        try:
            return expected, infer(client, "http", "batched", contract, inputs)
        except Exception as exc:
            return expected, str(exc)
        finally:
            client.close()

    def executions() -> tuple[int, int]:
        client = triton_http.InferenceServerClient(triton.http_url.removeprefix("http://"))
        stats = client.get_inference_statistics("batched")["model_stats"][0]
        return int(stats["inference_count"]), int(stats["execution_count"])

    before = executions()
    with ThreadPoolExecutor(len(chunks)) as pool:
        answers = list(pool.map(ask, enumerate(chunks)))
    after = executions()
    for number, ((expected, got), rows) in enumerate(zip(answers, chunks, strict=True)):
        if number in bad:
            assert isinstance(got, str) and "UnicodeDecodeError" in got
            continue
        assert not isinstance(got, str), got
        assert [v.decode() for v in got["label"].reshape(-1)] == expected["label"].tolist()
        np.testing.assert_allclose(got["probabilities"], expected["probabilities"], atol=1e-6)
        assert len(got["probabilities"]) == len(rows)
    inferences, runs = after[0] - before[0], after[1] - before[1]
    assert inferences == sum(len(rows) for rows in chunks)  # Triton counts the rows it was given, failed ones too
    assert runs < len(chunks) - len(bad), f"the batcher ran {runs} executions for {len(chunks)} requests"


def test_broken_config_keeps_v1_serving(triton: triton_local.LocalTriton, models: tuple[list[Exported], pd.DataFrame]) -> None:
    target = serve_v1(triton, models, "broken-config")
    exported, test = models
    broken = target.model_copy(update={"config_extra": "this is not a config field"})
    with pytest.raises(TritonDeployError) as info:
        deploy(broken, name="broken-config", version=2, model=exported[1][0], contract=exported[1][1], smoke=test)
    message = str(info.value)
    assert "deploy of broken-config v2" in message
    assert "failed to load 'broken-config__candidate'" in message  # Triton's own words
    assert message.endswith("it was checked as broken-config__candidate and never took traffic; v1 kept serving")
    assert_v1_still_serves(triton, models, "broken-config")


def renamed_input(data: bytes, old: str, new: str) -> bytes:
    """The same model with one graph input renamed: what a server gets when config and model disagree."""
    import onnx

    proto = onnx.load_from_string(data)
    for value in proto.graph.input:
        if value.name == old:
            value.name = new
    for node in proto.graph.node:
        node.input[:] = [new if i == old else i for i in node.input]
    return proto.SerializeToString()


def test_wrong_input_name_keeps_v1_serving(triton: triton_local.LocalTriton, models: tuple[list[Exported], pd.DataFrame]) -> None:
    target = serve_v1(triton, models, "wrong-input")
    exported, test = models
    data, contract = exported[1]
    # The server gets a model whose input is `agee` while the config (from the contract) declares `age`.
    with pytest.raises(TritonDeployError) as info:
        deploy(target, name="wrong-input", version=2, model=data, contract=contract, smoke=test,
               test_serve_instead=renamed_input(data, "age", "agee"))  # fmt: skip
    message = str(info.value)
    assert "smoke test" not in message  # the request itself failed, inside Triton
    assert "Required inputs (['agee']) are missing from input feed" in message  # ONNX Runtime's words, relayed by Triton
    assert message.endswith("it was checked as wrong-input__candidate and never took traffic; v1 kept serving")
    assert_v1_still_serves(triton, models, "wrong-input")
    # A contract that names an input the model does not have is refused before the server is touched.
    renamed = tuple(t.model_copy(update={"name": "agee"}) if t.name == "age" else t for t in contract.inputs)
    with pytest.raises(
        TritonDeployError, match=r"the contract's inputs \(agee, .*\) are not model.onnx's \(age, .*nothing was deployed"
    ):
        deploy(
            target,
            name="wrong-input",
            version=2,
            model=data,
            contract=contract.model_copy(update={"inputs": renamed}),
            smoke=test,
        )
    assert_v1_still_serves(triton, models, "wrong-input")


def test_unreachable_server_changes_nothing(
    triton: triton_local.LocalTriton, models: tuple[list[Exported], pd.DataFrame]
) -> None:
    target = serve_v1(triton, models, "unreachable")
    exported, test = models
    nowhere = target.model_copy(update={"url": f"http://127.0.0.1:{triton_local.free_port()}"})
    with pytest.raises(TritonDeployError, match=r"Triton at http://127\.0\.0\.1:\d+ is unreachable: .+"):
        deploy(nowhere, name="unreachable", version=2, model=exported[1][0], contract=exported[1][1], smoke=test)
    assert_v1_still_serves(triton, models, "unreachable")


@pytest.mark.slow
@pytest.mark.parametrize("candidate", [True, False], ids=["checked-as-candidate", "swapped-then-rolled-back"])
def test_failed_smoke_comparison_keeps_v1_serving(
    triton: triton_local.LocalTriton, models: tuple[list[Exported], pd.DataFrame], candidate: bool
) -> None:
    name = f"smoke-{candidate}".lower()
    target = serve_v1(triton, models, name).model_copy(update={"candidate": candidate})
    exported, test = models
    with pytest.raises(TritonDeployError) as info:
        # Test seam: Triton serves model 3 while the deploy compares with model 2's outputs.
        deploy(target, name=name, version=2, model=exported[1][0], contract=exported[1][1], smoke=test,
               test_serve_instead=exported[2][0])  # fmt: skip
    message = str(info.value)
    assert "smoke test over http: Triton's answers differ from ONNX Runtime's: max |Δprobability| = " in message
    if candidate:
        assert message.endswith(f"it was checked as {name}__candidate and never took traffic; v1 kept serving")
        assert never_loaded(triton, name, version=2)
    else:  # v2 took traffic for the seconds of the smoke test, then v1 came back
        assert message.endswith("the repository was restored and v1 is serving")
        assert not never_loaded(triton, name, version=2)
    assert_v1_still_serves(triton, models, name)


def test_full_triton_config_on_this_build_fails_with_tritons_text(
    triton: triton_local.LocalTriton, models: tuple[list[Exported], pd.DataFrame]
) -> None:
    """`backend: onnxruntime` (platform onnxruntime_onnx): the config parses, but this build has no ORT backend."""
    target = serve_v1(triton, models, "full-triton")
    exported, test = models
    with pytest.raises(TritonDeployError) as info:
        deploy(target.model_copy(update={"backend": "onnxruntime"}), name="full-triton", version=2,
               model=exported[1][0], contract=exported[1][1], smoke=test)  # fmt: skip
    assert "unable to find backend library for backend 'onnxruntime'" in str(info.value)
    assert str(info.value).endswith("it was checked as full-triton__candidate and never took traffic; v1 kept serving")
    assert never_loaded(triton, "full-triton", version=2)
    assert_v1_still_serves(triton, models, "full-triton")


def test_first_deploy_that_fails_leaves_nothing_behind(
    triton: triton_local.LocalTriton, models: tuple[list[Exported], pd.DataFrame]
) -> None:
    exported, test = models
    broken = settings(triton, config_extra="not a field")
    with pytest.raises(TritonDeployError, match=r"never took traffic; nothing was serving$"):
        deploy(broken, name="never", version=1, model=exported[0][0], contract=exported[0][1], smoke=test)
    assert not (Path(triton.model_repository) / "never").exists()
    assert not (Path(triton.model_repository) / "never__candidate").exists()
    # Without the candidate check, the failed version is loaded under its own name, then removed.
    with pytest.raises(TritonDeployError, match="no previous version was serving"):
        deploy(broken.model_copy(update={"candidate": False}), name="never", version=1, model=exported[0][0],
               contract=exported[0][1], smoke=test)  # fmt: skip
    assert not (Path(triton.model_repository) / "never" / "1").exists()
    assert not (Path(triton.model_repository) / "never" / "config.pbtxt").exists()


@pytest.mark.prefect
def test_flow_registers_onnx_and_deploys_the_champion(triton: triton_local.LocalTriton, churn_project: Path) -> None:
    import mlflowkit
    from mlflowkit.runtime.engine import run_spec
    from mlflowkit.store import ModelRegistry

    spec_path = churn_project / "spec.yaml"
    spec_path.write_text(
        spec_path.read_text()
        + textwrap.dedent(
            f"""
            deploy:
              - target: triton
                url: {triton.http_url}
                grpc_url: {triton.grpc_url}
                model_repository: {triton.model_repository}
                model_name: churn-flow
                backend: python
                smoke_rows: 32
            """
        )
    )

    def run(*overrides: str) -> Any:
        spec = mlflowkit.load_spec(spec_path, overrides=list(overrides))
        return run_spec(spec, mlflowkit.compile(spec))

    first = run()
    assert first.ok, first.error
    statuses = {s.name: s.status for s in first.steps}
    assert statuses["export"] == statuses["register"] == statuses["deploy"] == "ran"
    registry = ModelRegistry(churn_project / ".mlflowkit" / "registry")
    version = registry.get("churn", "champion")
    assert {"model.onnx", "contract.json", "model.skops"} <= set(version.files)
    contract = Contract.model_validate_json(registry.read_file("churn", 1, "contract.json"))
    assert contract.target == "churned" and "charges_per_tenure" in contract.features
    assert version.lineage["onnx"]["parity"]["disagreeing_rows"] == 0
    deployment = first.steps[-1].outputs["deployment"].meta
    assert deployment == {"model": "churn", "version": 1}

    test = add_features(pd.read_csv(churn_project / "data" / "churn.csv")).head(16)
    assert served(triton, "churn-flow", (registry.read_file("churn", 1, "model.onnx"), contract), test) == "1"

    second = run("params.n_estimators=20")
    assert second.ok, second.error
    assert registry.aliases("churn")["champion"] == 2
    assert served(triton, "churn-flow", (registry.read_file("churn", 2, "model.onnx"), contract), test) == "2"


def test_cli_up_status_down(tmp_path: Path) -> None:
    """`mlflowkit triton up|status|down` on its own folder and ports (the venv is the session's)."""
    import os

    cli = [sys.executable, "-c", "from mlflowkit.cli import main; main()", "triton"]
    folder = tmp_path / "cli-triton"
    http_port, grpc_port = triton_local.free_port(), triton_local.free_port()
    env = {**os.environ, "COLUMNS": "200"}
    from mlflowkit.edge.signing import generate_keypair

    generate_keypair(tmp_path / "k.pem", tmp_path / "k.pem.pub")
    ports = ["--http-port", str(http_port), "--grpc-port", str(grpc_port)]
    missing = subprocess.run([*cli, "up", "--dir", str(folder), *ports, "--trusted-key", str(tmp_path / "nope.pub")],
                             capture_output=True, text=True, env=env, timeout=600, check=False)  # fmt: skip
    assert missing.returncode == 1 and "nope.pub does not exist" in missing.stderr
    started = subprocess.run(
        [*cli, "up", "--dir", str(folder), *ports, "--trusted-key", str(tmp_path / "k.pem.pub")],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    try:
        assert started.returncode == 0, started.stderr
        assert f"http:             http://127.0.0.1:{http_port}" in started.stdout
        assert f"grpc:             127.0.0.1:{grpc_port}" in started.stdout
        assert "unsigned or tampered versions do not load" in started.stdout
        pid = json.loads((folder / "server.json").read_text())["pid"]
        server_env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert f"MLFLOWKIT_TRITON_TRUSTED_KEY={tmp_path / 'k.pem.pub'}".encode() in server_env
        # Asking the running server for no key (or another one) is refused, not silently ignored.
        again = subprocess.run([*cli, "up", "--dir", str(folder), *ports], capture_output=True, text=True, env=env,
                               timeout=600, check=False)  # fmt: skip
        assert again.returncode == 1 and "already running" in again.stderr and "not none" in again.stderr
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/health/ready", timeout=5) as response:
            assert response.status == 200
        status = subprocess.run([*cli, "status", "--dir", str(folder)], capture_output=True, text=True, env=env, check=False)
        assert status.returncode == 0 and f"http http://127.0.0.1:{http_port}" in status.stdout
    finally:
        stopped = subprocess.run([*cli, "down", "--dir", str(folder)], capture_output=True, text=True, env=env, check=False)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    after = subprocess.run([*cli, "status", "--dir", str(folder)], capture_output=True, text=True, env=env, check=False)
    assert after.returncode == 1 and "no server running" in after.stdout


@pytest.mark.slow
@pytest.mark.prefect
def test_a_version_that_is_not_the_champion_does_not_deploy(churn_project: Path) -> None:
    import mlflowkit
    from mlflowkit.errors import StepFailed
    from mlflowkit.runtime.engine import run_spec

    spec_path = churn_project / "spec.yaml"
    nowhere = f"http://127.0.0.1:{triton_local.free_port()}"
    spec_path.write_text(
        spec_path.read_text().replace("register:\n  model: churn\n", "register:\n  model: churn\n  alias: staging\n")
        + f"deploy:\n  - {{target: triton, url: '{nowhere}', model_repository: {churn_project / 'repo'}}}\n"
    )
    spec = mlflowkit.load_spec(spec_path)
    result = run_spec(spec, mlflowkit.compile(spec))
    assert not result.ok and isinstance(result.exception, StepFailed) and result.exception.step == "deploy"
    assert "churn v1 is not the champion (aliases: staging); only promoted versions deploy" in str(result.exception)
    assert not (churn_project / "repo").exists()


@pytest.mark.slow
def test_a_failed_deploy_gives_champion_back_to_the_version_still_serving(churn_project: Path) -> None:
    """v1 is champion; v2 passes its gates but cannot reach its server: the registry must not claim v2."""
    import mlflowkit
    from mlflowkit.errors import StepFailed
    from mlflowkit.runtime.engine import run_spec
    from mlflowkit.store import ModelRegistry

    spec_path = churn_project / "spec.yaml"
    registry = ModelRegistry(churn_project / ".mlflowkit" / "registry")

    def run(*overrides: str) -> Any:
        spec = mlflowkit.load_spec(spec_path, overrides=list(overrides))
        return run_spec(spec, mlflowkit.compile(spec))

    nowhere = f"http://127.0.0.1:{triton_local.free_port()}"
    target = f"deploy:\n  - {{target: triton, url: '{nowhere}', model_repository: {churn_project / 'repo'}}}\n"
    original = spec_path.read_text()

    # A first deploy that fails: the only version must not stay champion.
    spec_path.write_text(original + target)
    first = run()
    assert not first.ok and isinstance(first.exception, StepFailed) and first.exception.step == "deploy"
    assert "is unreachable" in str(first.exception)
    assert "v1 is no longer champion (it is not serving anywhere)" in str(first.exception)
    assert "champion" not in registry.aliases("churn")

    # A rerun (register comes from the cache) retries the deploy; once v1 serves, it is champion.
    spec_path.write_text(original)  # no targets: "deploying" to none succeeds
    retried = run()
    assert retried.ok, retried.error
    assert {s.name: s.status for s in retried.steps}["register"] == "cached"
    assert registry.aliases("churn") == {"champion": 1}

    # v2 passes its gates but cannot reach its server: champion is v1 again.
    spec_path.write_text(original + target)
    failed = run("params.n_estimators=20")
    assert not failed.ok and isinstance(failed.exception, StepFailed)
    assert "champion is v1 again, which still serves" in str(failed.exception)
    assert registry.aliases("churn")["champion"] == 1
    event = [e for e in registry.history("churn") if e.alias == "champion"][-1]
    assert (event.version, event.previous) == (1, 2) and "deploy[0] to triton failed" in event.reason
