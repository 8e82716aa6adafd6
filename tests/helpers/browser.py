"""Debian's headless Chromium (/usr/bin/chromium) for the page tests: started with everything that phones home off.

`tools/ensure-chromium` installs it (tox runs it before the tests); without it the page tests are skipped.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["CHROMIUM", "PROBE", "blank_share", "chromium", "element_texts", "probe"]

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
"""Put before ``</body>``: once the page has loaded, it lists every plot image (loaded, its size) and any external URL."""


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with its own profile under ``tmp_path``."""
    profile = tmp_path / "chromium-profile"
    cmd = [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def _dumped(tmp_path: Path, html: str, script: str, name: str, attribute: str) -> dict[str, Any]:
    """Load ``html`` with ``script`` before ``</body>`` in Chromium; the JSON the script left on ``<body attribute=...>``."""
    probed = tmp_path / name
    probed.write_text(html.replace("</body>", script + "</body>"))
    dom = chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", probed.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    match = re.search(attribute + r'="([^"]*)"', dom.stdout)
    assert match, dom.stdout[:2000]
    found: dict[str, Any] = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    return found


def probe(tmp_path: Path, html: str) -> dict[str, Any]:
    """Load ``html`` with :data:`PROBE` in Chromium; what the probe found (``plots``, ``external``)."""
    return _dumped(tmp_path, html, PROBE, "probed.html", "data-probe")


def blank_share(png: Path) -> float:
    """The share of (almost) white pixels in a screenshot."""
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(png).convert("RGB"), dtype=int).reshape(-1, 3)
    return float((pixels.min(axis=1) > 245).sum() / len(pixels))


def element_texts(tmp_path: Path, html: str, selectors: list[str]) -> dict[str, Any]:
    """Load ``html`` in Chromium; for each CSS selector, the rendered text length of its first match (None: absent),
    and under ``"details-open"`` whether each ``<details>`` starts open."""
    script = (
        "<script>window.addEventListener('load', () => {"
        f"const sel = {json.dumps(selectors)};"
        "const out = {}; for (const s of sel) { const e = document.querySelector(s);"
        " out[s] = e ? (e.textContent || '').trim().length + (e.tagName === 'IMG' && e.naturalWidth > 0 ? 1 : 0) : null; }"
        "out['details-open'] = [...document.querySelectorAll('details')].map(d => d.open);"
        "document.body.setAttribute('data-elements', JSON.stringify(out)); });</script>"
    )
    return _dumped(tmp_path, html, script, "elements.html", "data-elements")
