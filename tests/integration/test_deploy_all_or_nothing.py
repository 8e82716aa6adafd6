"""A deploy to several targets is all or nothing: when a later target fails, the earlier ones serve the old version again.

Two edge channels (real signed bundles on disk) stand in for two targets; the second one fails for
real (its signing key's variable is unset for the second run).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlflowkit.store import ModelRegistry

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

CLI = [sys.executable, "-c", "from mlflowkit.cli import main; main()"]
DEPLOY = """
deploy:
  - {target: onnxruntime, location: bundles, channel: stable, signing: {key_file: keys/edge.pem}}
  - {target: onnxruntime, location: bundles, channel: canary, signing: {key_env: CANARY_KEY}}
"""


def _cli(project: Path, *args: str, key: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PREFECT_HOME", "CANARY_KEY"}} | {"COLUMNS": "200"}
    if key is not None:
        env["CANARY_KEY"] = key
    return subprocess.run([*CLI, *args], cwd=project, env=env, capture_output=True, text=True, timeout=600, check=False)


def test_a_failing_second_target_puts_the_first_back(churn_project: Path) -> None:
    assert _cli(churn_project, "edge", "keygen", "--out", "keys/edge.pem", key=None).returncode == 0
    key = (churn_project / "keys" / "edge.pem").read_text()
    with (churn_project / "spec.yaml").open("a") as spec:
        spec.write(DEPLOY)
    index = churn_project / "bundles" / "churn" / "index.json"

    first = _cli(churn_project, "run", "spec.yaml", key=key)
    assert first.returncode == 0, first.stdout + first.stderr
    channels = json.loads(index.read_text())["channels"]
    assert channels["stable"]["current"] == channels["canary"]["current"] == 1

    second = _cli(churn_project, "run", "spec.yaml", "--set", "params.n_estimators=40", key=None)
    assert second.returncode == 1
    message = second.stdout + second.stderr
    assert "deploy[1] (onnxruntime)" in message and "CANARY_KEY is not set" in message
    assert "serves v1 again" in message and "champion is v1 again" in message
    channels = json.loads(index.read_text())["channels"]
    assert channels["stable"]["current"] == 1 and channels["canary"]["current"] == 1
    registry = ModelRegistry(churn_project / ".mlflowkit" / "registry")
    assert registry.aliases("churn")["champion"] == 1 and len(registry.versions("churn")) == 2

    # The retry, once the key is back: v2 reaches both channels and becomes champion again.
    retry = _cli(churn_project, "run", "spec.yaml", "--set", "params.n_estimators=40", key=key)
    assert retry.returncode == 0, retry.stdout + retry.stderr
    channels = json.loads(index.read_text())["channels"]
    assert channels["stable"]["current"] == channels["canary"]["current"] == 2
    assert registry.aliases("churn")["champion"] == 2

    # An operator's rollback is not undone by a rerun of the deploy step.
    back = _cli(churn_project, "models", "rollback", "churn", "--reason", "v2 misbehaves", key=key)
    assert back.returncode == 0, back.stdout + back.stderr
    assert json.loads(index.read_text())["channels"]["stable"]["current"] == 1
    rerun = _cli(churn_project, "run", "spec.yaml", "--set", "params.n_estimators=40", "--from", "deploy", key=key)
    assert rerun.returncode == 1 and "lost champion to v1 after it was deployed" in rerun.stdout + rerun.stderr
    channels = json.loads(index.read_text())["channels"]
    assert channels["stable"]["current"] == channels["canary"]["current"] == 1
    assert registry.aliases("churn")["champion"] == 1
