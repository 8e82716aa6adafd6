"""`runs list` and `runs compare` on real runs of scaffolded projects, and the comparison page in a real headless Chromium.

Two runs of a classification project (ROC curves overlaid) and two of a regression project (residuals
overlaid), each run in this process without an orchestrator; the scaffolds' data checks are left out to
keep it quick (they are not what is compared).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from browser import CHROMIUM, blank_share, chromium, probe
from typer.testing import CliRunner

import mlflowkit
from mlflowkit.cli import app
from mlflowkit.scaffold import scaffold

ENV = {"COLUMNS": "250", "MLFLOWKIT_USER": "tester"}


def _project(tmp: Path, recipe: str) -> Path:
    folder = tmp / recipe
    scaffold(recipe, folder, rows=400)
    spec = folder / "spec.yaml"
    text = spec.read_text()
    text = re.sub(r"(?ms)^checks:.*?(?=^train:)", "", text)  # no GX import: not what is compared
    spec.write_text(text.replace("  metrics: [accuracy, f1, roc_auc]\n", "  metrics: [accuracy, f1, roc_auc]\n  bootstrap: {n: 30}\n"))
    return folder


def _runs(folder: Path, *overrides: list[str], edit: tuple[str, str] | None = None) -> list[str]:
    ids = []
    for i, over in enumerate(overrides):
        if edit is not None and i == 1:
            spec = folder / "spec.yaml"
            spec.write_text(spec.read_text().replace(*edit))
        result = mlflowkit.run(mlflowkit.load_spec(folder / "spec.yaml", overrides=over), orchestrate=False)
        assert result.verdict is not None, result.error  # it reached the gates (a weak model may fail them: compared too)
        ids.append(result.run_id)
    return ids


def _cli(*args: str) -> str:
    done = CliRunner().invoke(app, list(args), env=ENV)
    assert done.exit_code == 0, done.output
    return done.output


@pytest.fixture(scope="module")
def classification(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    folder = _project(tmp_path_factory.mktemp("cmp"), "tabular-classification")
    return folder, _runs(folder, ["params.n_estimators=60"], ["params.n_estimators=5"], ["params.n_estimators=30"])


def test_runs_list_shows_chosen_metrics_and_params_sorted_and_filtered(classification: tuple[Path, list[str]]) -> None:
    folder, ids = classification
    store = ["--store", str(folder / ".mlflowkit")]
    text = _cli("runs", "list", "--metric", "roc_auc", "--param", "n_estimators", "--sort", "n_estimators", "--desc", *store)
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines() if line.startswith("│ 2")]
    # A header may take two lines (a long column name wraps): the one naming the chosen columns.
    header = [c.strip() for c in next(line for line in text.splitlines() if line.startswith("┃") and "roc_auc" in line).split("┃")[1:-1]]
    table = [dict(zip(header, row, strict=True)) for row in rows]
    assert [row["n_estimators"] for row in table] == ["60", "30", "5"], text
    assert [row[0] for row in rows] == [ids[0], ids[2], ids[1]]  # the first column (a wrapped "flow run" also ends in "run")
    assert all(re.fullmatch(r"0\.\d{1,4} \[0\.\d{1,4}, [01](\.\d{1,4})?\]", row["roc_auc"]) for row in table), text  # with its interval
    kept = _cli("runs", "list", "--filter", "n_estimators<40", *store)
    assert ids[0] not in kept and ids[1] in kept and ids[2] in kept
    failed = _cli("runs", "list", "--filter", "verdict=fail", "--filter", "status=failed", *store)
    assert ids[0] not in failed and ids[1] in failed  # five trees lose more than 0.02 of roc_auc to the champion
    bad = CliRunner().invoke(app, ["runs", "list", "--metric", "roc_acu", *store], env=ENV)
    assert bad.exit_code == 2 and "did you mean roc_auc" in bad.output


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium: run tools/ensure-chromium (tox does)")
def test_compare_marks_differences_and_its_page_renders_in_chromium(classification: tuple[Path, list[str]], tmp_path: Path) -> None:
    folder, ids = classification
    page = tmp_path / "compare.html"
    text = _cli("runs", "compare", ids[0], ids[1], ids[2][:-2], "--html", str(page), "--store", str(folder / ".mlflowkit"))
    lines = {line.split("│")[2].strip(): line for line in text.splitlines() if line.count("│") >= 5}
    assert "≠" in lines["params: n_estimators"] and "≠" not in lines["data: content sha256"]
    assert "≠" in lines["metrics: roc_auc"]
    assert len(re.findall(r"0\.\d{1,4} \[0\.\d{1,4}, [01](\.\d{1,4})?\]", lines["metrics: roc_auc"])) == 3, lines["metrics: roc_auc"]
    html = page.read_text()
    assert html.count('class="diff"') >= 2 and "https://" not in html and "http://" not in html.split("<body>")[0]
    found = probe(tmp_path, html)
    plots = {p["id"]: p for p in found["plots"]}
    assert {"plot-metric-accuracy", "plot-metric-f1", "plot-metric-roc_auc", "plot-roc", "plot-pr"} <= set(plots), sorted(plots)
    assert all(p["ok"] and p["w"] > 200 and p["h"] > 150 for p in plots.values()), plots
    assert found["external"] == []
    shot = tmp_path / "compare.png"
    done = chromium(tmp_path, "--window-size=1280,2600", f"--screenshot={shot}", page.as_uri())
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    assert blank_share(shot) < 0.95, "the screenshot is (almost) blank"
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=int).reshape(-1, 3)
    r, g, b = pixels[:, 0], pixels[:, 1], pixels[:, 2]
    blue = int(((b > 150) & (b - r > 60) & (b - g > 20)).sum())
    orange = int(((r > 200) & (r - b > 120) & (g > 80) & (g < 150)).sum())
    assert blue > 3000 and orange > 3000, (blue, orange)  # bars of the first run and of the second, and their curves


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium: run tools/ensure-chromium (tox does)")
def test_a_regression_comparison_overlays_residuals(tmp_path: Path) -> None:
    folder = _project(tmp_path, "tabular-regression")
    ids = _runs(folder, [], [], edit=("n_estimators: 60", "n_estimators: 5"))
    page = tmp_path / "compare.html"
    text = _cli("runs", "compare", *ids, "--html", str(page), "--diff", "--store", str(folder / ".mlflowkit"))
    assert "estimator.n_estimators" in text and "data: rows" not in text  # --diff: only what differs
    plots = {p["id"] for p in probe(tmp_path, page.read_text())["plots"]}
    assert {"plot-residuals", "plot-metric-rmse", "plot-metric-r2"} <= plots and not {"plot-roc", "plot-pr"} & plots
