"""A hybrid release: one run deploys to a real Triton and to an edge channel; `models rollback` rolls both back together."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helpers"))
from edge_helpers import CLI, churn_frame, edge, keypair, predict_version
from triton_helpers import ask_http, local_triton

from mlflowkit.targets import triton_local

pytestmark = [pytest.mark.triton, pytest.mark.slow, pytest.mark.prefect]


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[triton_local.LocalTriton]:
    """A real Triton server (the nvidia-pytriton build) for this module."""
    yield from local_triton(tmp_path_factory, "triton-hybrid")


def triton_version(server: triton_local.LocalTriton, name: str, rows: pd.DataFrame) -> str:
    """Ask Triton (no version: whatever serves) and return the version that answered."""
    from mlflowkit.targets.contract import Contract

    contract = Contract.model_validate_json((Path(server.model_repository).parent / "contract.json").read_text())
    return str(ask_http(server, name, contract, rows).get_response()["model_version"])


def test_one_run_deploys_to_triton_and_the_edge_and_rollback_moves_both(
    triton: triton_local.LocalTriton, churn_project: Path, tmp_path: Path
) -> None:
    import mlflowkit
    from mlflowkit.release import read_record
    from mlflowkit.runtime.engine import run_spec
    from mlflowkit.store import ModelRegistry

    private, public = keypair(tmp_path)
    edge_location, device = tmp_path / "edge-bundles", tmp_path / "device"
    spec_path = churn_project / "spec.yaml"
    spec_path.write_text(
        spec_path.read_text()
        + textwrap.dedent(
            f"""
            deploy:
              - target: triton
                url: {triton.http_url}
                model_repository: {triton.model_repository}
                model_name: churn-hybrid
                backend: python
                smoke_rows: 16
              - target: onnxruntime
                location: {edge_location}
                channel: stable
                signing: {{key_file: {private}}}
            """
        )
    )

    def run(*overrides: str) -> Any:
        spec = mlflowkit.load_spec(spec_path, overrides=list(overrides))
        return run_spec(spec, mlflowkit.compile(spec))

    registry = ModelRegistry(churn_project / ".mlflowkit" / "registry")
    rows = churn_frame().head(8)
    source = ["--source", str(edge_location / "churn"), "--dir", str(device), "--public-key", str(public)]

    first = run()
    assert first.ok, first.error
    (Path(triton.model_repository).parent / "contract.json").write_bytes(registry.read_file("churn", 1, "contract.json"))
    from mlflowkit.store import ArtifactStore

    step = next(s for s in first.steps if s.name == "deploy")
    deployment = json.loads(ArtifactStore(churn_project / ".mlflowkit").get_bytes(step.outputs["deployment"]))
    assert [t["target"] for t in deployment["targets"]] == ["triton", "onnxruntime"]
    assert triton_version(triton, "churn-hybrid", rows) == "1"
    edge("pull", *source, check=True)
    assert predict_version(device, rows) == 1

    second = run("params.n_estimators=20")
    assert second.ok, second.error
    assert registry.aliases("churn")["champion"] == 2
    assert triton_version(triton, "churn-hybrid", rows) == "2"
    edge("pull", *source, check=True)
    assert predict_version(device, rows) == 2

    # The release record lists both targets, with what each reported.
    record = read_record(registry, "churn", 2)
    assert record is not None
    assert [(t["settings"]["target"], t["record"]["version"]) for t in record["targets"]] == [("triton", 2), ("onnxruntime", 2)]

    rolled = subprocess.run(
        [*CLI, "models", "rollback", "churn", "--reason", "v2 misbehaves in the field", "--spec", str(spec_path)],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}, timeout=300, check=False,
    )  # fmt: skip
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert f"✓ triton at {triton.http_url}: v1 serving" in rolled.stdout
    assert f"✓ onnxruntime at {edge_location}#stable: v1 serving" in rolled.stdout
    assert "churn v1 is champion again" in rolled.stdout
    assert registry.aliases("churn")["champion"] == 1

    # Both serve v1: Triton at once, the device after its next pull (the channel points at v1 again).
    assert triton_version(triton, "churn-hybrid", rows) == "1"
    index = json.loads((edge_location / "churn" / "index.json").read_text())
    assert index["channels"]["stable"]["current"] == 1 and index["channels"]["stable"]["previous"] == 2
    pulled = edge("pull", *source, check=True)
    assert json.loads(pulled.stdout)["version"] == 1
    assert predict_version(device, rows) == 1
    assert read_record(registry, "churn", 1)["cause"].startswith("rollback: ")  # type: ignore[index]
