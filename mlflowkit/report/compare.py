"""The comparison page: runs side by side (differences marked), a chart per metric across them, their curves overlaid
(ROC and precision-recall for classifiers, residuals for regressors).

Self-contained like the run report (``template.html``, inline PNGs drawn with the report's plot helpers);
the table is the one ``mlflowkit runs compare`` prints, from :func:`mlflowkit.run_summary.compare`.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

from mlflowkit.fmt import number
from mlflowkit.report.html import figure_tag, page
from mlflowkit.run_summary import compare

if TYPE_CHECKING:
    from mlflowkit.run_summary import RunSummary

__all__ = ["metric_chart", "pr_overlaid", "render_comparison", "residuals_overlaid", "roc_overlaid"]

_MAX_METRIC_CHARTS = 12


def _label(run: RunSummary) -> str:
    return run.run_id[-13:]  # time and suffix: unique, and short enough for an axis


def metric_chart(name: str, runs: list[RunSummary]) -> str:
    """One metric across runs, as bars with their bootstrap intervals (when evaluate computed them)."""
    from mlflowkit.report import plots

    have = [r for r in runs if name in r.metrics]
    fig = plots.figure(max(4.0, 1.1 * len(have) + 1.8), 3.2)
    ax = fig.add_subplot()
    values = [r.metrics[name] for r in have]
    colors = [plots.PALETTE[runs.index(r) % len(plots.PALETTE)] for r in have]
    ax.bar(range(len(have)), values, color=colors)
    tops = []
    for i, run in enumerate(have):
        top = values[i]
        if name in run.intervals:
            low, high = run.intervals[name]
            ax.errorbar(i, values[i], yerr=[[values[i] - low], [high - values[i]]], color="black", capsize=4, linewidth=1)
            top = max(top, high)
        tops.append(top)
        ax.annotate(
            number(values[i]), (i, top), ha="center", va="bottom", fontsize="small", xytext=(0, 3), textcoords="offset points"
        )
    ax.set_xticks(range(len(have)), [_label(r) for r in have], rotation=20 if len(have) > 3 else 0, fontsize="small")
    low_end = min([*values, *(r.intervals[name][0] for r in have if name in r.intervals)], default=0.0)
    high_end = max(tops, default=1.0)
    if low_end > 0 and high_end <= 1:  # a score in [0, 1]: show the differences, not the bars' bases
        pad = 0.2 * (high_end - low_end) + 0.01
        ax.set_ylim(max(0.0, low_end - pad), min(1.0, high_end + 2 * pad))
    else:
        ax.margins(y=0.15)
    ax.set_title(name)
    ax.grid(axis="y", alpha=0.3)
    return plots.data_uri(fig)


def roc_overlaid(runs: list[RunSummary]) -> str | None:
    """Every run's ROC curve (the positive class, or each class one-vs-rest) on one plot; None when no run has one."""
    from mlflowkit.report import plots

    curves: list[dict[str, Any]] = []
    for run in runs:
        own = run.document.get("roc_curves") or []
        for curve in own:
            label = _label(run) if len(own) == 1 else f"{_label(run)} · {curve['label']}"
            curves.append({**curve, "label": label})
    return plots.roc_curves(curves) if curves else None


def pr_overlaid(runs: list[RunSummary]) -> str | None:
    """Every run's precision-recall curve on one plot (with each one's average precision); None when no run has one."""
    from mlflowkit.report import plots

    have = [(run, curve) for run in runs for curve in run.document.get("pr_curves") or []]
    if not have:
        return None
    curves = [
        {**curve, "label": f"{_label(run)} · {curve['label']}" if len(run.document["pr_curves"]) > 1 else _label(run)}
        for run, curve in have
    ]
    base = have[0][1].get("base")
    one_class = isinstance(base, float) and len(have) == len(runs)  # one positive class: its share is the chance line
    return plots.pr_curves(curves, base=base if one_class else None)


def residuals_overlaid(runs: list[RunSummary]) -> str | None:
    """Every run's residuals against its predictions on one plot; None when no run is a regression."""
    from mlflowkit.report import plots

    have = [r for r in runs if (r.document.get("residuals") or {}).get("predicted")]
    if not have:
        return None
    fig = plots.figure(7.0, 4.0)
    ax = fig.add_subplot()
    for run in have:
        res = run.document["residuals"]
        color = plots.PALETTE[runs.index(run) % len(plots.PALETTE)]
        ax.scatter(res["predicted"], res["residual"], s=8, alpha=0.45, color=color, label=_label(run))
    ax.axhline(0, color="black", linewidth=1)
    ax.set_xlabel("predicted")
    ax.set_ylabel("residual (true - predicted)")
    ax.set_title("residuals (held-out split)")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return plots.data_uri(fig)


def _table(runs: list[RunSummary]) -> str:
    head = "<th></th><th>field</th>" + "".join(f"<th>{escape(r.run_id)}</th>" for r in runs)
    body, section = [], ""
    for row in compare(runs):
        if row.section != section:
            section = row.section
            body.append(f'<tr><th colspan="{len(runs) + 2}">{escape(section)}</th></tr>')
        cls = ' class="diff"' if row.differs else ""
        mark = "≠" if row.differs else ""
        cells = "".join(f"<td>{escape(v)}</td>" for v in row.values)
        body.append(f'<tr{cls}><td class="mark">{mark}</td><td>{escape(row.name)}</td>{cells}</tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_comparison(runs: list[RunSummary]) -> str:
    """The comparison of ``runs`` as one self-contained HTML page."""
    from mlflowkit.report import plots

    specs = ", ".join(dict.fromkeys(r.record.spec_name for r in runs))
    title = f"{specs} · {len(runs)} runs compared"
    header = f'<header><h1>{escape(title)}</h1><div class="sub">{escape(" · ".join(r.run_id for r in runs))}</div></header>'
    sections = [
        '<section id="table"><h2>Side by side</h2><p class="note">highlighted rows (≠) differ between the runs; '
        "metrics show their bootstrap interval in brackets</p>" + _table(runs) + "</section>"
    ]
    if not plots.available():
        sections.append("<p class=\"note\">charts need matplotlib: <code>pip install 'mlflowkit[report]'</code></p>")
    else:
        names = list(dict.fromkeys(name for r in runs for name in r.metrics))[:_MAX_METRIC_CHARTS]
        charts = [figure_tag(metric_chart(n, runs), f"{n} per run", f"metric-{n}") for n in names]
        sections.append('<section id="metrics"><h2>Metrics per run</h2>' + "".join(charts) + "</section>")
        curves = []
        if (roc := roc_overlaid(runs)) is not None:
            curves.append(figure_tag(roc, "ROC curves, one per run", "roc"))
        if (pr := pr_overlaid(runs)) is not None:
            curves.append(figure_tag(pr, "precision-recall curves, one per run", "pr"))
        if (res := residuals_overlaid(runs)) is not None:
            curves.append(figure_tag(res, "residuals, one colour per run", "residuals"))
        if curves:
            sections.append('<section id="curves"><h2>Curves overlaid</h2>' + "".join(curves) + "</section>")
    return page(title, header + "<main>" + "".join(sections) + "</main>")
