"""The drift report renders in a real headless Chromium: every chart draws both distributions."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from mlflowkit.monitor.drift import compare
from mlflowkit.monitor.profile import build_profile
from mlflowkit.monitor.report import _LIVE, _REF, render_html
from mlflowkit.spec.monitoring import MonitorSpec

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DATA = Path(__file__).parents[2] / "examples" / "churn" / "data" / "churn.csv"
FEATURES = ["age", "gender", "tenure_months", "contract", "monthly_charges", "support_calls", "paperless_billing"]


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def _count(image, colour: tuple[int, int, int], box: tuple[int, int, int, int] | None = None) -> int:
    region = image.crop(box) if box else image
    return sum(n for n, rgb in region.getcolors(maxcolors=1 << 20) if all(abs(a - b) <= 6 for a, b in zip(rgb, colour, strict=True)))


def test_drift_report_screenshot(tmp_path: Path) -> None:
    from PIL import Image

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run tools/ensure-chromium (tox -e tests does)"
    table = pd.read_csv(DATA)
    live = table.iloc[4000:].copy()
    live["monthly_charges"] += 25
    report = compare(build_profile(table.iloc[:4000], FEATURES), live, MonitorSpec(), model="churn", version=3)
    page = tmp_path / "drift.html"
    page.write_text(render_html(report, data="live.csv", check_id="c1", spec_name="churn"))
    assert "http://" not in page.read_text().replace('xmlns="http://www.w3.org/2000/svg"', "")  # self-contained

    png = tmp_path / "drift.png"
    flags = "--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking"
    flags += " --disable-component-update --disable-sync --hide-scrollbars"
    cmd = [CHROMIUM, *flags.split(), f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2400"]
    done = subprocess.run([*cmd, f"--screenshot={png}", page.as_uri()], capture_output=True, text=True, timeout=120, check=False)
    assert png.exists(), done.stderr[-2000:]
    image = Image.open(png).convert("RGB")
    assert image.size == (1200, 2400)
    # The verdict badge (red) and both series of every chart are on the page.
    assert _count(image, (0xC6, 0x28, 0x28)) > 500
    ref, cur = _count(image, _rgb(_REF)), _count(image, _rgb(_LIVE))
    assert ref > 20_000 and cur > 20_000, (ref, cur)
    # The DOM Chromium built has one chart per feature, each with bars of both series.
    dom = subprocess.run([*cmd, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=True).stdout
    assert dom.count('class="chart"') == len(FEATURES)
    assert dom.count(f'fill="{_LIVE}"') >= 2 * len(FEATURES) and 'data-feature="monthly_charges" data-status="drift"' in dom


@pytest.mark.parametrize("status", ["ok", "drift"])
def test_report_names_the_verdict(status: str) -> None:
    table = pd.read_csv(DATA)
    live = table.iloc[4000:].copy()
    if status == "drift":
        live["age"] = live["age"] + 30
    report = compare(build_profile(table.iloc[:4000], FEATURES), live, MonitorSpec(), model="churn", version=1)
    page = render_html(report, data="x.csv", check_id="c", spec_name="s")
    assert f'id="verdict" style="background:{"#c62828" if status == "drift" else "#2e7d32"}">{status}<' in page
