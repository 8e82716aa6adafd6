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


# --- the extension API: @mlflowkit.step, @mlflowkit.metric, targets, listings, the doc's example ---

import importlib.util  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402

import pandas as pd  # noqa: E402
from pydantic import Field  # noqa: E402

import mlflowkit  # noqa: E402
from mlflowkit.errors import SpecError, StepFailed  # noqa: E402
from mlflowkit.plugins import METRICS_GROUP, all_plugins, verify_metric, verify_target  # noqa: E402
from mlflowkit.store import ArtifactStore, registry_at  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_PACKAGE = REPO / "examples" / "plugin-package" / "src" / "mlflowkit_example_plugins"
DOC = REPO / "docs" / "extending.md"


def _ctx(tmp_path: Path, spec_dir: Path | None = None) -> StepContext:
    return StepContext(
        step="features", run_id="r", spec_name="n", spec_hash="h", spec_dir=str(spec_dir or tmp_path),
        store=ArtifactStore(str(tmp_path / "store")), registry=registry_at(str(tmp_path / "store")),
        logger=logging.getLogger("test"),
    )


def _splits(ctx: StepContext) -> Inputs:
    from mlflowkit.steps import write_table

    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [0, 1, 2], "id": ["x", "y", "z"], "y": ["no", "yes", "no"]})
    refs = {part: write_table(ctx, frame, target="y", part=part) for part in ("train", "test")}
    return Inputs({"split": refs}, ("split",))


def _example_module(name: str) -> Any:
    """A module of the example plug-in package, imported from its file (the package is not installed here)."""
    spec = importlib.util.spec_from_file_location(f"_example_{name}", EXAMPLE_PACKAGE / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_builtin_plugin_is_listed_and_none_failed() -> None:
    rows = all_plugins()
    groups = {r.group for r in rows}
    assert {"mlflowkit.kinds", "mlflowkit.targets", "mlflowkit.recipes"} <= groups
    assert [r for r in rows if not r.ok] == []
    assert all(r.distribution == "mlflowkit" and r.summary for r in rows)
    names = {(r.group, r.name) for r in rows}
    assert {("mlflowkit.recipes", "tabular-regression"), ("mlflowkit.recipes", "torch-tabular-classification")} <= names


class _Cols(mlflowkit.Params):
    """Which columns to drop."""

    columns: list[str] = Field(description="Columns.")


@mlflowkit.step(params=_Cols, inputs=["train", "test"])
def _drop(train: pd.DataFrame, test: pd.DataFrame, params: _Cols) -> dict[str, pd.DataFrame]:
    """Drop columns."""
    return {"train": train.drop(columns=params.columns), "test": test.drop(columns=params.columns)}


def test_a_decorated_step_is_a_function_and_a_kind(tmp_path: Path) -> None:
    plain = pd.DataFrame({"a": [1], "b": [2]})
    assert list(_drop(train=plain, test=plain, params=_Cols(columns=["b"]))["train"].columns) == ["a"]  # a plain call
    kind = verify_kind("drop", _drop.kind)
    assert kind.Params is _Cols and kind.summary == "Drop columns."
    ctx = _ctx(tmp_path)
    out = kind().run(ctx, _Cols(columns=["id"]), _splits(ctx))
    assert set(out) == {"train", "test"}
    assert out["train"].meta["target"] == "y" and out["train"].meta["part"] == "train"  # the table's metadata is kept
    assert out["test"].meta["columns"] == ["a", "b", "y"]
    with pytest.raises(StepFailed, match="dropped the target column 'y'"):
        kind().run(ctx, _Cols(columns=["y"]), _splits(ctx))


def test_a_decorated_step_runs_through_uses_with_typed_params(tmp_path: Path) -> None:
    from mlflowkit.kinds.python import PythonParams, PythonStep

    (tmp_path / "my_steps_for_test.py").write_text(
        "import mlflowkit\nfrom pydantic import Field\n\n"
        "class P(mlflowkit.Params):\n    factor: float = Field(description='x')\n\n"
        "@mlflowkit.step(params=P, inputs=['train'], outputs=['train', 'summary'])\n"
        "def scale(train, params):\n"
        "    return {'train': train.assign(a=train.a * params.factor), 'summary': {'rows': len(train)}}\n"
    )
    ctx = _ctx(tmp_path)
    inputs = _splits(ctx)
    out = PythonStep().run(ctx, PythonParams(uses="my_steps_for_test:scale", params={"factor": 2}), inputs)
    assert set(out) == {"train", "summary"}
    assert json_rows(ctx, out["summary"]) == {"rows": 3}
    assert pd.read_parquet(ctx.store.local_path(out["train"]))["a"].tolist() == [2.0, 4.0, 6.0]
    assert PythonStep().fingerprint(ctx, PythonParams(uses="my_steps_for_test:scale"))  # the file is in the cache key
    with pytest.raises(StepFailed, match=r"params of my_steps_for_test:scale: factor: Input should be a valid number"):
        PythonStep().run(ctx, PythonParams(uses="my_steps_for_test:scale", params={"factor": "lots"}), inputs)
    sys.modules.pop("my_steps_for_test", None)


def json_rows(ctx: StepContext, ref: Any) -> Any:
    import json

    return json.loads(ctx.store.get_bytes(ref))


def test_step_decorator_refuses_loose_params_and_missing_inputs() -> None:
    with pytest.raises(TypeError, match="extra='forbid'"):
        mlflowkit.step(params=Loose)(lambda dataset: dataset)
    with pytest.raises(TypeError, match=r"must take its inputs \['test'\]"):
        mlflowkit.step(inputs=["train", "test"])(lambda train: train)


def test_a_metric_gets_what_it_declares_and_fails_closed() -> None:
    @mlflowkit.metric(task="classification")
    def share_yes(y_true: Any, y_pred: Any, classes: list[str]) -> float:
        """Share of predictions that are the positive class."""
        return float((pd.Series(y_pred) == classes[-1]).mean())

    @mlflowkit.metric(needs_proba=True)
    def top_proba(y_true: Any, y_pred: Any, proba: Any) -> float:
        return float(proba.max())

    assert verify_metric("share_yes", share_yes) is share_yes
    assert share_yes(["no", "yes"], ["yes", "yes"], classes=["no", "yes"]) == 1.0
    assert math.isnan(top_proba([1], [1], proba=None))  # no probabilities: NaN, a gate on it fails
    assert share_yes.applies_to("classification") and not share_yes.applies_to("regression")
    assert share_yes.summary == "Share of predictions that are the positive class."
    with pytest.raises(PluginError, match="its entry point must have that name"):
        verify_metric("other_name", share_yes)
    with pytest.raises(PluginError, match="is a built-in metric"):
        verify_metric("accuracy", mlflowkit.metric()(lambda y_true, y_pred: 1.0))
    with pytest.raises(PluginError, match=r"@mlflowkit.metric"):
        verify_metric("plain", lambda y_true, y_pred: 1.0)
    assert METRICS_GROUP == "mlflowkit.metrics"


def test_evaluate_names_unknown_metrics_with_a_hint() -> None:
    from mlflowkit.kinds.evaluate import EvaluateParams

    with pytest.raises(ValueError, match=r"unknown metric 'acuracy'; did you mean 'accuracy'"):
        EvaluateParams(metrics=["acuracy"])


def test_a_target_is_checked_when_it_registers() -> None:
    from typing import Literal

    class Half(mlflowkit.DeployTarget):
        target: Literal["half"]

    with pytest.raises(PluginError, match="must implement deploy"):
        verify_target("half", Half)
    with pytest.raises(PluginError, match=r"must be Literal\['other'\]"):
        verify_target("other", Half)
    with pytest.raises(PluginError, match="not a subclass"):
        verify_target("x", object)


def test_a_broken_target_is_named_in_the_spec_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A spec naming a target whose plug-in failed gets its name and reason, not a bare discriminator error."""
    from mlflowkit.kinds import deploy
    from mlflowkit.plugins import TARGETS_GROUP
    from mlflowkit.spec.load import load_spec_text

    dist = tmp_path / "acme_targets-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-targets\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{TARGETS_GROUP}]\nacme = acme_targets_missing:AcmeTarget\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(deploy, "_installed_targets", lambda: PluginSet(TARGETS_GROUP, verify_target))
    text = (REPO / "specs" / "reference" / "minimal.yaml").read_text()
    with pytest.raises(SpecError) as info:
        load_spec_text(text + "\ndeploy:\n  - target: acme\n    url: x\n", "spec.yaml", spec_dir=REPO / "examples" / "churn")
    message = str(info.value)
    assert "spec.yaml:" in message
    assert "deploy target 'acme' (mlflowkit.targets) is installed but failed to load" in message
    assert "ModuleNotFoundError" in message and "acme_targets_missing" in message
    assert "expected tags" not in message


def test_the_doc_includes_the_example_kind_verbatim_and_it_runs(tmp_path: Path) -> None:
    blocks = [m[1] for m in re.findall(r"^(`{3,})python\n(.*?)^\1$", DOC.read_text(), flags=re.DOTALL | re.MULTILINE)]
    for name in ("features", "steps"):
        source = (EXAMPLE_PACKAGE / f"{name}.py").read_text()
        assert source in blocks, f"docs/extending.md must include {name}.py verbatim"
    features = _example_module("features")
    kind = verify_kind("ratio-features", features.RatioFeatures)
    ctx = _ctx(tmp_path)
    params = kind.Params(ratios={"a_per_b": ("a", "b")}, cap=1.5, drop=["id"])
    out = kind().run(ctx, params, _splits(ctx))
    table = pd.read_parquet(ctx.store.local_path(out["train"]))
    assert table["a_per_b"].tolist() == [1.0, 1.0, 1.0] and "id" not in table
    assert out["test"].meta["target"] == "y"
    # The kind's check runs at validate time, against the rest of the spec.
    spec = type("S", (), {"section": lambda self, path: type("D", (), {"target": "y"})()})()
    issues = list(kind.check(kind.Params(ratios={"leak": ("y", "a")}, drop=["y"]), spec))
    assert [i[0] for i in issues] == [("ratios", "leak"), ("drop",)]
    # The example's decorated step, as a kind and as a function.
    steps = _example_module("steps")
    assert verify_kind("drop-columns", steps.drop_columns.kind).Params is steps.DropParams
