"""The ``sklearn`` kind's search: candidates, scorer names, the allow-list variable, and what runs without Ray."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import mlflowkit
from mlflowkit.errors import SpecError
from mlflowkit.kinds._estimators import ALLOWED_MODULES, allowed_modules
from mlflowkit.kinds._hpo import SCORERS, SearchParams, candidates
from mlflowkit.kinds.train import SklearnTrain
from mlflowkit.spec.load import load_spec

REPO = Path(__file__).resolve().parents[3]


def test_scorer_names_are_scikit_learns() -> None:
    from sklearn.metrics import get_scorer_names

    assert set(SCORERS) <= set(get_scorer_names())
    assert {"roc_auc", "accuracy", "f1", "neg_log_loss", "r2", "neg_root_mean_squared_error"} <= set(SCORERS)


def test_grid_is_every_combination_in_the_order_written() -> None:
    search = SearchParams(space={"max_depth": [4, 8, 16], "n_estimators": [50, 100]})
    assert candidates(search, seed=0) == [
        {"max_depth": d, "n_estimators": n} for d in (4, 8, 16) for n in (50, 100)
    ]
    assert candidates(search, seed=0) == candidates(search, seed=99)  # a grid ignores the seed


def test_random_search_is_seeded_and_distinct_on_a_finite_space() -> None:
    search = SearchParams(strategy="random", n_trials=5, space={"a": list(range(10)), "b": ["x", "y", "z"]})
    first = candidates(search, seed=1)
    assert first == candidates(search, seed=1)
    assert first != candidates(search, seed=2)
    assert len(first) == 5 and len({json.dumps(c, sort_keys=True) for c in first}) == 5
    everything = SearchParams(strategy="random", n_trials=50, space={"a": [1, 2], "b": ["x", "y"]})
    assert sorted(map(str, candidates(everything, seed=1))) == sorted(map(str, candidates(SearchParams(space=everything.space), 0)))


def test_random_ranges_sample_within_bounds_with_the_right_type() -> None:
    search = SearchParams.model_validate(
        {
            "strategy": "random",
            "n_trials": 200,
            "space": {
                "leaf": {"low": 1, "high": 5},
                "frac": {"low": 0.1, "high": 0.9},
                "c": {"low": 1e-4, "high": 1e2, "log": True},
            },
        }
    )
    drawn = candidates(search, seed=3)
    assert all(isinstance(c["leaf"], int) and 1 <= c["leaf"] <= 5 for c in drawn)
    assert {c["leaf"] for c in drawn} == {1, 2, 3, 4, 5}
    assert all(isinstance(c["frac"], float) and 0.1 <= c["frac"] <= 0.9 for c in drawn)
    assert all(1e-4 <= c["c"] <= 1e2 for c in drawn)
    assert sum(c["c"] < 1 for c in drawn) > 100  # log-uniform: most draws are below 1 (two-thirds of the decades)


def test_allowed_modules_variable_widens_the_list(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "spec: mlflowkit/v1\nname: t\nrecipe: tabular-classification\ndata: {source: d.csv, target: y}\n"
        "train: {estimator: mlflowkit_test_estimators.KillOnceClassifier, params: {max_depth: 3}}\n"
    )
    (tmp_path / "d.csv").write_text("a,y\n1,0\n2,1\n")
    monkeypatch.syspath_prepend(str(REPO / "tests" / "helpers"))
    monkeypatch.delenv("MLFLOWKIT_ALLOWED_MODULES", raising=False)
    assert allowed_modules() == ALLOWED_MODULES
    with pytest.raises(SpecError, match="outside the allowed modules"):
        load_spec(spec)
    monkeypatch.setenv("MLFLOWKIT_ALLOWED_MODULES", " mlflowkit_test_estimators , mypkg.models.")
    assert allowed_modules() == (*ALLOWED_MODULES, "mlflowkit_test_estimators", "mypkg.models")
    train = load_spec(spec).section("train")
    assert train.estimator == "mlflowkit_test_estimators.KillOnceClassifier"  # type: ignore[union-attr]
    # Outside the catalog, the class is imported and described: its parameters are checked all the same.
    spec.write_text(spec.read_text().replace("max_depth: 3", "max_dept: 3"))
    with pytest.raises(SpecError, match="KillOnceClassifier has no parameter 'max_dept'") as info:
        load_spec(spec)
    assert info.value.issues[0].hint == "did you mean 'max_depth'?"


def test_docstring_example_validates(tmp_path: Path) -> None:
    doc = SklearnTrain.__doc__ or ""
    example = textwrap.dedent(re.search(r"```yaml\n(.*?)```", doc, re.S).group(1))  # type: ignore[union-attr]
    spec = tmp_path / "spec.yaml"
    (tmp_path / "d.csv").write_text("a,y\n1,0\n2,1\n")
    spec.write_text("spec: mlflowkit/v1\nname: t\nrecipe: tabular-classification\ndata: {source: d.csv, target: y}\n" + example)
    train = load_spec(spec).section("train")
    assert train.search.space["max_depth"] == [4, 8, 16]  # type: ignore[union-attr]
    assert train.ray.max_retries == 2  # type: ignore[union-attr]


def _tiny_project(folder: Path, train: str) -> Path:
    rows = "\n".join(f"{i % 7},{(i * 3) % 11},{int(i % 7 > 3)}" for i in range(120))
    (folder / "d.csv").write_text("a,b,y\n" + rows + "\n")
    (folder / "spec.yaml").write_text(
        "spec: mlflowkit/v1\nname: t\nrecipe: tabular-classification\ndata: {source: d.csv, target: y}\n" + train
    )
    return folder / "spec.yaml"


def test_unknown_search_parameter_is_refused_at_validate(tmp_path: Path) -> None:
    path = _tiny_project(
        tmp_path,
        "train:\n  estimator: sklearn.tree.DecisionTreeClassifier\n  search: {space: {max_dept: [2, 3], max_depth: [0, 2]}}\n",
    )
    with pytest.raises(SpecError) as info:
        mlflowkit.load_spec(path)
    found = {(i.path, i.message, i.hint) for i in info.value.issues}
    assert ("train.search.space.max_dept", "DecisionTreeClassifier has no parameter 'max_dept'", "did you mean 'max_depth'?") in found
    # The searched values are checked as fixed params are: 0 is no tree depth.
    assert any(p == "train.search.space.max_depth[0]" and "max_depth must be an int in the range [1, inf)" in m for p, m, _ in found)
    ray = sys.modules.get("ray")
    assert ray is None or not ray.is_initialized()


def test_without_search_training_stays_in_process_without_ray(tmp_path: Path) -> None:
    path = _tiny_project(tmp_path, "train: {estimator: sklearn.tree.DecisionTreeClassifier}\n")
    script = (
        "import json, sys, mlflowkit\n"
        "from mlflowkit.runtime.engine import run_spec\n"
        f"spec = mlflowkit.load_spec({str(path)!r})\n"
        "result = run_spec(spec, mlflowkit.compile(spec), orchestrate=False)\n"
        "print(json.dumps({'ok': result.ok, 'error': result.error, 'ray': 'ray' in sys.modules}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"ok": True, "error": None, "ray": False}
