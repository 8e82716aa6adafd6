"""The operations policy end to end: custom steps refused before import, and the approval flow on a real run."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from local_server import untouched_state  # tests/helpers, on sys.path through conftest

import mlflowkit
from mlflowkit.errors import SpecError, StepFailed
from mlflowkit.kinds.base import Inputs, StepContext
from mlflowkit.kinds.python import PythonParams, PythonStep
from mlflowkit.policy import POLICY_ENV
from mlflowkit.store import ModelRegistry

CLI = [sys.executable, "-c", "from mlflowkit.cli import main; main()"]

EVIL = "import pathlib\npathlib.Path(__file__).with_name('IMPORTED').write_text('side effect')\n\ndef steal(df):\n    return df\n"


def cli(project: Path, *args: str, user: str = "tester") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PREFECT_HOME", POLICY_ENV}}
    env.update(COLUMNS="200", MLFLOWKIT_USER=user)
    return subprocess.run([*CLI, *args], cwd=project, capture_output=True, text=True, timeout=300, check=False, env=env)


def _line(path: Path, needle: str) -> int:
    return next(i for i, text in enumerate(path.read_text().splitlines(), 1) if needle in text)


@pytest.fixture
def evil_project(churn_project: Path) -> Path:
    """The example with a step whose module writes a file when imported, and a policy that allows only churn_steps."""
    (churn_project / "evil_steps.py").write_text(EVIL)
    spec = churn_project / "spec.yaml"
    spec.write_text(
        spec.read_text().replace("steps:\n", "steps:\n  - name: steal\n    uses: evil_steps:steal\n    after: split\n")
    )
    (churn_project / "policy.yaml").write_text("policy: mlflowkit/v1\nmodules:\n  steps: [churn_steps]\n")
    return churn_project


def test_a_custom_step_outside_the_allowed_prefixes_is_refused_before_import(evil_project: Path) -> None:
    marker = evil_project / "IMPORTED"
    line = _line(evil_project / "spec.yaml", "uses: evil_steps")
    for command in ("validate", "plan", "run"):
        result = cli(evil_project, command, "spec.yaml")
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert f"spec.yaml:{line}:11: steps[0].uses: custom step module 'evil_steps' is outside" in result.stderr
        assert "policy rule modules.steps at policy.yaml:3:3" in result.stderr
        assert not marker.exists(), f"{command} imported the module"
    assert untouched_state(evil_project)  # nothing ran, nothing was written

    # The Python API: a spec loaded without the policy is still refused when it is run.
    spec = mlflowkit.load_spec(evil_project / "spec.yaml", policy=False)
    with pytest.raises(SpecError, match="evil_steps"):
        mlflowkit.run(spec, orchestrate=False)
    assert untouched_state(evil_project)
    assert not marker.exists()

    # And the kind itself refuses right before importing, whatever reached it.
    ctx = StepContext(
        step="steal",
        run_id="r",
        spec_name="x",
        spec_hash="h",
        spec_dir=str(evil_project),
        store=None,
        registry=None,
        logger=logging.getLogger("test"),  # type: ignore[arg-type]
    )
    with pytest.raises(StepFailed, match=r"refused to import 'evil_steps'.*policy.yaml:3:3"):
        PythonStep().run(ctx, PythonParams(uses="evil_steps:steal"), Inputs({}, ()))
    assert not marker.exists()

    # Allowed by the policy, the same module is imported (so the marker could have appeared above).
    (evil_project / "policy.yaml").write_text("policy: mlflowkit/v1\nmodules:\n  steps: [churn_steps, evil_steps]\n")
    assert cli(evil_project, "validate", "spec.yaml").returncode == 0
    with pytest.raises(StepFailed, match="emitted no table"):
        PythonStep().run(ctx, PythonParams(uses="evil_steps:steal"), Inputs({}, ()))
    assert marker.read_text() == "side effect"


def test_policy_check_prints_a_compliance_table(churn_project: Path, tmp_path: Path) -> None:
    other = tmp_path / "specs"
    other.mkdir()
    (other / "good.yaml").write_text((churn_project / "spec.yaml").read_text())
    (other / "notes.yaml").write_text("not: a spec\n")
    for name in ("bad.yaml", "good.yaml"):
        (other / name).write_text((churn_project / "spec.yaml").read_text())
    bad = other / "bad.yaml"
    text = bad.read_text()
    bad.write_text(text[: text.index("  - schema:")] + text[text.index("  - rows: {min: 1000}") :])
    policy = Path(__file__).resolve().parents[2] / "examples" / "churn" / "policy.example.yaml"
    result = cli(tmp_path, "policy", "check", "specs", "--policy", str(policy))
    assert result.returncode == 1, result.stdout + result.stderr
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.startswith("│ specs/")}
    assert set(rows) == {"specs/bad.yaml", "specs/good.yaml"}  # notes.yaml is not a spec
    assert "compliant" in rows["specs/good.yaml"]
    assert "violates" in rows["specs/bad.yaml"] and "checks.require[0]" in rows["specs/bad.yaml"]
    rule_line, spec_line = _line(policy, "require: [schema]"), _line(bad, "checks:")
    assert f"policy.example.yaml:{rule_line}:" in result.stdout and f"specs/bad.yaml:{spec_line}:1: checks:" in result.stdout
    assert "1 of 2 specs comply" in result.stdout
    bad.unlink()
    assert cli(tmp_path, "policy", "check", "specs", "--policy", str(policy)).returncode == 0


APPROVAL = """policy: mlflowkit/v1
promotion:
  promoters: [tester]
  approvers: [carol]
  require_approval: true
"""


@pytest.mark.prefect
@pytest.mark.slow
def test_a_run_under_an_approval_policy_keeps_a_challenger_until_approved(churn_project: Path) -> None:
    (churn_project / "policy.yaml").write_text(APPROVAL)
    assert cli(churn_project, "edge", "keygen", "--out", "keys/edge.pem").returncode == 0
    with (churn_project / "spec.yaml").open("a") as spec:  # an edge channel to deploy to once approved
        spec.write("\ndeploy:\n  - {target: onnxruntime, location: bundles, channel: stable, signing: {key_file: keys/edge.pem}}\n")
    index = churn_project / "bundles" / "churn" / "index.json"
    result = cli(churn_project, "run", "spec.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "awaiting approval" in result.stdout and not index.exists()
    registry = ModelRegistry(churn_project / ".mlflowkit" / "registry")
    assert registry.aliases("churn") == {"challenger": 1}  # gates passed, but no champion without approval
    version = registry.get("churn", 1)
    assert version.lineage["verdict"]["passed"] is True
    assert version.lineage["governance"]["require_approval"] is True
    assert version.lineage["governance"]["registered_by"] == "tester"
    (event,) = registry.history("churn")
    assert "held: the policy requires an approval before champion" in event.reason and "policy.yaml:5:3" in event.reason
    record = json.loads(next((churn_project / ".mlflowkit" / "runs").glob("*.json")).read_text())
    deploy = next(s for s in record["steps"] if s["name"] == "deploy")
    assert deploy["status"] == "ran" and deploy["outputs"] == {}  # nothing deployed

    refused = cli(churn_project, "models", "promote", "churn", "1", "--reason", "ship it")
    assert refused.returncode == 1 and "no recorded approval" in refused.stderr
    assert cli(churn_project, "models", "approve", "churn", "1", "--reason", "self").returncode == 1  # tester is no approver
    approved = cli(churn_project, "models", "approve", "churn", "1", "--reason", "reviewed the fairness report", user="carol")
    assert approved.returncode == 0, approved.stderr
    promoted = cli(churn_project, "models", "promote", "churn", "1", "--reason", "approved by carol", "--spec", "spec.yaml")
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    assert registry.aliases("churn") == {"champion": 1}
    assert "onnxruntime at bundles#stable: v1 serving" in promoted.stdout  # promotion deployed it to the spec's targets
    assert json.loads(index.read_text())["channels"]["stable"]["current"] == 1
    assert [(a.actor, a.reason) for a in registry.approvals("churn", 1)] == [("carol", "reviewed the fairness report")]
    assert [(e.alias, e.version, e.actor) for e in registry.history("churn")] == [
        ("challenger", 1, "tester"),
        ("champion", 1, "tester"),
        ("challenger", None, "tester"),
    ]
    audit = cli(churn_project, "models", "audit", "churn")
    assert audit.returncode == 0 and "audit trail intact" in audit.stdout
