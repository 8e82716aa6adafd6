"""Estimators are estimator classes: the catalog, the allow-lists by whole components, and what a hostile spec cannot do.

A spec could name any callable under ``sklearn.`` while the allow-list compared text prefixes; these tests hold
that functions, modules and non-estimator classes are refused at validate (file:line), that a run refuses
them again without calling them, and that look-alike packages are outside every allow-list.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from cli_run import run_cli

from mlflowkit.errors import SpecError, StepFailed
from mlflowkit.kinds import _sklearn_catalog
from mlflowkit.kinds._estimators import EstimatorRefused, allowed_modules, estimator_info, resolve_estimator
from mlflowkit.kinds._frames import save_frame
from mlflowkit.kinds.base import Inputs, StepContext
from mlflowkit.kinds.train import SklearnParams, SklearnTrain, estimator_refusal
from mlflowkit.policy.rules import module_allowed
from mlflowkit.spec.load import load_spec
from mlflowkit.store import ArtifactStore

REPO = Path(__file__).resolve().parents[3]
RUN_SCRIPT = "sklearn.utils._testing.assert_run_python_script_without_output"


def test_checked_in_catalog_matches_a_fresh_generation() -> None:
    spec = importlib.util.spec_from_file_location("gen_sklearn_catalog", REPO / "scripts" / "gen_sklearn_catalog.py")
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    fresh = generator.render(generator.build())
    assert fresh == _sklearn_catalog.CATALOG_FILE.read_text(encoding="utf-8"), "run python scripts/gen_sklearn_catalog.py"
    catalog = json.loads(fresh)
    assert catalog["paths"]["sklearn.ensemble.RandomForestClassifier"] == "sklearn.ensemble._forest.RandomForestClassifier"
    assert RUN_SCRIPT not in catalog["paths"] and "sklearn.datasets.clear_data_home" not in catalog["paths"]


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("sklearn.svm.SVC", True),
        ("sklearnx.svm.SVC", False),
        ("sklearn_evil.SVC", False),
        ("sklearn", True),
        ("xgboost.XGBClassifier", True),
        ("xgboostx.XGBClassifier", False),
        ("lightgbm_fork.LGBMClassifier", False),
    ],
)
def test_the_builtin_allow_list_matches_whole_components(path: str, allowed: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOWKIT_ALLOWED_MODULES", raising=False)
    assert module_allowed(path, allowed_modules()) is allowed
    assert (estimator_refusal(path, None) is None) is allowed


def test_policy_prefixes_match_whole_components() -> None:
    assert module_allowed("sklearn.linear_model.Ridge", ["sklearn.linear_model"])
    assert module_allowed("sklearn.linear_model.Ridge", ["sklearn.linear_model."])
    assert not module_allowed("sklearn.linear_modelx.Ridge", ["sklearn.linear_model"])
    assert not module_allowed("sklearn_evil.Ridge", ["sklearn"])
    assert not module_allowed("sklearnx.Ridge", ["sklearn."])
    refused = estimator_refusal("sklearn_evil.Ridge", ["sklearn."])
    assert refused is not None and "outside the modules the policy allows" in refused.message


@pytest.mark.parametrize(
    ("path", "said"),
    [
        (RUN_SCRIPT, "is a function, not an estimator class"),
        ("sklearn.datasets.clear_data_home", "is a function, not an estimator class"),
        ("sklearn.utils", "is a module, not an estimator class"),
        ("sklearn.utils.Bunch", "is not a scikit-learn estimator"),
        ("sklearn.preprocessing.StandardScaler", "has no predict"),
        ("sklearn.base.BaseEstimator", "has no fit or predict"),
    ],
)
def test_a_run_resolves_component_by_component_and_refuses_what_is_not_an_estimator(path: str, said: str) -> None:
    with pytest.raises(EstimatorRefused, match=said):
        resolve_estimator(path)


def test_a_real_estimator_resolves_by_its_public_and_its_defining_path() -> None:
    from sklearn.ensemble import RandomForestClassifier

    assert resolve_estimator("sklearn.ensemble.RandomForestClassifier") is RandomForestClassifier
    assert resolve_estimator("sklearn.ensemble._forest.RandomForestClassifier") is RandomForestClassifier


def test_validate_answers_from_the_catalog_and_from_the_class_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    from_catalog = estimator_info("sklearn.linear_model.LogisticRegression")
    monkeypatch.setattr("mlflowkit.kinds._estimators.catalog_is_current", lambda: False)
    from_class = estimator_info("sklearn.linear_model.LogisticRegression")
    assert from_catalog.params == from_class.params and from_catalog.task == from_class.task == "classifier"
    with pytest.raises(EstimatorRefused, match="is a function"):  # another scikit-learn: resolved by import
        estimator_info(RUN_SCRIPT)


def _spec(folder: Path, train: str) -> Path:
    (folder / "d.csv").write_text("a,b,y\n" + "\n".join(f"{i},{i % 3},{i % 2}" for i in range(40)) + "\n")
    spec = folder / "spec.yaml"
    spec.write_text(
        "spec: mlflowkit/v1\nname: t\nrecipe: tabular-classification\ndata: {source: d.csv, target: y}\n" + train
    )
    return spec


def _cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(folder, *args)


def test_clear_data_home_is_refused_and_the_folder_survives(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    (precious / "keep").mkdir(parents=True)
    (precious / "keep" / "data.csv").write_text("x\n1\n")
    _spec(tmp_path, f"train:\n  estimator: sklearn.datasets.clear_data_home\n  params: {{data_home: {precious}}}\n")
    for command in ("validate", "run"):
        done = _cli(tmp_path, command, "spec.yaml")
        assert done.returncode == 2, done.stdout + done.stderr
        assert "spec.yaml:6:14: train.estimator: 'sklearn.datasets.clear_data_home' is not an estimator class" in done.stderr
        assert (precious / "keep" / "data.csv").read_text() == "x\n1\n"
    assert not (tmp_path / ".mlflowkit").exists()


def test_a_python_script_runner_is_refused_and_its_script_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').write('pwned')"
    _spec(tmp_path, f"train:\n  estimator: {RUN_SCRIPT}\n  params:\n    source_code: {json.dumps(code)}\n")
    for command in ("validate", "run"):
        done = _cli(tmp_path, command, "spec.yaml")
        assert done.returncode == 2, done.stdout + done.stderr
        assert f"train.estimator: '{RUN_SCRIPT}' is not an estimator class" in done.stderr
    assert not marker.exists()


def test_the_train_step_refuses_them_too_when_validation_was_bypassed(tmp_path: Path) -> None:
    import pandas as pd

    precious = tmp_path / "precious"
    precious.mkdir()
    store = ArtifactStore(tmp_path / "store")
    frame = pd.DataFrame({"a": range(20), "y": [0, 1] * 10})
    inputs = Inputs({"split": {"train": save_frame(store, frame, target="y")}}, ("split",))
    ctx = StepContext(
        step="train", run_id="r", spec_name="t", spec_hash="h", spec_dir=str(tmp_path), store=store,
        registry=None, logger=logging.getLogger("test"),  # type: ignore[arg-type]
    )
    for path, params in (("sklearn.datasets.clear_data_home", {"data_home": str(precious)}), (RUN_SCRIPT, {"source_code": "1"})):
        with pytest.raises(StepFailed, match="is a function, not an estimator class"):
            SklearnTrain().run(ctx, SklearnParams(estimator=path, params=params), inputs)
    assert precious.is_dir()


def test_validating_estimator_arguments_loads_no_scikit_learn(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "train:\n  estimator: sklearn.svm.SVC\n  params: {C: 0, kernal: rbf}\n")
    script = (
        "import json, sys\nfrom mlflowkit.errors import SpecError\nfrom mlflowkit.spec.load import load_spec\n"
        f"try:\n    load_spec({str(spec)!r})\nexcept SpecError as exc:\n    issues = [i.message for i in exc.issues]\n"
        "print(json.dumps([issues, sorted({m.split('.')[0] for m in sys.modules})]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    issues, modules = json.loads(done.stdout.strip().splitlines()[-1])
    assert "SVC's C must be a number in the range (0.0, inf) (got 0)" in issues
    assert "SVC has no parameter 'kernal'" in issues
    assert "sklearn" not in modules and "numpy" not in modules


def test_recipe_params_do_not_follow_the_spec_to_another_estimator(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("a,price\n1,2.0\n")
    (tmp_path / "spec.yaml").write_text(
        "spec: mlflowkit/v1\nname: t\nrecipe: tabular-regression\ndata: {source: d.csv, target: price}\n"
        "train: {estimator: sklearn.linear_model.Ridge}\n"
    )
    assert load_spec(tmp_path / "spec.yaml").train.params == {}  # type: ignore[attr-defined]
    (tmp_path / "spec.yaml").write_text((tmp_path / "spec.yaml").read_text().replace("Ridge}", "Ridge, params: {alpha: 0.5}}"))
    assert load_spec(tmp_path / "spec.yaml").train.params == {"alpha": 0.5}  # type: ignore[attr-defined]
    (tmp_path / "spec.yaml").write_text((tmp_path / "spec.yaml").read_text().replace("sklearn.linear_model.Ridge", "sklearn.ensemble.RandomForestRegressor"))
    with pytest.raises(SpecError, match="RandomForestRegressor has no parameter 'alpha'"):
        load_spec(tmp_path / "spec.yaml")
    # The recipe's own estimator keeps the recipe's params.
    (tmp_path / "spec.yaml").write_text(
        "spec: mlflowkit/v1\nname: t\nrecipe: tabular-regression\ndata: {source: d.csv, target: price}\n"
    )
    assert load_spec(tmp_path / "spec.yaml").train.params == {"n_estimators": 100}  # type: ignore[attr-defined]


def test_training_threads_follow_the_step_cpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd
    from threadpoolctl import threadpool_info

    from mlflowkit.kinds._threads import available_cpus
    from mlflowkit.kinds.model_files import load_model

    monkeypatch.syspath_prepend(str(REPO / "tests" / "helpers"))
    monkeypatch.setenv("MLFLOWKIT_ALLOWED_MODULES", "mlflowkit_test_estimators")
    assert threadpool_info(), "numpy/scikit-learn bring native thread pools to cap"
    store = ArtifactStore(tmp_path / "store")
    frame = pd.DataFrame({"a": range(40), "b": [i % 3 for i in range(40)], "y": [0, 1] * 20})
    inputs = Inputs({"split": {"train": save_frame(store, frame, target="y")}}, ("split",))
    ctx = StepContext(
        step="train", run_id="r", spec_name="t", spec_hash="h", spec_dir=str(tmp_path), store=store,
        registry=None, logger=logging.getLogger("test"),  # type: ignore[arg-type]
    )
    probe = "mlflowkit_test_estimators.ThreadProbeClassifier"
    for cpus, want in ((1, 1), (None, available_cpus())):
        out = SklearnTrain().run(ctx, SklearnParams(estimator=probe, cpus=cpus), inputs)
        fitted = load_model(store, out["model"]).named_steps["model"]
        assert fitted.seen_n_jobs_ == want and fitted.seen_threads_ == [want], (cpus, fitted.seen_threads_)
        assert fitted.n_jobs is None  # the stored model does not carry this machine's CPU count
        assert "n_jobs" not in out["model"].meta["params"]
    # n_jobs set in params is the user's: kept as written.
    out = SklearnTrain().run(ctx, SklearnParams(estimator=probe, cpus=1, params={"n_jobs": 2}), inputs)
    assert load_model(store, out["model"]).named_steps["model"].seen_n_jobs_ == 2
