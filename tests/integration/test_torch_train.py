"""Data-parallel torch on real Ray Train: 2 DDP workers reach a loss, a killed worker resumes, no budget fails clean.

One local Ray instance (2 CPUs) serves the module; the kind sees it running and leaves it up. The only
fake is the named fault injection (``MLFLOWKIT_TEST_KILL_WORKER_AT_EPOCH``): a worker SIGKILLs itself once.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mlflowkit
from mlflowkit.errors import RegistryError
from mlflowkit.kinds._frames import load_frame
from mlflowkit.kinds._torch_loop import KILL_ENV
from mlflowkit.kinds.model_files import load_model
from mlflowkit.runtime.engine import RunResult, run_spec
from mlflowkit.store import ArtifactStore, Ref, registry_at

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent.parent
CHURN = REPO / "examples" / "churn" / "data" / "churn.csv"
TARGET_LOSS = 0.44  # the churn data's signal is logistic; its best log loss is about 0.42


@pytest.fixture(scope="module")  # one Ray for the module; shut down before other tests run
def ray_local() -> Iterator[Any]:
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def _project(folder: Path, *, max_failures: int = 1, extra: str = "") -> Path:
    """A spec training on the shipped churn data with 2 workers; export and register included."""
    folder.mkdir(parents=True)
    shutil.copy(CHURN, folder / "churn.csv")
    spec = f"""\
        spec: mlflowkit/v1
        name: torch-ddp
        recipe: torch-tabular-classification
        data:
          source: churn.csv
          target: churned
        train:
          hidden: [32, 16]
          exclude: [customer_id]
          num_workers: 2
          epochs: 6
          batch_size: 128
          lr: 0.003
          checkpoint_every: 1
          target_loss: {TARGET_LOSS}
          max_failures: {max_failures}
          seed: 7
        evaluate: {{metrics: [accuracy, roc_auc, log_loss]}}
        register: {{model: torch-ddp}}
        """
    (folder / "spec.yaml").write_text(textwrap.dedent(spec) + extra)
    return folder


def _run(project: Path) -> RunResult:
    spec = mlflowkit.load_spec(project / "spec.yaml")
    return run_spec(spec, mlflowkit.compile(spec), orchestrate=False)


def _outputs(result: RunResult, step: str = "train") -> dict[str, Ref]:
    record = next(s for s in result.steps if s.name == step)
    return {k: Ref.model_validate(v) for k, v in record.outputs.items()}


@pytest.fixture(scope="module")
def baseline(ray_local: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunResult, list[str]]:
    """One uninterrupted run on 2 workers, with its progress lines."""
    project = _project(tmp_path_factory.mktemp("torch") / "baseline")
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("mlflowkit.step.train")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        result = _run(project)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return project, result, lines


def test_ddp_on_two_workers_trains_to_the_loss_threshold(baseline: tuple[Path, RunResult, list[str]]) -> None:
    project, result, lines = baseline
    assert result.ok, result.error
    meta = _outputs(result)["model"].meta
    torch_meta = meta["torch"]
    assert torch_meta["num_workers"] == 2
    assert torch_meta["start_epoch"] == 0 and torch_meta["attempt_start_epochs"] == [0]
    history = torch_meta["history"]
    assert torch_meta["best_loss"] <= TARGET_LOSS
    assert history[-1]["val_loss"] <= TARGET_LOSS < history[0]["val_loss"]
    assert len(history) < 6  # stopped at the target, before the last epoch
    # Progress: every epoch shown live, with its loss; the workers formed one group of 2.
    assert "training on 2 workers" in lines
    for row in history:
        assert any(line.startswith(f"epochs {row['epoch']}/6: train loss ") for line in lines), lines
    assert "reached target_loss" in " ".join(lines)
    # The stored model takes raw columns (text included) and scores like the evaluate step says.
    store = ArtifactStore(project / ".mlflowkit")
    model = load_model(store, _outputs(result)["model"])
    test = load_frame(store, _outputs(result, "split")["test"])
    proba = model.predict_proba(test)
    assert proba.shape == (len(test), 2) and set(model.predict(test)) <= {"yes", "no"}
    metrics = _outputs(result, "evaluate")["metrics"].meta["metrics"]
    assert metrics["roc_auc"] > 0.75
    # Exported and registered: ONNX and its contract travel with the version.
    registry = registry_at(store.root)
    version = registry.get("torch-ddp", "champion")
    contract = json.loads(registry.read_file("torch-ddp", version.version, "contract.json"))
    assert contract["classes"] == ["no", "yes"] and contract["layout"] == "columns"
    assert contract["producer"]["torch"].startswith("2.13")


def test_killed_worker_is_retried_and_resumes_from_its_checkpoint(
    baseline: tuple[Path, RunResult, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KILL_ENV, "1")  # the last worker SIGKILLs itself in the second epoch, once
    project = _project(tmp_path / "killed", max_failures=1)
    result = _run(project)
    assert result.ok, result.error
    torch_meta = _outputs(result)["model"].meta["torch"]
    # Ray Train restarted the worker group, which resumed from the checkpoint after epoch 1.
    assert torch_meta["attempt_start_epochs"] == [0, 1]
    assert torch_meta["start_epoch"] == 1 > 0
    record = json.loads((project / ".mlflowkit" / "runs" / f"{result.run_id}.json").read_text())
    train = next(s for s in record["steps"] if s["name"] == "train")
    assert train["outputs"]["model"]["meta"]["torch"]["start_epoch"] == 1
    # Seeds per (epoch, worker): the resumed run is the run that never broke, to the last digit.
    reference = _outputs(baseline[1])["model"].meta["torch"]
    assert torch_meta["history"] == reference["history"]
    store = ArtifactStore(project / ".mlflowkit")
    resumed = load_model(store, _outputs(result)["model"])
    original = load_model(ArtifactStore(baseline[0] / ".mlflowkit"), _outputs(baseline[1])["model"])
    for name, weights in original.weights.items():
        assert (resumed.weights[name] == weights).all(), name
    assert registry_at(store.root).get("torch-ddp", "champion").version == 1


def test_no_retry_budget_fails_cleanly_naming_the_dead_worker(
    ray_local: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KILL_ENV, "1")
    project = _project(tmp_path / "no-budget", max_failures=0)
    result = _run(project)
    assert not result.ok
    message = str(result.error)
    assert "train" in message and "worker died" in message and "max_failures=0" in message, message
    statuses = {s.name: s.status for s in result.steps}
    assert statuses["train"] == "failed"
    assert all(statuses.get(name) != "ran" for name in ("evaluate", "export", "register")), statuses
    registry = registry_at(str(project / ".mlflowkit"))
    with pytest.raises(RegistryError):
        registry.get("torch-ddp", "champion")
    assert not os.path.exists(project / ".mlflowkit" / "registry" / "torch-ddp" / "versions")
