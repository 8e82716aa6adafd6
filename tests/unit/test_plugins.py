"""Plug-in registration: checked when loaded, named in the error, one broken plug-in breaks nothing else."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from mlflowkit.errors import PluginError
from mlflowkit.kinds.base import Inputs, Params, StepContext, StepKind
from mlflowkit.plugins import PluginSet, kinds, verify_kind


class Good(StepKind):
    Params = Params

    def run(self, ctx: StepContext, params: Any, inputs: Inputs) -> dict[str, Any]:
        return {}


class Loose(BaseModel):
    x: int = 1


def test_builtin_kinds_all_load_and_verify() -> None:
    registry = kinds()
    assert {"load", "split", "sklearn", "evaluate", "gates", "register", "python", "noop"} <= set(registry.ok)
    assert registry.broken == {}
    for name in registry.names:
        assert registry.origin[name].startswith("mlflowkit: mlflowkit.kinds.")


def test_a_good_kind_verifies() -> None:
    assert verify_kind("good", Good) is Good


@pytest.mark.parametrize(
    ("obj", "fragment"),
    [
        (object, "is not a subclass of mlflowkit.StepKind"),
        (type("NoRun", (StepKind,), {"Params": Params}), "does not implement run"),
        (type("NoParams", (Good,), {"Params": None}), "Params must be a pydantic model class"),
        (type("LooseParams", (Good,), {"Params": Loose}), "must refuse unknown keys"),
        (type("BadSig", (Good,), {"run": lambda self, x: {}}), "must take (self, ctx, params, inputs)"),
        (type("BadList", (Good,), {"list_field": "rules"}), "list_field 'rules' is not a field"),
    ],
)
def test_a_bad_kind_is_refused_with_its_name(obj: Any, fragment: str) -> None:
    with pytest.raises(PluginError) as info:
        verify_kind("acme-kind", obj)
    assert "acme-kind" in str(info.value)
    assert fragment in str(info.value)


def test_broken_entry_point_is_isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real dist-info on sys.path registers one good and two broken kinds in a private group."""
    dist = tmp_path / "acme_plugins-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-plugins\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[mlflowkit.test-kinds]\n"
        "good = mlflowkit.kinds.noop:Noop\n"
        "missing = acme_does_not_exist:Kind\n"
        "notakind = mlflowkit.errors:SpecIssue\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins = PluginSet("mlflowkit.test-kinds", verify_kind)
    assert plugins.names == ["good", "missing", "notakind"]
    assert plugins.get("good").__name__ == "Noop"
    with pytest.raises(PluginError, match=r"'missing'.*failed to load: ModuleNotFoundError"):
        plugins.get("missing")
    assert set(plugins.broken) == {"missing", "notakind"}
    assert "acme_does_not_exist" in plugins.broken["missing"]
    assert "good" in plugins.ok
    with pytest.raises(PluginError, match="is not installed; did you mean 'good'"):
        plugins.get("goood")
    assert "acme_plugins" not in sys.modules


def test_builtin_recipes_ship_the_repository_files() -> None:
    """The wheel's mlflowkit/_recipes are the repo's recipes/ (force-included), byte for byte."""
    from mlflowkit.plugins import recipes

    repo = Path(__file__).parents[2] / "recipes"
    installed = recipes().ok
    assert set(installed) == {p.stem for p in repo.glob("*.yaml")}
    for name, path in installed.items():
        assert Path(path).read_bytes() == (repo / f"{name}.yaml").read_bytes()
