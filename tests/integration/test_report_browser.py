"""The HTML report in a real headless Chromium (Debian's, /usr/bin/chromium): every plot loads and the page is not blank.

`tools/ensure-chromium` installs it (tox runs it before the tests); without it the test is skipped.
The network is closed here, so Chromium is started with everything that phones home turned off.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import mlflowkit

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
PROBE = """<script>
window.addEventListener("load", () => {
  const plots = [...document.querySelectorAll("img.plot")].map(i => ({id: i.id, w: i.naturalWidth, h: i.naturalHeight, ok: i.complete}));
  const external = [...document.querySelectorAll("[src],[href]")].map(e => e.getAttribute("src") || e.getAttribute("href"))
    .filter(u => !u.startsWith("data:") && !u.startsWith("#"));
  document.body.setAttribute("data-probe", JSON.stringify({plots, external}));
});
</script>"""


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "chromium-profile"
    cmd = [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


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
    probed = tmp_path / "probed.html"
    probed.write_text(html.replace("</body>", PROBE + "</body>"))

    dom = _chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", probed.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    match = re.search(r'data-probe="([^"]*)"', dom.stdout)
    assert match, dom.stdout[:2000]
    probe = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    plots = {p["id"]: p for p in probe["plots"]}
    assert set(plots) == {"plot-confusion-matrix", "plot-roc", "plot-fairness"}
    for plot in plots.values():
        assert plot["ok"] and plot["w"] > 200 and plot["h"] > 200, plot
    assert probe["external"] == []

    shot = tmp_path / "report.png"
    run = _chromium(tmp_path, "--window-size=1280,4200", f"--screenshot={shot}", report_file.as_uri())
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    from PIL import Image

    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 4200)
    import numpy as np

    pixels = np.asarray(image, dtype=int).reshape(-1, 3)
    white = int((pixels.min(axis=1) > 245).sum())
    assert white < 0.95 * len(pixels), "the screenshot is (almost) blank"
    # The plots' blues (ROC line, confusion-matrix cells, bars) are on the page, not just text and tables.
    r, g, b = pixels[:, 0], pixels[:, 1], pixels[:, 2]
    blue = int(((b > 150) & (b - r > 60) & (b - g > 20)).sum())
    assert blue > 5000, f"only {blue} plot-blue pixels: the plots did not render"
    shutil.copy(shot, report_file.parent / "screenshot.png")  # next to the report, for a human to look at
