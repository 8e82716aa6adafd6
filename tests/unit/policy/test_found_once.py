"""One policy governs a run: found once when the run starts and handed to every step, never looked up again."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import mlflowkit
from mlflowkit.errors import StepFailed
from mlflowkit.kinds._policy import governing_policy
from mlflowkit.kinds.base import Inputs, StepContext
from mlflowkit.kinds.python import PythonParams, PythonStep
from mlflowkit.policy import POLICY_ENV, load_policy
from mlflowkit.policy import load as policy_load
from mlflowkit.scaffold import scaffold

POLICY = "policy: mlflowkit/v1\nmodules:\n  estimators: [sklearn.]\n  steps: [features]\npromotion:\n  promoters: [tester]\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scaffolded project (its checks dropped: no GX here) governed by a policy.yaml beside the spec."""
    monkeypatch.delenv(POLICY_ENV, raising=False)
    monkeypatch.setenv("MLFLOWKIT_USER", "tester")
    scaffold("tabular-classification", tmp_path / "p", name="once")
    spec = tmp_path / "p" / "spec.yaml"
    text = spec.read_text()
    spec.write_text(text[: text.index("checks:")] + text[text.index("train:") :])
    (tmp_path / "p" / "policy.yaml").write_text(POLICY)
    return tmp_path / "p"


def test_a_run_finds_the_policy_once(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = mlflowkit.load_spec(project / "spec.yaml")  # checked against the policy here: that is validation
    lookups: list[str] = []
    real = policy_load.policy_path

    def counted(start: str | Path) -> Path | None:
        lookups.append(str(start))
        return real(start)

    monkeypatch.setattr(policy_load, "policy_path", counted)
    result = mlflowkit.run(spec, orchestrate=False)

    assert result.ok, result.error
    assert [s.status for s in result.steps if s.name in {"train", "register"}] == ["ran", "ran"]
    # The run looked it up when it started; train (the estimator allow-list) and register (who may promote)
    # were handed that one.
    assert lookups == [spec.spec_dir], lookups


def test_a_context_made_by_hand_is_still_governed(project: Path) -> None:
    """A step run outside the runner looks the policy up itself: it never runs ungoverned."""
    ctx = StepContext(
        step="steal", run_id="r", spec_name="x", spec_hash="h", spec_dir=str(project),
        store=None, registry=None, logger=logging.getLogger("test"),  # type: ignore[arg-type]
    )  # fmt: skip
    assert governing_policy(ctx) is load_policy(project / "policy.yaml")
    (project / "nosy.py").write_text("raise SystemExit('imported')\n")
    with pytest.raises(StepFailed, match="refused to import 'nosy'"):
        PythonStep().run(ctx, PythonParams(uses="nosy:f"), Inputs({}, ()))
    handed = StepContext(**{**ctx.__dict__, "policy": None})  # the runner found none: nothing to refuse
    assert governing_policy(handed) is None
