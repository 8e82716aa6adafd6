"""Release records and the rollback that moves the registry and every target together (two edge channels here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "helpers"))
from edge_helpers import release, target

from mlflowkit.errors import RegistryError
from mlflowkit.release import read_record, rollback, write_record
from mlflowkit.store import ModelRegistry
from mlflowkit.store.promotion import promote
from mlflowkit.targets.onnxruntime import OnnxRuntimeTarget


def channel(location: Path) -> int:
    return int(json.loads((location / "churn" / "index.json").read_text())["channels"]["stable"]["current"])


@pytest.fixture
def deployed(tmp_path: Path, models, keys, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """v1 then v2 registered, promoted and deployed to two edge locations (the second signs with a key from $EDGE_B)."""
    exported, _ = models
    private, _ = keys
    monkeypatch.setenv("EDGE_B", private.read_text())
    registry = ModelRegistry(tmp_path / "registry")
    a, b = tmp_path / "a", tmp_path / "b"
    targets = [
        target(a, private),
        OnnxRuntimeTarget.model_validate({"target": "onnxruntime", "location": str(b), "signing": {"key_env": "EDGE_B"}}),
    ]
    for number in (1, 2):
        data, contract = exported[number - 1]
        registry.register(
            "churn", {"model.onnx": data, "contract.json": contract.model_dump_json().encode()}, {"run_id": f"r{number}"}
        )
        promote(registry, "churn", number, reason="test")
        records = [t.deploy(release(exported[number - 1], number), name="churn", log=print) for t in targets]
        write_record(registry, "churn", number, targets=targets, records=records, cause=f"run r{number}")
    return registry, a, b


def test_rollback_redeploys_every_target_then_moves_champion(deployed) -> None:  # type: ignore[no-untyped-def]
    registry, a, b = deployed
    assert (channel(a), channel(b)) == (2, 2)
    report = rollback(registry, "churn", reason="bad in the field")
    assert report.ok and (report.from_version, report.to_version) == (2, 1)
    assert [t["status"] for t in report.targets] == ["v1 serving", "v1 serving"]
    assert (channel(a), channel(b)) == (1, 1)
    assert registry.aliases("churn")["champion"] == 1
    assert read_record(registry, "churn", 1)["cause"] == "rollback: bad in the field"  # type: ignore[index]


def test_a_failing_target_undoes_the_others_and_champion_stays(deployed, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    registry, a, b = deployed
    monkeypatch.delenv("EDGE_B")  # the second target cannot sign any more
    report = rollback(registry, "churn", reason="bad in the field")
    assert not report.ok
    assert report.targets[0]["status"] == "v1 served, then v2 again"
    assert report.targets[1]["status"] == "failed" and "$EDGE_B is not set" in report.targets[1]["error"]
    assert "champion stays v2" in report.note
    assert (channel(a), channel(b)) == (2, 2)
    assert registry.aliases("churn")["champion"] == 2


def test_without_a_release_record_only_the_registry_moves(tmp_path: Path, models) -> None:  # type: ignore[no-untyped-def]
    exported, _ = models
    registry = ModelRegistry(tmp_path / "registry")
    for number in (1, 2):
        data, contract = exported[number - 1]
        registry.register("churn", {"model.onnx": data, "contract.json": contract.model_dump_json().encode()}, {})
        promote(registry, "churn", number, reason="test")
    report = rollback(registry, "churn", reason="manual")
    assert report.ok and report.to_version == 1 and "no release record for v2" in report.note
    with pytest.raises(RegistryError, match="has no previous version to roll back to"):
        rollback(registry, "churn", reason="again")
