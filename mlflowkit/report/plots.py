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

__all__ = [
    "PALETTE",
    "available",
    "calibration",
    "confusion_matrices",
    "confusion_matrix",
    "data_uri",
    "fairness_groups",
    "figure",
    "importance",
    "loss_curve",
    "pr_curves",
    "predicted_vs_actual",
    "residuals",
    "roc_curves",
]

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
    return confusion_matrices([("confusion matrix (held-out split)", labels, matrix)])


def confusion_matrices(panels: list[tuple[str, list[str], list[list[int]]]]) -> str:
    """Confusion matrices side by side (this model | the champion), each titled, on one colour scale."""
    import numpy as np

    counts = [np.asarray(matrix, dtype=float) for _, _, matrix in panels]
    top = max((c.max() for c in counts if c.size), default=0.0)
    size = max(3.6, 1.0 + 0.7 * max(len(labels) for _, labels, _ in panels))
    fig = figure((size + 0.4) * len(panels) + 0.6, size)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    image = None
    for ax, (title, labels, _), grid in zip(axes, panels, counts, strict=True):
        image = ax.imshow(grid, cmap="Blues", vmin=0, vmax=top or 1)
        ax.set_xticks(range(len(labels)), labels, rotation=45 if len(labels) > 4 else 0)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title, fontsize="medium")
        for (i, j), value in np.ndenumerate(grid):
            ax.text(j, i, f"{int(value)}", ha="center", va="center", color="white" if value > top / 2 else "black")
    if image is not None:
        fig.colorbar(image, ax=list(axes), shrink=0.8)
    return data_uri(fig)


def _labelled(curve: dict[str, Any], prefix: str, score: str) -> str:
    return f"{prefix}{curve['label']} ({score} {curve[score.lower()]:.3f})"


def _overlaid(
    ax: Any,
    curves: list[dict[str, Any]],
    champion: list[dict[str, Any]] | None,
    champion_name: str,
    axes: tuple[str, str, str],
) -> None:
    """Draw ``curves`` solid and the champion's dashed in the same colours; ``axes`` names (x key, y key, score)."""
    x, y, score = axes
    own = "this model · " if champion else ""
    for i, curve in enumerate(curves):
        ax.plot(curve[x], curve[y], color=PALETTE[i % len(PALETTE)], linewidth=2, label=_labelled(curve, own, score))
    for i, curve in enumerate(champion or []):
        ax.plot(
            curve[x], curve[y], color=PALETTE[i % len(PALETTE)], linewidth=1.5, linestyle="--",
            label=_labelled(curve, f"{champion_name} · ", score),
        )  # fmt: skip


def _unit_square(ax: Any, xlabel: str, ylabel: str, title: str, legend: str) -> str:
    """Finish a plot drawn on [0, 1] x [0, 1]: labels, title, legend, grid; its data URI."""
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc=legend, fontsize="small")
    ax.grid(alpha=0.3)
    return data_uri(ax.figure)


def roc_curves(
    curves: list[dict[str, Any]], champion: list[dict[str, Any]] | None = None, champion_name: str = "champion"
) -> str:
    """ROC curves (one per class for one-vs-rest), with the chance diagonal; the champion's dashed, in the same colours."""
    fig = figure()
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle=":", color=_GREY, linewidth=1, label="chance")
    _overlaid(ax, curves, champion, champion_name, ("fpr", "tpr", "AUC"))
    return _unit_square(ax, "false positive rate", "true positive rate", "ROC curve (held-out split)", "lower right")


def pr_curves(
    curves: list[dict[str, Any]],
    champion: list[dict[str, Any]] | None = None,
    champion_name: str = "champion",
    base: float | None = None,
) -> str:
    """Precision-recall curves with their average precision (the champion's dashed); ``base`` draws the chance line."""
    fig = figure()
    ax = fig.add_subplot()
    _overlaid(ax, curves, champion, champion_name, ("recall", "precision", "AP"))
    if base is not None:
        ax.axhline(base, linestyle=":", color=_GREY, linewidth=1, label="chance")
    return _unit_square(ax, "recall", "precision", "precision-recall (held-out split)", "lower left")


def calibration(curves: list[tuple[str, dict[str, Any]]]) -> str:
    """Reliability diagram: mean predicted probability against the observed rate per bin (marker size: rows)."""
    fig = figure()
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle=":", color=_GREY, linewidth=1, label="perfectly calibrated")
    for i, (name, curve) in enumerate(curves):
        points = curve.get("points") or []
        most = max([1, *(q["rows"] for q in points)])
        sizes = [8 + 60 * p["rows"] / most for p in points]
        color = PALETTE[i % len(PALETTE)]
        xs, ys = [p["predicted"] for p in points], [p["observed"] for p in points]
        ax.plot(xs, ys, color=color, linewidth=2 if i == 0 else 1.5, linestyle="-" if i == 0 else "--")
        ax.scatter(xs, ys, s=sizes, color=color, label=f"{name} (Brier {curve.get('brier', float('nan')):.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel(f"predicted {curves[0][1].get('label', 'probability')}" if curves else "predicted")
    ax.set_ylabel("observed rate")
    ax.set_title("calibration (held-out split)")
    ax.legend(loc="upper left", fontsize="small")
    ax.grid(alpha=0.3)
    return data_uri(fig)


def importance(features: list[dict[str, Any]], metric: str, shown: int = 15) -> str:
    """Permutation importance: the metric's loss when each column is shuffled, largest on top, with its spread."""
    top = features[:shown][::-1]
    fig = figure(6.0, max(2.4, 0.8 + 0.32 * len(top)))
    ax = fig.add_subplot()
    ax.barh(range(len(top)), [f["mean"] for f in top], xerr=[f["std"] for f in top], color=_BLUE, alpha=0.85, capsize=3)
    ax.set_yticks(range(len(top)), [f["feature"] for f in top], fontsize="small")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(f"{metric} lost when the column is shuffled")
    ax.set_title("permutation feature importance")
    ax.grid(axis="x", alpha=0.3)
    return data_uri(fig)


def predicted_vs_actual(predicted: list[float], actual: list[float]) -> str:
    """A regressor's predictions against the true values, with the line where they are equal."""
    fig = figure(4.6, 4.2)
    ax = fig.add_subplot()
    ax.scatter(actual, predicted, s=10, alpha=0.6, color=_BLUE)
    low, high = min([*actual, *predicted], default=0.0), max([*actual, *predicted], default=1.0)
    ax.plot([low, high], [low, high], color=_ORANGE, linewidth=1, label="predicted = actual")
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.set_title("predicted vs actual (held-out split)")
    ax.legend(loc="upper left", fontsize="small")
    ax.grid(alpha=0.3)
    return data_uri(fig)


def loss_curve(history: list[dict[str, Any]]) -> str:
    """Training and validation loss per epoch."""
    fig = figure(5.5, 3.6)
    ax = fig.add_subplot()
    epochs = [h["epoch"] for h in history]
    for key, color, name in (("train_loss", _BLUE, "training"), ("val_loss", _ORANGE, "validation")):
        if any(h.get(key) is not None for h in history):
            ax.plot(
                epochs,
                [float("nan") if h.get(key) is None else h[key] for h in history],
                color=color,
                linewidth=2,
                marker="o",
                markersize=3,
                label=name,
            )
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("loss per epoch")
    ax.legend(fontsize="small")
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
