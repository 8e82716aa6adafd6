"""Inputs: outputs of upstream steps by name, the nearer step winning; StepContext.report's contract."""

from __future__ import annotations

import logging

import pytest

from mlflowkit.kinds.base import Inputs, Report, StepContext
from mlflowkit.store import ArtifactStore, Ref, registry_at


def _ref(key: str) -> Ref:
    return Ref(key=f"objects/{key}", sha256=key, size=1, media_type="application/json")


def test_nearer_step_wins_and_missing_names_say_what_exists() -> None:
    inputs = Inputs({"split": {"train": _ref("a"), "test": _ref("b")}, "feat": {"train": _ref("c")}}, ("split", "feat"))
    assert inputs["train"].sha256 == "c" and inputs["test"].sha256 == "b"
    assert sorted(inputs) == ["test", "train"]
    with pytest.raises(KeyError, match=r"no upstream step produced 'model' \(upstream produced: test, train\)"):
        inputs["model"]


def test_report_needs_exactly_one_body(tmp_path: object) -> None:
    seen: list[Report] = []
    store = ArtifactStore(str(tmp_path))
    ctx = StepContext(step="s", run_id="r", spec_name="n", spec_hash="h", spec_dir=".", store=store,
                      registry=registry_at(str(tmp_path)), logger=logging.getLogger("t"), publish=seen.append)
    ctx.report("k", "title", rows=[{"a": 1}])
    assert seen == [Report(key="k", title="title", step="s", rows=[{"a": 1}])]
    with pytest.raises(ValueError, match="exactly one of rows= or markdown="):
        ctx.report("k", "title")
    with pytest.raises(ValueError, match="exactly one of rows= or markdown="):
        ctx.report("k", "title", rows=[], markdown="x")
