"""promote/rollback: champion and previous move together, every move is recorded with who and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlflowkit.errors import RegistryError
from mlflowkit.store import ModelRegistry
from mlflowkit.store.promotion import promote, rollback


def _registry(tmp_path: Path, *verdicts: bool) -> ModelRegistry:
    registry = ModelRegistry(tmp_path / "registry")
    for passed in verdicts:
        registry.register("churn", {"model.joblib": b"m"}, {"verdict": {"passed": passed}})
    return registry


def test_two_promotions_then_rollback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOWKIT_USER", "alice")
    registry = _registry(tmp_path, True, True)
    promote(registry, "churn", 1, reason="first good run")
    promote(registry, "churn", 2, reason="second good run")
    assert registry.aliases("churn") == {"champion": 2, "previous": 1}

    monkeypatch.setenv("MLFLOWKIT_USER", "bob")
    back = rollback(registry, "churn", reason="v2 misbehaves in production")
    assert back.version == 1
    assert registry.aliases("churn") == {"champion": 1}

    history = registry.history("churn")
    assert [(e.alias, e.previous, e.version) for e in history] == [
        ("champion", None, 1),
        ("previous", None, 1),
        ("champion", 1, 2),
        ("champion", 2, 1),
        ("previous", 1, None),
    ]
    assert history[2].actor == "alice" and history[2].reason == "second good run"
    assert history[3].actor == "bob" and "v2 misbehaves in production" in history[3].reason


def test_rollback_walks_back_one_promotion_at_a_time(tmp_path: Path) -> None:
    registry = _registry(tmp_path, True, True, True)
    for v in (1, 2, 3):
        promote(registry, "churn", v, reason=f"run {v}")
    assert rollback(registry, "churn", reason="bad v3").version == 2
    assert registry.aliases("churn") == {"champion": 2, "previous": 1}
    assert rollback(registry, "churn", reason="bad v2 too").version == 1
    with pytest.raises(RegistryError, match="no previous version to roll back to"):
        rollback(registry, "churn", reason="again")


def test_rollback_to_a_named_version(tmp_path: Path) -> None:
    registry = _registry(tmp_path, True, True, True)
    for v in (1, 2, 3):
        promote(registry, "churn", v, reason=f"run {v}")
    assert rollback(registry, "churn", reason="straight to v1", to=1).version == 1
    with pytest.raises(RegistryError, match="model 'churn' has no version 9"):
        rollback(registry, "churn", reason="x", to=9)


def test_a_version_that_failed_its_gates_needs_force(tmp_path: Path) -> None:
    registry = _registry(tmp_path, True, False)
    promote(registry, "churn", 1, reason="good")
    with pytest.raises(RegistryError, match="v2 failed its gates"):
        promote(registry, "churn", 2, reason="try")
    assert registry.aliases("churn")["champion"] == 1
    promote(registry, "churn", 2, reason="override by on-call", force=True)
    assert registry.aliases("churn")["champion"] == 2


def test_refusals(tmp_path: Path) -> None:
    registry = _registry(tmp_path, True)
    with pytest.raises(RegistryError, match="no champion to roll back"):
        rollback(registry, "churn", reason="x")
    promote(registry, "churn", 1, reason="good")
    with pytest.raises(RegistryError, match="already is the champion"):
        promote(registry, "churn", 1, reason="again")


def test_rollback_only_returns_to_a_version_that_was_champion(tmp_path: Path) -> None:
    registry = _registry(tmp_path, True, True, False)  # v3 failed its gates and never served
    promote(registry, "churn", 1, reason="run 1")
    promote(registry, "churn", 2, reason="run 2")
    registry.set_alias("churn", "previous", 3, reason="planted")  # what `register: {alias: previous}` once allowed
    with pytest.raises(RegistryError, match="v3 never was champion"):
        rollback(registry, "churn", reason="sneak it in")
    with pytest.raises(RegistryError, match="v3 never was champion"):
        rollback(registry, "churn", reason="sneak it in", to=3)
    assert registry.aliases("churn")["champion"] == 2
    assert rollback(registry, "churn", reason="v2 is bad", to=1).version == 1
