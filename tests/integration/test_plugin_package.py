"""The example plug-in package, installed into a throw-away virtualenv, extends mlflowkit as a third party would.

The venv is new (so the dev/tox environment is never changed) and sees this environment's packages
through a ``.pth`` file, mlflowkit and its dependencies included. Both the example package and a
deliberately broken one are installed offline with this environment's pip and setuptools; every
command then runs with that venv's Python in a subprocess, against the local Prefect server.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

pytestmark = [pytest.mark.prefect]

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PLUGIN_PACKAGE = REPO / "examples" / "plugin-package"
BROKEN_PACKAGE = HERE / "plugins" / "broken-plugin"
CHURN_DATA = REPO / "examples" / "churn" / "data" / "churn.csv"


class Venv:
    """A virtualenv with the plug-ins installed; runs the mlflowkit CLI with its Python."""

    def __init__(self, root: Path) -> None:
        self.root = root
        venv.EnvBuilder(with_pip=False).create(root)
        self.python = str(root / ("Scripts" if os.name == "nt" else "bin") / "python")
        purelib = subprocess.check_output([self.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True)
        # This environment's packages (mlflowkit, prefect, pip, setuptools, ...) after the venv's own.
        parents = [*site.getsitepackages(), sysconfig.get_paths()["purelib"]]
        lines = "; ".join(f"site.addsitedir({p!r})" for p in dict.fromkeys(parents))
        (Path(purelib.strip()) / "_mlflowkit_test_parent.pth").write_text(f"import site; {lines}\n")

    def pip_install(self, *sources: Path) -> None:
        cmd = [self.python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-build-isolation", *map(str, sources)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, env={**os.environ, "PIP_NO_INPUT": "1"})
        assert done.returncode == 0, done.stdout + done.stderr

    def mlflowkit(self, *args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        cmd = [self.python, "-c", "from mlflowkit.cli import main; main()", *args]
        return subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=cwd, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Venv, Path, dict[str, str]]:
    """A venv with the example and the broken plug-in installed, and a copy of the example project."""
    tmp = tmp_path_factory.mktemp("plugins")
    if sys.prefix == str(tmp):  # pragma: no cover - a guard: never install into the running environment
        pytest.fail("refusing to install into the test environment")
    # Copies: building in place would leave build/ and *.egg-info in the repository.
    sources = tmp / "src"
    shutil.copytree(PLUGIN_PACKAGE, sources / "plugin-package", ignore=shutil.ignore_patterns("build", "*.egg-info", ".mlflowkit"))
    shutil.copytree(BROKEN_PACKAGE, sources / "broken-plugin", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    env_dir = Venv(tmp / "venv")
    env_dir.pip_install(sources / "plugin-package", sources / "broken-plugin")
    example = sources / "plugin-package" / "example"
    (sources / "churn" / "data").mkdir(parents=True)
    shutil.copy(CHURN_DATA, sources / "churn" / "data" / "churn.csv")  # the spec reads ../../churn/data/churn.csv
    env = {
        "MLFLOWKIT_EXAMPLE_DEPLOY_DIR": str(tmp / "deployed"),
        "PREFECT_HOME": str(tmp / "prefect"),
        "MLFLOWKIT_HOME": os.environ["MLFLOWKIT_HOME"],  # the session's local server, never the user's
        "MLFLOWKIT_SERVER_PORT": "0",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "COLUMNS": "200",
    }
    return env_dir, example, env


def test_plugins_list_shows_installed_and_failed_plugins(project: tuple[Venv, Path, dict[str, str]]) -> None:
    env_dir, example, env = project
    done = env_dir.mlflowkit("plugins", "list", "--json", cwd=example, env=env)
    assert done.returncode == 1, done.stderr  # a broken plug-in makes the listing fail, after listing everything
    rows = {(r["group"], r["name"]): r for r in json.loads(done.stdout)}
    for group, name in [
        ("mlflowkit.kinds", "ratio-features"),
        ("mlflowkit.kinds", "drop-columns"),
        ("mlflowkit.metrics", "expected_cost"),
        ("mlflowkit.targets", "folder"),
        ("mlflowkit.recipes", "tabular-classification-features"),
        ("mlflowkit.estimators", "cost-sensitive"),
    ]:
        row = rows[(group, name)]
        assert row["ok"] and row["distribution"] == "mlflowkit-example-plugins" and row["summary"], row
    assert rows[("mlflowkit.targets", "triton")]["ok"]
    broken = rows[("mlflowkit.targets", "broken-target")]
    assert not broken["ok"] and broken["distribution"] == "mlflowkit-broken-plugin"
    assert "RuntimeError: mlflowkit-broken-plugin's target is broken on purpose" in broken["error"]
    assert "No module named 'mlflowkit_does_not_exist'" in rows[("mlflowkit.metrics", "broken_metric")]["error"]
    assert "broken-target" in done.stderr and "broken_metric" in done.stderr


def test_a_registered_estimator_is_allowed_and_checked_and_its_package_is_not_opened_wider(
    project: tuple[Venv, Path, dict[str, str]],
) -> None:
    env_dir, example, env = project
    text = (example / "spec.yaml").read_text()
    plugin = "mlflowkit_example_plugins.estimators.CostSensitiveClassifier"
    cases = {
        "estimator.yaml": (text.replace("sklearn.ensemble.RandomForestClassifier", plugin).replace(
            "params: {n_estimators: 60, max_depth: 8}", "params: {cost_ratio: 3.0}"), 0, ""),
        # Its parameters are read from the class: a misspelt one gets a did-you-mean, a bad value its range.
        "misspelt.yaml": (text.replace("sklearn.ensemble.RandomForestClassifier", plugin).replace(
            "params: {n_estimators: 60, max_depth: 8}", "params: {cost_ration: 3.0, C: -1.0}"), 2, "did you mean 'cost_ratio'?"),
        # Registering one class does not allow the rest of its package.
        "function.yaml": (text.replace("sklearn.ensemble.RandomForestClassifier", "mlflowkit_example_plugins.steps.drop_columns").replace(
            "params: {n_estimators: 60, max_depth: 8}", "params: {}"), 2, "is outside the allowed modules"),
    }
    for name, (body, code, said) in cases.items():
        (example / name).write_text(body)
        done = env_dir.mlflowkit("validate", name, cwd=example, env=env)
        assert done.returncode == code, done.stdout + done.stderr
        assert said in done.stdout + done.stderr
        if name == "misspelt.yaml":
            assert "CostSensitiveClassifier's C must be a number in the range (0, inf) (got -1.0)" in done.stderr


def test_schema_covers_the_plugins(project: tuple[Venv, Path, dict[str, str]]) -> None:
    env_dir, example, env = project
    done = env_dir.mlflowkit("schema", cwd=example, env=env)
    assert done.returncode == 0, done.stderr
    schema = json.loads(done.stdout)
    defs = schema["$defs"]
    # The plug-in's recipe has a branch; its kind's params are there and usable as a `kind:` override anywhere.
    assert "features" in defs["Spec_tabular_classification_features"]["properties"]
    assert set(defs["KindSectionRatioFeatures"]["properties"]) >= {"ratios", "cap", "drop", "kind"}
    assert defs["FolderTarget"]["properties"]["target"]["const"] == "folder"
    assert set(defs["FolderTarget"]["properties"]) >= {"path", "keep_versions", "smoke_rows"}
    import jsonschema
    import yaml

    spec = yaml.safe_load((example / "spec.yaml").read_text())
    jsonschema.Draft202012Validator(schema).validate(spec)
    assert not jsonschema.Draft202012Validator(schema).is_valid({**spec, "features": {"ratios": {}, "kap": 1}})


def test_a_spec_using_every_extension_validates_and_runs(project: tuple[Venv, Path, dict[str, str]]) -> None:
    env_dir, example, env = project
    done = env_dir.mlflowkit("validate", "spec.yaml", cwd=example, env=env)
    assert done.returncode == 0, done.stdout + done.stderr

    done = env_dir.mlflowkit("run", "spec.yaml", cwd=example, env=env)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "Prefect flow run" in done.stdout
    for step, kind in [("features", "ratio-features"), ("drop_text", "python"), ("deploy", "deploy")]:
        rows = [[c.strip() for c in line.split("│")][1:4] for line in done.stdout.splitlines() if "│" in line]
        assert [step, kind, "ran"] in rows, (step, done.stdout)
    assert "expected_cost <= 1.2" in done.stdout

    deployed = Path(env["MLFLOWKIT_EXAMPLE_DEPLOY_DIR"]) / "churn-features"
    assert (deployed / "CURRENT").read_text() == "1"
    contract = json.loads((deployed / "1" / "contract.json").read_text())
    assert "charges_per_tenure" in contract["features"] and "customer_id" not in contract["features"]
    assert "paperless_billing" not in contract["features"]  # the decorated step ran before training
    assert (deployed / "1" / "model.onnx").stat().st_size > 0

    shown = env_dir.mlflowkit("models", "show", "churn-features", "champion", "--spec", "spec.yaml", cwd=example, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "expected_cost" in shown.stdout


def test_a_broken_plugin_is_named_and_the_rest_still_work(project: tuple[Venv, Path, dict[str, str]]) -> None:
    env_dir, example, env = project
    text = (example / "spec.yaml").read_text()
    (example / "broken-target.yaml").write_text(text.replace("target: folder", "target: broken-target"))
    (example / "broken-metric.yaml").write_text(text.replace("[accuracy, roc_auc, expected_cost]", "[accuracy, broken_metric]"))
    done = env_dir.mlflowkit("validate", "broken-target.yaml", cwd=example, env=env)
    assert done.returncode == 2
    assert "deploy target 'broken-target' (mlflowkit.targets) is installed but failed to load" in done.stderr, done.stderr
    assert "RuntimeError: mlflowkit-broken-plugin's target is broken on purpose" in done.stderr
    assert "does not match any of the expected tags" not in done.stderr  # not pydantic's bare discriminator error
    assert "broken-target.yaml:" in done.stderr  # located in the file

    done = env_dir.mlflowkit("validate", "broken-metric.yaml", cwd=example, env=env)
    assert done.returncode == 2
    assert "metric 'broken_metric'" in done.stderr or "broken_metric" in done.stderr, done.stderr
    assert "No module named 'mlflowkit_does_not_exist'" in done.stderr

    # Specs that do not use the broken plug-ins are unaffected: the example validates (and ran above).
    done = env_dir.mlflowkit("validate", "spec.yaml", cwd=example, env=env)
    assert done.returncode == 0, done.stderr
