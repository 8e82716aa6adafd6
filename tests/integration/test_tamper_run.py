"""The three store-writer tampers of issue #19, end to end through real runs (no orchestrator), on a local
store and on S3 (moto): a rerun notices and recomputes, no pickle ever runs, a forged champion is refused.

A small spec (a random forest on 500 rows of the reference data, exported to ONNX and registered) keeps
each run to a few seconds; the reference example is exercised the same way by hand (docs/threat-model.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import mlflowkit
from mlflowkit.edge.signing import generate_keypair
from mlflowkit.errors import RegistryError
from mlflowkit.runtime.engine import RunResult, run_spec
from mlflowkit.store import ArtifactStore, Ref, registry_at
from mlflowkit.store.trust import SIGNING_KEY_ENV, TRUSTED_KEYS_ENV

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helpers"))
from forged_models import popen_model

CHURN = Path(__file__).resolve().parents[2] / "examples" / "churn" / "data" / "churn.csv"


class _Payload:
    """Unpickling it creates a marker file: the proof that a pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


@pytest.fixture(params=["local", "s3"])
def project(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """A spec folder and the store its runs use (the folder's .mlflowkit, or a prefix on S3)."""
    for var in (SIGNING_KEY_ENV, TRUSTED_KEYS_ENV):
        monkeypatch.delenv(var, raising=False)
    folder = tmp_path / "project"
    folder.mkdir()
    lines = CHURN.read_text().splitlines()[:501]
    (folder / "churn.csv").write_text("\n".join(lines) + "\n")
    (folder / "spec.yaml").write_text(
        textwrap.dedent(
            """\
            spec: mlflowkit/v1
            name: tamper
            recipe: tabular-classification
            params: {n_estimators: 15}
            data: {source: churn.csv, target: churned}
            train:
              estimator: sklearn.ensemble.RandomForestClassifier
              params: {n_estimators: "${params.n_estimators}", max_depth: 6, random_state: 0}
            evaluate: {metrics: [accuracy, roc_auc]}
            gates:
              - roc_auc >= champion.roc_auc - 0.5
            register: {model: churn}
            """
        )
    )
    store = str(request.getfixturevalue("s3_root")) if request.param == "s3" else str(folder / ".mlflowkit")
    return folder, store


def _run(project: tuple[Path, str], *, from_step: str | None = None, **params: Any) -> RunResult:
    folder, store = project
    spec = mlflowkit.load_spec(folder / "spec.yaml", overrides=[f"params.{k}={v}" for k, v in params.items()])
    return run_spec(spec, mlflowkit.compile(spec), store=store, from_step=from_step, orchestrate=False)


def _status(result: RunResult) -> dict[str, str]:
    return {s.name: s.status for s in result.steps}


def _output(result: RunResult, step: str, name: str) -> Ref:
    return Ref.model_validate(next(s for s in result.steps if s.name == step).outputs[name])


def _cache_entry(store: ArtifactStore, step: str) -> str:
    for key in store.list_keys("cache/"):
        if store.read_json(key)["step"] == step:
            return key
    raise AssertionError(f"no cache entry for {step}")


def test_a_pickle_in_place_of_the_model_is_noticed_and_never_runs(
    project: tuple[Path, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = _run(project)
    assert first.ok, first.error
    store = ArtifactStore(project[1])
    model = _output(first, "train", "model")
    marker = tmp_path / "PWNED"
    payload = pickle.dumps(_Payload(marker))
    store.fs.pipe_file(store.where(model), payload)  # the store writer's replacement

    with caplog.at_level(logging.WARNING, logger="mlflowkit.runtime"):
        again = _run(project)
    assert again.ok, again.error
    assert _status(again)["train"] == "ran" and _status(again)["load"] == "cached"
    assert f"its cached output 'model' ({model.key}) is damaged or was replaced" in caplog.text
    assert hashlib.sha256(payload).hexdigest() in caplog.text
    assert store.problem(_output(again, "train", "model")) is None  # a fresh model (skops files name objects by id)

    # Now the cache entry too, with the payload's true hash: every hash checks out.
    forged = store.put_bytes(payload, model.media_type, model.meta)
    entry = _cache_entry(store, "train")
    doc = store.read_json(entry)
    doc["outputs"]["model"] = forged.model_dump(mode="json")
    store.write_json(entry, doc)
    refused = _run(project, from_step="evaluate")
    assert not refused.ok and _status(refused)["evaluate"] == "failed"
    assert f"{forged.key} is not a model file mlflowkit can read" in (refused.error or "")
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # as outside pytest: numpy.distutils only warns on import
def test_a_model_file_naming_a_class_that_runs_code_is_refused(project: tuple[Path, str], tmp_path: Path) -> None:
    # A skops file, not a pickle: its only type is `numpy.distutils.fcompiler.gnu.Popen`, which is
    # subprocess.Popen under a numpy name. The store writer plants it and points the train step's cache entry
    # at it with its true hash; the plain rerun that follows reads it as the model to evaluate.
    first = _run(project)
    assert first.ok, first.error
    store = ArtifactStore(project[1])
    model = _output(first, "train", "model")
    marker = tmp_path / "PWNED"
    forged = store.put_bytes(popen_model(str(marker)), model.media_type)
    forged = forged.model_copy(update={"meta": {**model.meta, "skops_types": ["numpy.distutils.fcompiler.gnu.Popen"]}})
    entry = _cache_entry(store, "train")
    doc = store.read_json(entry)
    doc["outputs"]["model"] = forged.model_dump(mode="json")
    store.write_json(entry, doc)

    refused = _run(project)
    assert not refused.ok and _status(refused)["train"] == "cached" and _status(refused)["evaluate"] == "failed"
    assert "numpy.distutils.fcompiler.gnu.Popen (it is subprocess.Popen, under another name)" in (refused.error or "")
    assert "it was not loaded" in (refused.error or "")
    time.sleep(0.2)
    assert not marker.exists()


def test_a_corrupted_table_is_recomputed_and_rewritten(project: tuple[Path, str], caplog: pytest.LogCaptureFixture) -> None:
    first = _run(project)
    assert first.ok, first.error
    store = ArtifactStore(project[1])
    table = _output(first, "split", "train")
    data = bytearray(store.get_bytes(table))
    data[len(data) // 2] ^= 0xFF

    for from_step in ("evaluate", None):  # --from a later step (which reads it from the cache), and a plain rerun
        store.fs.pipe_file(store.where(table), bytes(data))  # same size: only the hash tells
        with caplog.at_level(logging.WARNING, logger="mlflowkit.runtime"):
            again = _run(project, from_step=from_step)
        assert again.ok, again.error
        assert "its cached output 'train'" in caplog.text and _status(again)["split"] in {"ran", "cached"}
        assert store.problem(table) is None  # rewritten whole: the next reader gets the right bytes
        caplog.clear()


def test_a_forged_champion_is_refused_and_nothing_is_promoted(
    project: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generate_keypair(tmp_path / "registry.pem", tmp_path / "registry.pub")
    monkeypatch.setenv(SIGNING_KEY_ENV, str(tmp_path / "registry.pem"))
    first = _run(project)
    assert first.ok, first.error
    registry = registry_at(project[1])
    assert registry.aliases("churn") == {"champion": 1} and registry.signature("churn", 1).state == "verified"

    # The registry writer replaces the champion's ONNX model, writes its hash into version.json, and better metrics.
    storage = registry.storage
    onnx = storage.read("churn/versions/1/model.onnx") + b"\x00"
    storage.write("churn/versions/1/model.onnx", onnx)
    doc = json.loads(storage.read("churn/versions/1/version.json"))
    doc["digests"]["model.onnx"] = hashlib.sha256(onnx).hexdigest()
    doc["lineage"]["metrics"]["roc_auc"] = 0.999
    storage.write("churn/versions/1/version.json", (json.dumps(doc, sort_keys=True, indent=2) + "\n").encode())

    second = _run(project, n_estimators=20)
    assert not second.ok and _status(second)["gates"] == "failed"
    assert second.verdict is not None
    rule = next(r for r in second.verdict.rules if "champion" in r.rule)
    assert rule.passed is False
    note = second.verdict.champion.note
    assert second.verdict.champion.metrics is None and "churn v1 is forged or damaged" in note and "version.json" in note
    assert registry.aliases("churn") == {"champion": 1}  # nothing moved
    assert [v.version for v in registry.versions("churn")] == [1]

    monkeypatch.delenv(SIGNING_KEY_ENV)
    monkeypatch.setenv(TRUSTED_KEYS_ENV, str(tmp_path / "registry.pub"))
    with pytest.raises(RegistryError, match="forged"):  # a reader holding only the public key
        registry_at(project[1]).get("churn", "champion")
