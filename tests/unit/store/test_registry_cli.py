"""The registry's CLI reads through the registry's storage: ``models audit`` and ``history`` on a folder and on S3 (moto)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlflowkit.cli import app
from mlflowkit.store import ModelRegistry
from mlflowkit.store.promotion import approve


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An artifact store root (its registry is ``<root>/registry``): a folder, or a prefix on the session's S3 server."""
    return str(request.getfixturevalue("s3_root")) if request.param == "s3" else str(tmp_path / "store")


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_models_audit_reads_through_the_registry_storage(store: str) -> None:
    registry = ModelRegistry(store.rstrip("/") + "/registry")
    registry.register("churn", {"model.bin": b"x"}, {})
    registry.register("churn", {"model.bin": b"y"}, {})
    registry.set_alias("churn", "champion", 1, reason="first", actor="alice")
    registry.set_alias("churn", "champion", 2, reason="better", actor="alice")
    approve(registry, "churn", 2, reason="reviewed", actor="carol")
    heads = registry.audit_heads("churn")
    assert heads["events"] == registry.history("churn")[-1].hash and heads["approvals"] == registry.approvals("churn")[0].hash

    code, output = _cli("models", "audit", "churn", "--store", store)
    assert code == 0, output
    assert "2 alias moves, 1 approvals" in output and "audit trail intact" in output
    assert f"events head {heads['events']}" in output and f"approvals head {heads['approvals']}" in output

    # Rewrite who made the first move, in whatever form this storage keeps it.
    storage = registry.storage
    (first, *_) = storage.log_read("churn", "events")
    raw_key = "churn/events.jsonl" if first.label.startswith("events.jsonl") else "churn/events/000000000001.json"
    raw = storage.read(raw_key)
    if raw_key.endswith(".jsonl"):
        lines = raw.decode().splitlines()
        entry = json.loads(lines[0])
        entry["actor"] = "mallory"
        storage.write(raw_key, ("\n".join([json.dumps(entry), *lines[1:]]) + "\n").encode())
    else:
        doc = json.loads(raw)
        doc["entry"]["actor"] = "mallory"
        storage.write(raw_key, json.dumps(doc).encode())

    code, output = _cli("models", "audit", "churn", "--store", store)
    assert code == 1
    assert f"tampered: {first.label}: does not match the hash chain" in " ".join(output.split())
