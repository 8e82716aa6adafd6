"""The report's figures, drawn with matplotlib (``pip install 'mlflowkit[report]'``) as inline PNG data URIs.

Figures are made with ``matplotlib.figure.Figure`` and the Agg canvas, never pyplot, so a report
leaves the caller's matplotlib state (backend, open figures) as it was.
"""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["PALETTE", "available", "confusion_matrix", "data_uri", "fairness_groups", "figure", "residuals", "roc_curves"]

_BLUE, _ORANGE, _GREY = "#2b6cb0", "#dd6b20", "#a0aec0"
PALETTE = ["#2b6cb0", "#dd6b20", "#2f855a", "#c53030", "#6b46c1", "#b7791f", "#319795", "#d53f8c", "#4a5568", "#38a169"]


def available() -> bool:
    """Whether matplotlib is installed (the ``report`` extra); found without importing it, which takes a while."""
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def figure(width: float = 5.0, height: float = 4.0) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def data_uri(fig: Figure) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def confusion_matrix(labels: list[str], matrix: list[list[int]]) -> str:
    """Counts of true (rows) against predicted (columns) labels, as a heat map."""
    import numpy as np

    counts = np.asarray(matrix, dtype=float)
    size = max(3.6, 1.0 + 0.7 * len(labels))
    fig = figure(size + 0.8, size)
    ax = fig.add_subplot()
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_xticks(range(len(labels)), labels, rotation=45 if len(labels) > 4 else 0)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix (held-out split)")
    top = counts.max() if counts.size else 0
    for (i, j), value in np.ndenumerate(counts):
        ax.text(j, i, f"{int(value)}", ha="center", va="center", color="white" if value > top / 2 else "black")
    return data_uri(fig)


def roc_curves(curves: list[dict[str, Any]]) -> str:
    """ROC curves (one per class for one-vs-rest), with the chance diagonal."""
    fig = figure()
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color=_GREY, linewidth=1, label="chance")
    for i, curve in enumerate(curves):
        color = PALETTE[i % len(PALETTE)]
        ax.plot(curve["fpr"], curve["tpr"], color=color, linewidth=2, label=f"{curve['label']} (AUC {curve['auc']:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC curve (held-out split)")
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(alpha=0.3)
    return data_uri(fig)


def residuals(predicted: list[float], residual: list[float]) -> str:
    """Residuals (true minus predicted) against the prediction, and their histogram."""
    fig = figure(8.0, 3.8)
    left, right = fig.subplots(1, 2, width_ratios=[3, 2])
    left.scatter(predicted, residual, s=10, alpha=0.6, color=_BLUE)
    left.axhline(0, color=_ORANGE, linewidth=1)
    left.set_xlabel("predicted")
    left.set_ylabel("residual (true - predicted)")
    left.set_title("residuals (held-out split)")
    left.grid(alpha=0.3)
    right.hist(residual, bins=30, color=_BLUE, alpha=0.8)
    right.set_xlabel("residual")
    right.set_ylabel("rows")
    right.set_title("distribution")
    return data_uri(fig)


def fairness_groups(groups: list[dict[str, Any]], metrics: list[str]) -> str:
    """Per-group metrics of each sensitive feature, as grouped bars (small groups hatched)."""
    import numpy as np

    features = list(dict.fromkeys(g["feature"] for g in groups))
    fig = figure(max(5.0, 2.2 * len(features) + 2.5), 3.8)
    axes = fig.subplots(1, len(features), squeeze=False)[0]
    for ax, feature in zip(axes, features, strict=True):
        rows = [g for g in groups if g["feature"] == feature]
        x = np.arange(len(rows))
        width = 0.8 / max(len(metrics), 1)
        for k, name in enumerate(metrics):
            values = [float(r.get(name) or 0.0) for r in rows]
            bars = ax.bar(x + k * width - 0.4 + width / 2, values, width, label=name, color=PALETTE[k % len(PALETTE)])
            for bar, r in zip(bars, rows, strict=True):
                if r.get("note"):
                    bar.set_hatch("//")
        ax.set_xticks(x, [f"{r['group']}\n({r['rows']} rows)" for r in rows], fontsize="small")
        ax.set_ylim(0, 1.05)
        ax.set_title(f"by {feature}")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize="small", loc="upper left")
    return data_uri(fig)
