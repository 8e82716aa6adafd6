"""The drift report: one self-contained HTML page (inline SVG charts, no scripts, no external URLs).

For each feature it shows the verdict, the metrics against their thresholds, and the reference and
live distributions side by side: bin shares over the reference deciles for numbers, the most common
values for text. The champion's outputs and, when labels arrived, its performance come first.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from mlflowkit.fmt import number

if TYPE_CHECKING:
    from mlflowkit.monitor.drift import DriftReport, FeatureDrift

__all__ = ["render_html"]

_REF, _LIVE = "#4c78a8", "#f58518"
_STATUS = {"ok": "#2e7d32", "drift": "#c62828", "missing": "#c62828", "ignored": "#757575"}

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1100px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.verdict{display:inline-block;padding:4px 10px;border-radius:4px;color:#fff;font-weight:600}
table{border-collapse:collapse;width:100%;margin:8px 0}td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;
vertical-align:top}th{background:#f5f5f5}.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:14px}
.card{border:1px solid #ddd;border-radius:6px;padding:10px}.card h3{font-size:15px;margin:0 0 4px}
.status{font-weight:600}.small{color:#555;font-size:12px}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
"""


def _bars(labels: list[str], ref: list[float], live: list[float], *, title: str) -> str:
    """A grouped bar chart (reference vs live shares) as inline SVG."""
    width, height, pad = 320, 150, 22
    n = max(len(labels), 1)
    top = max([*ref, *live, 1e-9])
    slot = (width - 2 * pad) / n
    bar = max(slot / 2 - 1, 1)
    parts = [
        f'<svg class="chart" role="img" aria-label="{html.escape(title)}" width="{width}" height="{height + 34}" '
        f'viewBox="0 0 {width} {height + 34}" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="{pad}" y1="{height}" x2="{width - pad}" y2="{height}" stroke="#999"/>',
    ]
    for i, (r, v) in enumerate(zip(ref, live, strict=False)):
        x = pad + i * slot
        for j, (value, colour) in enumerate(((r, _REF), (v, _LIVE))):
            h = (height - 10) * value / top
            parts.append(
                f'<rect x="{x + j * bar:.1f}" y="{height - h:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{html.escape(labels[i])}: {'reference' if j == 0 else 'live'} {value:.1%}</title></rect>"
            )
        if n <= 12:
            label = html.escape(labels[i][:9])
            parts.append(
                f'<text x="{x + slot / 2:.1f}" y="{height + 12}" font-size="9" text-anchor="middle" fill="#444">{label}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _chart(f: FeatureDrift) -> str:
    if f.status == "missing" or not f.reference:
        return '<p class="small">no distribution to show</p>'
    if f.type == "numeric":
        edges = f.reference.get("edges", [])
        ref = f.reference.get("fractions", [])
        live = f.live.get("fractions", [0.0] * len(ref))
        labels = [f"≤{edges[0]:.3g}"] + [f"≤{e:.3g}" for e in edges[1:]] + [f">{edges[-1]:.3g}"] if edges else ["all"]
        return _bars(labels[: len(ref)], ref, live, title=f"{f.feature}: reference vs live")
    ref_freq: dict[str, float] = f.reference.get("frequencies", {})
    live_freq: dict[str, float] = f.live.get("frequencies", {})
    keys = sorted(set(ref_freq) | set(live_freq), key=lambda k: -(ref_freq.get(k, 0.0) + live_freq.get(k, 0.0)))[:10]
    return _bars(keys, [ref_freq.get(k, 0.0) for k in keys], [live_freq.get(k, 0.0) for k in keys], title=f.feature)


def _metrics(f: FeatureDrift) -> str:
    rows = []
    for name, value in f.metrics.items():
        limit = f.thresholds.get(name)
        shown = "—" if value is None else number(value)
        rows.append(f"<tr><td>{html.escape(name)}</td><td>{shown}</td><td>{'' if limit is None else f'{limit:.3g}'}</td></tr>")
    return "<table><tr><th>metric</th><th>value</th><th>threshold</th></tr>" + "".join(rows) + "</table>"


def _card(f: FeatureDrift) -> str:
    colour = _STATUS.get(f.status, "#333")
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in f.reasons)
    return (
        f'<div class="card" data-feature="{html.escape(f.feature)}" data-status="{f.status}">'
        f'<h3>{html.escape(f.feature)} <span class="small">({f.type})</span> '
        f'<span class="status" style="color:{colour}">{f.status}</span></h3>'
        f"{_chart(f)}{_metrics(f)}{f'<ul>{reasons}</ul>' if reasons else ''}</div>"
    )


def render_html(report: DriftReport, *, data: str, check_id: str, spec_name: str) -> str:
    """The report as one HTML document."""
    colour = {"ok": "#2e7d32", "drift": "#c62828"}.get(report.verdict, "#757575")
    summary = "".join(
        f"<tr><td>{html.escape(f.feature)}</td><td>{f.type}</td><td style='color:{_STATUS.get(f.status, '#333')}'>"
        f"{f.status}</td><td>{html.escape('; '.join(f.reasons))}</td></tr>"
        for f in report.features
    )
    perf = ""
    if report.performance:
        p = report.performance
        value = "—" if p.get("value") is None else number(p["value"])
        baseline = "—" if not isinstance(p.get("baseline"), int | float) else number(p["baseline"])
        perf = (
            f"<h2>Performance on {p['rows']} labelled rows</h2><table><tr><th>metric</th><th>live</th>"
            f"<th>at evaluation</th><th>status</th></tr><tr><td>{p['metric']}</td><td>{value}</td><td>{baseline}</td>"
            f"<td>{p['status']}</td></tr></table>"
        )
    prediction = f"<h2>Model outputs</h2><div class='grid'>{_card(report.prediction)}</div>" if report.prediction else ""
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in report.reasons)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Drift check {html.escape(check_id)}: {html.escape(report.model)}</title>
<style>{_CSS}</style></head><body>
<h1>Drift check: {html.escape(report.model)} v{report.version}</h1>
<p class="small">spec {html.escape(spec_name)} · check {html.escape(check_id)} · {report.rows} live rows from
{html.escape(data)}</p>
<p><span class="verdict" id="verdict" style="background:{colour}">{report.verdict}</span></p>
{f"<ul>{reasons}</ul>" if reasons else "<p>No threshold was crossed.</p>"}
<p class="legend small"><span style="background:{_REF}"></span>reference (training data)
<span style="background:{_LIVE}"></span>live</p>
{prediction}{perf}
<h2>Features</h2>
<table><tr><th>feature</th><th>type</th><th>status</th><th>why</th></tr>{summary}</table>
<div class="grid">{"".join(_card(f) for f in report.features)}</div>
</body></html>
"""
