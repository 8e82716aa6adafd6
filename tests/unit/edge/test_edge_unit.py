"""The edge pieces in process: keys, signing, input checks, the target's publishing and index, the light import set."""

from __future__ import annotations

import json
import math
import os
import pickle
import stat
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "helpers"))
from edge_helpers import CLI, keypair, publish, release, row, target  # noqa: F401

from mlflowkit.edge.device import Device
from mlflowkit.edge.errors import BundleRefused, EdgeError, InputError
from mlflowkit.edge.runner import Runner
from mlflowkit.edge.signing import canonical_json, load_private_key, load_public_key
from mlflowkit.targets.onnxruntime import EdgeDeployError, OnnxRuntimeTarget


def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path: Path) -> None:
    result = subprocess.run(
        [*CLI, "edge", "keygen", "--out", str(tmp_path / "k.pem")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert stat.S_IMODE((tmp_path / "k.pem").stat().st_mode) == 0o600
    assert len(info["key_id"]) == 16 and info["public_key"].endswith("k.pem.pub")
    load_private_key(str(tmp_path / "k.pem"))
    load_public_key(str(tmp_path / "k.pem.pub"))
    again = subprocess.run(
        [*CLI, "edge", "keygen", "--out", str(tmp_path / "k.pem")], capture_output=True, text=True, check=False
    )
    assert again.returncode == 1 and "exists; pass --force" in again.stderr


def test_keys_errors_and_canonical_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOWKIT_EDGE_PUBLIC_KEY", raising=False)
    with pytest.raises(EdgeError, match="no public key: pass --public-key FILE or set MLFLOWKIT_EDGE_PUBLIC_KEY"):
        load_public_key(None)
    (tmp_path / "bad.pem").write_text("not a key")
    with pytest.raises(EdgeError, match="is not a PEM public key"):
        load_public_key(str(tmp_path / "bad.pem"))
    assert canonical_json({"b": 1, "a": [1, "é"]}) == '{"a":[1,"é"],"b":1}'.encode()
    for exc in (BundleRefused("wrong-key", "x"), InputError([{"field": "a", "code": "dtype", "message": "a: bad"}])):
        back = pickle.loads(pickle.dumps(exc))
        assert str(back) == str(exc) and back.__dict__ == exc.__dict__


def test_the_spec_section_takes_a_key_location_never_a_key() -> None:
    base = {"target": "onnxruntime", "location": "/tmp/x"}
    with pytest.raises(ValueError, match="give exactly one of key_file and key_env"):
        OnnxRuntimeTarget.model_validate(base | {"signing": {}})
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        OnnxRuntimeTarget.model_validate(base | {"signing": {"key": "-----BEGIN PRIVATE KEY-----"}})
    settings = OnnxRuntimeTarget.model_validate(base | {"signing": {"key_env": "EDGE_KEY"}, "channel": "canary"})
    assert settings.destination == "/tmp/x#canary" and settings.nan_policy == "reject"


def test_publish_writes_a_self_describing_bundle_and_an_index(tmp_path: Path, models, keys) -> None:  # type: ignore[no-untyped-def]
    exported, test = models
    private, _ = keys
    record = publish(tmp_path, private, exported[0], 1, test)
    assert (
        record["previous"] is None and record["smoke"]["runner"]["rows"] == 32 and record["smoke"]["runner"]["max_abs_diff"] == 0
    )
    bundle = tmp_path / "churn" / "1"
    assert sorted(p.name for p in bundle.iterdir()) == [
        "contract.json",
        "lineage.json",
        "manifest.json",
        "manifest.sig",
        "model.onnx",
    ]
    manifest = json.loads((bundle / "manifest.json").read_bytes())
    assert manifest["lineage"] == {
        "model": "churn",
        "version": 1,
        "spec_hash": "abc123",
        "metrics": {"accuracy": 0.81},
        "verdict": {"passed": True},
        "run_id": "run-1",
    }
    assert manifest["requirements"]["opset"][""] == exported[0][1].max_opset and manifest["requirements"]["min_ort_version"]
    contract = json.loads((bundle / "contract.json").read_bytes())
    assert contract["preprocessing"]["columns"]["contract"]["categories"] == ["month-to-month", "one-year", "two-year"]
    assert contract["input_policy"] == {"nan": "reject"}
    # Canary and stable move independently; a republish of the same version reuses the bundle.
    publish(tmp_path, private, exported[1], 2, test, channel="canary")
    again = publish(tmp_path, private, exported[0], 1, test)
    assert again["reused"] is True
    index = json.loads((tmp_path / "churn" / "index.json").read_bytes())
    assert index["channels"]["stable"]["current"] == 1 and index["channels"]["canary"]["current"] == 2
    # Versions are immutable: other bytes under a published number are refused.
    with pytest.raises(EdgeDeployError, match=r"holds another model\.onnx for v1; published versions are immutable"):
        publish(tmp_path, private, exported[1], 1, test)


def test_old_versions_are_pruned_but_never_one_a_channel_points_at(tmp_path: Path, models, keys) -> None:  # type: ignore[no-untyped-def]
    exported, _ = models
    private, _ = keys
    publish(tmp_path, private, exported[0], 1, None, channel="canary")
    for version in (2, 3, 4):
        record = publish(tmp_path, private, exported[version % 2], version, None, keep_versions=2)
    assert record["removed_versions"] == [2]  # 1 stays: canary points at it
    assert sorted(p.name for p in (tmp_path / "churn").iterdir()) == ["1", "3", "4", "index.json"]


def test_a_missing_key_or_too_new_opset_publishes_nothing(tmp_path: Path, models, keys, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    exported, _ = models
    private, _ = keys
    monkeypatch.delenv("EDGE_KEY", raising=False)
    settings = OnnxRuntimeTarget.model_validate(
        {"target": "onnxruntime", "location": str(tmp_path), "signing": {"key_env": "EDGE_KEY"}}
    )
    with pytest.raises(EdgeDeployError, match=r"signing.key_env: \$EDGE_KEY is not set; nothing was published"):
        settings.deploy(release(exported[0], 1), name="churn", log=print)
    monkeypatch.setenv("EDGE_KEY", private.read_text())
    assert settings.deploy(release(exported[0], 1), name="churn", log=print)["version"] == 1
    with pytest.raises(EdgeDeployError, match=r"uses ONNX opset .*supports up to 9"):
        target(tmp_path, private, max_opset=9).deploy(release(exported[0], 2), name="churn", log=print)
    assert not (tmp_path / "churn" / "2").exists()


@pytest.fixture
def runner(tmp_path: Path, models, keys) -> Runner:  # type: ignore[no-untyped-def]
    exported, test = models
    private, public = keys
    publish(tmp_path / "pub", private, exported[0], 1, test)
    device = Device(tmp_path / "dev")
    device.pull(str(tmp_path / "pub" / "churn"), channel="stable", public_key=load_public_key(str(public)))
    folder = device.current()
    assert folder is not None
    return Runner(folder)


def issues(runner: Runner, payload: object) -> list[tuple[str, str]]:
    with pytest.raises(InputError) as info:
        runner.predict(payload)
    return [(i["field"], i["code"]) for i in info.value.issues]


def test_the_runner_takes_records_columns_and_one_row(runner: Runner, models) -> None:  # type: ignore[no-untyped-def]
    _, test = models
    good = row(test)
    one = runner.predict(good)
    assert one["version"] == 1 and len(one["predictions"]) == 1 and set(one["probabilities"][0]) == {"no", "yes"}
    many = runner.predict({"records": [good, row(test, 1)]})
    columns = runner.predict({"inputs": {k: [good[k], row(test, 1)[k]] for k in good}})
    assert many == columns and many["predictions"][0] == one["predictions"][0]
    assert runner.predict([good])["predictions"] == one["predictions"]


def test_the_runner_names_every_bad_input(runner: Runner, models) -> None:  # type: ignore[no-untyped-def]
    _, test = models
    good = row(test)
    assert issues(runner, good | {"age": "41"}) == [("inputs.age[0]", "dtype")]
    assert issues(runner, good | {"age": True}) == [("inputs.age[0]", "dtype")]
    assert issues(runner, good | {"gender": 1}) == [("inputs.gender[0]", "dtype")]
    assert issues(runner, good | {"age": math.nan}) == [("inputs.age[0]", "nan")]
    assert issues(runner, good | {"age": math.inf}) == [("inputs.age[0]", "nan")]
    assert issues(runner, good | {"contract": None}) == [("inputs.contract[0]", "nan")]
    assert issues(runner, {k: v for k, v in good.items() if k != "age"} | {"agee": 3}) == [
        ("records[0]", "missing_field"), ("records[0]", "unknown_field")
    ]  # fmt: skip
    assert issues(runner, {"inputs": {k: [v] for k, v in good.items()} | {"age": [[1]]}}) == [("inputs.age[0]", "shape")]
    assert issues(runner, {"inputs": {k: [v] for k, v in good.items()} | {"age": [1, 2]}}) == [("inputs", "shape")]
    assert issues(runner, {"inputs": []}) == [("inputs", "shape")]
    assert issues(runner, "text") == [("inputs", "type")]
    assert issues(runner, {"inputs": {k: [v] * 3 for k, v in good.items()}, "extra": 1}) == [("", "unknown_field")]
    bad = issues(runner, {"inputs": {k: ["x"] * 50 for k in good}})
    assert len(bad) == 21 and bad[-1] == ("", "more")  # capped, with a count


def test_the_allow_policy_passes_missing_values_to_the_imputers(tmp_path: Path, models, keys) -> None:  # type: ignore[no-untyped-def]
    exported, test = models
    private, public = keys
    publish(tmp_path / "pub", private, exported[0], 1, test, nan_policy="allow")
    device = Device(tmp_path / "dev")
    device.pull(str(tmp_path / "pub" / "churn"), channel="stable", public_key=load_public_key(str(public)))
    answer = Runner(device.current()).predict(row(test) | {"age": None, "monthly_charges": math.nan, "gender": None})  # type: ignore[arg-type]
    assert answer["predictions"][0] in ("yes", "no")


def test_edge_predict_loads_no_heavy_library(runner: Runner, models) -> None:  # type: ignore[no-untyped-def]
    """`mlflowkit edge predict` in a fresh process: -X importtime lists every module it imported."""
    _, test = models
    device = runner.folder.parent.parent
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *CLI[1:], "edge", "predict", "--dir", str(device), "--json", json.dumps(row(test))],
        capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["version"] == 1
    imported = {
        line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if line.startswith("import time:")
    }
    assert {"onnxruntime", "numpy"} <= imported
    assert not imported & {"prefect", "ray", "great_expectations", "pandas", "sklearn", "torch", "tritonclient", "skl2onnx"}


def test_docstring_example_and_the_edge_example_validate(churn_project: Path) -> None:
    import re

    import mlflowkit

    example = re.search(r"```yaml\n(.*?)```", OnnxRuntimeTarget.__doc__ or "", re.S)
    assert example is not None
    spec_path = churn_project / "spec.yaml"
    spec_path.write_text(spec_path.read_text() + "\n".join(line[4:] for line in example.group(1).splitlines()) + "\n")
    spec = mlflowkit.load_spec(spec_path)
    (edge_target,) = spec.deploy.targets  # type: ignore[attr-defined]
    assert edge_target.signing.key_env == "MLFLOWKIT_EDGE_SIGNING_KEY" and edge_target.location == "s3://models/edge"
    example_spec = mlflowkit.load_spec(Path(__file__).resolve().parents[3] / "examples" / "churn-edge" / "spec.yaml")
    assert example_spec.deploy.targets[0].target == "onnxruntime"  # type: ignore[attr-defined]


def test_edge_predict_reads_a_csv_typed_by_the_contract(runner: Runner, models, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from mlflowkit.cli.edge import app

    _, test = models
    rows = test.drop(columns=["churned"]).head(3).copy()
    rows.loc[rows.index[0], "gender"] = None  # an empty cell: missing, refused under `reject`
    rows.iloc[1:].to_csv(tmp_path / "good.csv", index=False)
    rows.to_csv(tmp_path / "bad.csv", index=False)
    device = str(runner.folder.parent.parent)
    good = CliRunner().invoke(app, ["predict", "--dir", device, "--csv", str(tmp_path / "good.csv")])
    assert good.exit_code == 0, good.output
    assert len(json.loads(good.stdout)["predictions"]) == 2
    bad = CliRunner().invoke(app, ["predict", "--dir", device, "--csv", str(tmp_path / "bad.csv")])
    assert bad.exit_code == 1 and "inputs.gender[0]: missing value is not allowed" in bad.stderr


def test_prediction_log_samples_rotates_and_never_blocks(tmp_path: Path) -> None:
    from mlflowkit.edge.predlog import PredictionLog, rows_of

    assert rows_of({"inputs": {"a": [1, 2], "b": ["x", "y"]}}) == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    assert rows_of([{"a": 1}]) == rows_of({"records": [{"a": 1}]}) == rows_of({"inputs": [{"a": 1}]}) == [{"a": 1}]
    assert rows_of({"a": 1, "b": "x"}) == [{"a": 1, "b": "x"}]  # one record
    log = PredictionLog(tmp_path / "p.jsonl", sample=0.5, max_bytes=2000, backups=2, seed=1)
    for i in range(400):
        log.record([{"a": i}], {"model": "m", "version": 3, "predictions": ["yes"]})
    log.close()
    files = sorted(tmp_path.glob("p.jsonl*"))
    assert [f.name for f in files] == ["p.jsonl", "p.jsonl.1", "p.jsonl.2"]  # rotated, two backups kept
    assert all(f.stat().st_size <= 2000 for f in files)
    kept = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert 0 < len(kept) < 400 and all(k["version"] == 3 and k["label"] == "yes" for k in kept)

    # A stuck disk (a fake: the writer waits on an event before each line): requests still never wait.
    import threading
    import time

    full = PredictionLog(tmp_path / "q.jsonl", queue_size=1)
    gate, write = threading.Event(), full._handler.emit
    full._handler.emit = lambda record: (gate.wait(), write(record))  # type: ignore[method-assign]
    started = time.monotonic()
    for i in range(200):
        full.record([{"a": i}], {"predictions": ["no"]})
    assert time.monotonic() - started < 1.0
    gate.set()
    full.close()
    written = len((tmp_path / "q.jsonl").read_text().splitlines())
    assert written + full.dropped == 200 and full.dropped >= 197
