"""The HTML report in a real headless Chromium (Debian's, /usr/bin/chromium): every plot loads and the page is not blank.

`tools/ensure-chromium` installs it (tox runs it before the tests); without it the test is skipped.
The network is closed here, so Chromium is started with everything that phones home turned off (helpers/browser.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from browser import CHROMIUM, blank_share, chromium, probe

import mlflowkit

pytestmark = [pytest.mark.browser]

@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run of the reference example (in this process, no orchestrator), and its report."""
    project = tmp_path_factory.mktemp("report") / "churn"
    shutil.copytree(
        Path(__file__).resolve().parents[2] / "examples" / "churn",
        project,
        ignore=shutil.ignore_patterns(".mlflowkit", "__pycache__"),
    )
    result = mlflowkit.run(mlflowkit.load_spec(project / "spec.yaml"), orchestrate=False)
    assert result.ok, result.error
    assert result.report is not None
    return project / ".mlflowkit" / result.report


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium: run tools/ensure-chromium (tox does)")
def test_report_plots_render_in_chromium(report_file: Path, tmp_path: Path) -> None:
    html = report_file.read_text()
    assert "http://" not in html.split("<body>")[0] and "https://" not in html  # self-contained: nothing to fetch
    found = probe(tmp_path, html)
    plots = {p["id"]: p for p in found["plots"]}
    want = {"plot-confusion-matrix", "plot-roc", "plot-pr", "plot-calibration", "plot-importance", "plot-fairness"}
    assert set(plots) == want
    for plot in plots.values():
        assert plot["ok"] and plot["w"] > 200 and plot["h"] > 200, plot
    assert found["external"] == []

    shot = tmp_path / "report.png"
    run = chromium(tmp_path, "--window-size=1280,4200", f"--screenshot={shot}", report_file.as_uri())
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    from PIL import Image

    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 4200)
    import numpy as np

    pixels = np.asarray(image, dtype=int).reshape(-1, 3)
    assert blank_share(shot) < 0.95, "the screenshot is (almost) blank"
    # The plots' blues (ROC line, confusion-matrix cells, bars) are on the page, not just text and tables.
    r, g, b = pixels[:, 0], pixels[:, 1], pixels[:, 2]
    blue = int(((b > 150) & (b - r > 60) & (b - g > 20)).sum())
    assert blue > 5000, f"only {blue} plot-blue pixels: the plots did not render"
    shutil.copy(shot, report_file.parent / "screenshot.png")  # next to the report, for a human to look at
