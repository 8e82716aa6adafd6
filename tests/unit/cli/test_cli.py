"""The command line as a user meets it: --version, the help's panels, flags without a type, `models show`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import typer.main
from typer.core import TyperGroup
from typer.testing import CliRunner

import mlflowkit
from mlflowkit.cli import app
from mlflowkit.cli.help import PANELS
from mlflowkit.store import ModelRegistry

WIDE = {"COLUMNS": "200", "TERM": "dumb"}


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=WIDE)
    return result.exit_code, result.output


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(flag: str) -> None:
    code, output = invoke(flag)
    assert code == 0 and output == f"mlflowkit {mlflowkit.__version__}\n"


def test_top_level_help_groups_commands_in_panels() -> None:
    code, output = invoke("--help")
    assert code == 0, output
    titles = {panel: output.index(f"─ {panel} ─") for panel in PANELS}
    assert list(titles.values()) == sorted(titles.values()), titles  # everyday, models, operations, edge
    assert "─ Commands ─" not in output  # every command has its panel

    def panel_of(command: str) -> str:
        at = output.index(f"│ {command} ")
        return max((p for p, start in titles.items() if start < at), key=titles.__getitem__)

    expected = {
        "init": "Everyday", "validate": "Everyday", "plan": "Everyday", "run": "Everyday", "runs": "Everyday",
        "report": "Everyday", "recipes": "Everyday", "schema": "Everyday", "models": "Models",
        "flows": "Operations", "monitor": "Operations", "policy": "Operations", "store": "Operations", "triton": "Operations",
        "plugins": "Operations", "edge": "Edge devices",
    }  # fmt: skip
    assert {command: panel_of(command) for command in expected} == expected


def _every_command(group: TyperGroup, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    ctx = typer.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        found += _every_command(command, (*path, name)) if isinstance(command, TyperGroup) else [(*path, name)]
    return found


def test_no_flag_shows_a_type() -> None:
    """typer prints ``<bool>`` beside every flag; a flag takes no value, so the help shows none."""
    commands = _every_command(typer.main.get_command(app))  # type: ignore[arg-type]
    assert len(commands) > 40
    for path in commands:
        code, output = invoke(*path, "--help")
        assert code == 0, (path, output)
        assert "<bool>" not in output, (path, output)
    _, output = invoke("run", "--help")
    assert "<str>" in output and "--verbose" in output  # options that take a value still say what


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    """A store with churn v1 (champion) and v2, registered with a run's lineage."""
    store = tmp_path / "store"
    reg = ModelRegistry(store / "registry")
    verdict = {
        "passed": True,
        "rules": [
            {"rule": "accuracy >= 0.7", "value": 0.8125, "threshold": 0.7, "passed": True, "note": ""},
            {"rule": "roc_auc >= champion.roc_auc - 0.02", "value": 0.86, "threshold": 0.83, "passed": True, "note": ""},
        ],
    }
    for version, accuracy in ((1, 0.79), (2, 0.8125)):
        lineage = {
            "spec_name": "churn-classifier", "spec_hash": "4b8320864e422bc84a67", "run_id": f"run-{version}",
            "git_commit": "1a2b3c4", "estimator": "sklearn.ensemble.RandomForestClassifier",
            "params": {"n_estimators": 150, "max_depth": 10}, "target": "churned", "classes": ["no", "yes"],
            "features": ["age", "contract"], "metrics": {"accuracy": accuracy, "roc_auc": 0.86},
            "data_fingerprint": {"source": "data/churn.csv", "rows": 5000, "content_hash": "afe2d18b0e005af8"},
            "champion_at_evaluation": {"version": 1, "metrics": {"accuracy": 0.79, "roc_auc": 0.85}} if version == 2 else {},
            "verdict": verdict,
            "onnx": {"opset": {"": 22, "ai.onnx.ml": 3}, "parity": {"ok": True, "rows": 160, "max_abs_diff": 1.3e-07}},
        }  # fmt: skip
        reg.register("churn", {"model.onnx": b"onnx-bytes", "contract.json": b"{}"}, lineage)
    reg.set_alias("churn", "champion", 1, reason="first", actor="alice")
    return store


def test_models_show_is_a_summary(registry: Path) -> None:
    code, output = invoke("models", "show", "churn", "2", "--store", str(registry))
    assert code == 0, output
    assert "churn v2" in output and "run-2" in output and "churn-classifier (sha256 4b8320864e42)" in output
    assert "data/churn.csv: 5000 rows" in output and "RandomForestClassifier (max_depth=10, n_estimators=150)" in output
    assert "churned: classes no, yes" in output and "opset 22, ai.onnx.ml 3; parity ok on 160 rows" in output
    metrics = next(line for line in output.splitlines() if "│ accuracy " in line)
    assert "0.8125" in metrics and " 0.79 " in metrics  # the version's value beside the champion's
    assert "gate verdict: PASS" in output and "accuracy >= 0.7" in output
    assert "model.onnx" in output and "contract.json" in output
    assert '"lineage"' not in output and len(output.splitlines()) < 60  # no raw JSON dump


def test_models_show_names_aliases_and_their_moves(registry: Path) -> None:
    code, output = invoke("models", "show", "churn", "--store", str(registry))  # the champion by default
    assert code == 0, output
    assert "churn v1" in output and "champion" in output
    assert "champion: - → v1  by alice: first" in output


def test_models_show_json_keeps_the_raw_record(registry: Path) -> None:
    code, output = invoke("models", "show", "churn", "champion", "--store", str(registry), "--json")
    assert code == 0, output
    assert json.loads(output) == ModelRegistry(registry / "registry").get("churn", 1).model_dump(mode="json")


def test_models_show_of_a_missing_version_says_which_exist(registry: Path) -> None:
    result = CliRunner().invoke(app, ["models", "show", "churn", "9", "--store", str(registry)], env=WIDE)
    assert result.exit_code != 0 and "no version 9" in result.stderr and "v1, v2" in result.stderr


def test_edge_commands_stay_light(tmp_path: Path) -> None:
    """``mlflowkit edge ...`` goes through the whole app, which must not load the heavy libraries."""
    code = (
        "import json, sys\n"
        "from mlflowkit.cli import main\n"
        "sys.argv = ['mlflowkit', 'edge', 'status', '--dir', sys.argv[1]]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
        "heavy = {'prefect', 'ray', 'great_expectations', 'pandas', 'sklearn', 'torch'}\n"
        "print(json.dumps(sorted(heavy & {m.split('.')[0] for m in sys.modules})))\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["runs", "list"], 0),
        (["models", "list"], 0),
        (["runs", "show", "r1"], 1),
        (["runs", "compare", "r1", "r2"], 1),
        (["models", "show", "churn"], 1),
        (["models", "history", "churn"], 1),
        (["store", "verify"], 2),
    ],
)
def test_reading_a_store_that_is_not_there_names_it_and_creates_nothing(args: list[str], code: int, tmp_path: Path) -> None:
    missing = tmp_path / "typo" / ".mlflowkit"
    result = CliRunner().invoke(app, [*args, "--store", str(missing)], env=WIDE)
    assert result.exit_code == code, result.output
    assert f"no store at {missing}" in result.stderr and "--store URI or --spec SPEC" in result.stderr
    assert not (tmp_path / "typo").exists()
