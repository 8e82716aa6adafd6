"""The report's content (#21) in a real headless Chromium, for a classification, a regression and a torch run.

Each run is small and made in this process without an orchestrator; the page is opened in Debian's
/usr/bin/chromium and the new sections are read back from the rendered DOM: present and non-empty, every
plot image decoded with a real size, the example request folded away.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from browser import CHROMIUM, chromium, element_texts, probe

import mlflowkit
from mlflowkit.scaffold import scaffold

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium: run tools/ensure-chromium (tox does)"),
]
REPO = Path(__file__).resolve().parents[2]
CARD = "model_card:\n  intended_use: Rank accounts for a person to review.\n  limitations: Synthetic data only.\n"


def _report(folder: Path, *overrides: list[str]) -> Path:
    result = None
    for over in overrides:
        result = mlflowkit.run(mlflowkit.load_spec(folder / "spec.yaml", overrides=over), orchestrate=False)
        assert result.ok, result.error
    assert result is not None and result.report_path is not None
    return Path(result.report_path)


def _plots(tmp_path: Path, page: Path) -> set[str]:
    found = probe(tmp_path, page.read_text())
    for plot in found["plots"]:
        assert plot["ok"] and plot["w"] > 150 and plot["h"] > 150, plot  # decoded, with a real size
    assert found["external"] == []
    return {p["id"] for p in found["plots"]}


def _scaffolded(tmp: Path, recipe: str) -> Path:
    folder = tmp / recipe
    scaffold(recipe, folder, rows=400)
    spec = folder / "spec.yaml"
    text = re.sub(r"(?ms)^checks:.*?(?=^train:)", "", spec.read_text())  # no GX import: not what is shown here
    spec.write_text(text.replace("recipe: ", CARD + "recipe: ", 1))
    return folder


@pytest.fixture(scope="module")
def classification(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two runs of a scaffolded classifier: the second has a champion to be drawn beside it."""
    folder = _scaffolded(tmp_path_factory.mktemp("report"), "tabular-classification")
    return _report(folder, ["params.n_estimators=20"], ["params.n_estimators=30"])


def test_classification_report_shows_purpose_data_champion_and_versions(classification: Path, tmp_path: Path) -> None:
    plots = _plots(tmp_path, classification)
    assert {"plot-confusion-matrix", "plot-roc", "plot-pr", "plot-calibration", "plot-importance"} <= plots
    html = classification.read_text()
    assert "confusion matrix: this model | champion v1" in html and "ROC curve, champion v1 dashed" in html
    shown = element_texts(
        tmp_path,
        html,
        [
            "#card-intended-use",
            "#card-limitations",
            "#data",
            "#profile",
            "#libraries",
            "#example-request",
            "#example-request pre",
        ],
    )
    for selector, length in shown.items():
        if selector != "details-open":
            assert length, f"{selector} is missing or empty: {shown}"
    assert shown["details-open"] == [False]  # the example request is folded away
    assert "scikit-learn" in html and "onnxruntime" in html


@pytest.fixture(scope="module")
def regression(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _report(_scaffolded(tmp_path_factory.mktemp("report"), "tabular-regression"), [])


def test_regression_report_plots_predicted_against_actual(regression: Path, tmp_path: Path) -> None:
    assert {"plot-predicted-actual", "plot-residuals", "plot-importance"} <= _plots(tmp_path, regression)
    html = regression.read_text()
    assert "Δprobability" not in html and "plot-roc" not in html
    assert not re.search(r"\d\.\d{3}e\+0\d", html.split("<body>")[1].split("data:image")[0])  # one number format
    shown = element_texts(tmp_path, html, ["#profile", "#libraries", "#card-limitations"])
    assert all(shown[s] for s in ("#profile", "#libraries", "#card-limitations")), shown


@pytest.fixture(scope="module")
def torch_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("ray")
    root = tmp_path_factory.mktemp("report")
    for name in ("churn", "churn-torch"):
        shutil.copytree(REPO / "examples" / name, root / name, ignore=shutil.ignore_patterns(".mlflowkit", "__pycache__"))
    spec = root / "churn-torch" / "spec.yaml"
    spec.write_text(spec.read_text().replace("num_workers: 2", "num_workers: 1").replace("epochs: 12", "epochs: 3"))
    try:
        return _report(root / "churn-torch", [])
    finally:
        import ray

        ray.shutdown()


@pytest.mark.slow
def test_torch_report_shows_the_loss_per_epoch(torch_run: Path, tmp_path: Path) -> None:
    assert {"plot-loss", "plot-roc", "plot-calibration"} <= _plots(tmp_path, torch_run)
    assert "3 epochs; last: training loss" in torch_run.read_text()
    shot = tmp_path / "torch.png"
    done = chromium(tmp_path, "--window-size=1280,2400", f"--screenshot={shot}", torch_run.as_uri() + "#training")
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
