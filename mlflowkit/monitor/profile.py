"""Reference profiles: per-feature distribution summaries of the training data, stored with each version.

A numeric feature keeps its missing share, moments, decile edges with the share of rows in each bin
(for PSI) and a fixed-seed sample of up to 1,000 values (for the KS test). A text feature keeps its
missing share and the frequency of each of its 100 most common values (the rest as one share). The
champion's outputs on the held-out rows are profiled the same way, for prediction drift.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlflowkit.targets.contract import Contract

__all__ = [
    "PROFILE_FORMAT",
    "build_profile",
    "is_numeric",
    "predicted_labels",
    "prediction_column",
    "predictions_for",
    "summarize",
]

PROFILE_FORMAT = "mlflowkit/profile-v1"
BINS = 10
SAMPLE = 1000
TOP_CATEGORIES = 100
OTHER = "__other__"


def is_numeric(series: pd.Series[Any]) -> bool:
    """Numbers (not booleans) are profiled as numeric; everything else as categories."""
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series))


def summarize(series: pd.Series[Any], *, numeric: bool | None = None, seed: int = 0) -> dict[str, Any]:
    """The distribution summary of one column (see the module doc)."""
    import numpy as np
    import pandas as pd

    numeric = is_numeric(series) if numeric is None else numeric
    count = len(series)
    missing = float(series.isna().mean()) if count else 0.0
    present = series.dropna()
    if numeric:
        values = pd.to_numeric(present, errors="coerce").dropna().to_numpy(dtype=np.float64)
        if not len(values):
            return {"type": "numeric", "count": count, "missing": missing, "edges": [], "fractions": [], "sample": []}
        edges = np.unique(np.quantile(values, np.linspace(0, 1, BINS + 1)[1:-1]))
        fractions = _bin_fractions(values, edges)
        rng = np.random.default_rng(seed)
        sample = values if len(values) <= SAMPLE else rng.choice(values, SAMPLE, replace=False)
        return {
            "type": "numeric",
            "count": count,
            "missing": missing,
            "mean": float(values.mean()),
            "std": float(values.std()),
            "min": float(values.min()),
            "max": float(values.max()),
            "edges": [float(e) for e in edges],
            "fractions": [float(f) for f in fractions],
            "sample": [float(v) for v in np.sort(sample)],
        }
    freq = present.astype(str).value_counts(normalize=True)
    top = freq.iloc[:TOP_CATEGORIES]
    frequencies = {str(k): float(v) for k, v in top.items()}
    rest = float(freq.iloc[TOP_CATEGORIES:].sum())
    if rest > 0:
        frequencies[OTHER] = rest
    return {"type": "categorical", "count": count, "missing": missing, "frequencies": frequencies}


def _bin_fractions(values: np.ndarray[Any, Any], edges: np.ndarray[Any, Any] | list[float]) -> np.ndarray[Any, Any]:
    """Share of ``values`` in each bin between (-inf, e0], (e0, e1], ..., (ek, inf)."""
    import numpy as np

    index = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="left")
    counts = np.bincount(index, minlength=len(edges) + 1).astype(np.float64)
    return counts / max(len(values), 1)


def predictions_for(contract: Contract, onnx_model: bytes, frame: pd.DataFrame) -> tuple[str, pd.Series[Any]]:
    """The model's outputs on ``frame``, as the one profiled column (see :func:`prediction_column`)."""
    from mlflowkit.targets.contract import feeds, run_onnx

    return prediction_column(contract, run_onnx(onnx_model, feeds(contract, frame)), len(frame))


def prediction_column(contract: Contract, outputs: dict[str, Any], rows: int) -> tuple[str, pd.Series[Any]]:
    """A model's outputs as one column: the rule the reference profile and every drift check share.

    Args:
        contract: the model's contract (which output is the label, which the probabilities, the classes).
        outputs: the model's outputs by name (ONNX Runtime's, for ``rows`` rows).
        rows: how many rows were scored.

    Returns:
        ``("probability", p)`` with the positive-class probability for a binary classifier,
        ``("label", labels)`` (as text) for other classifiers and for any model whose output is text,
        or ``("value", predictions)`` for a regressor.
    """
    import numpy as np
    import pandas as pd

    if contract.probability_output and len(contract.classes) == 2:
        proba = np.asarray(outputs[contract.probability_output], dtype=np.float64)
        return "probability", pd.Series(proba[:, 1], name="prediction")
    values = _first_output(contract, outputs, rows)
    if contract.classes or values.dtype == object:
        return "label", pd.Series([str(v) for v in _decoded(values)], name="prediction")
    return "value", pd.Series(values.astype(np.float64), name="prediction")


def predicted_labels(contract: Contract, outputs: dict[str, Any], rows: int) -> list[Any]:
    """The model's label (or value) output, one per row, text decoded (for performance against true labels)."""
    return _decoded(_first_output(contract, outputs, rows))


def _first_output(contract: Contract, outputs: dict[str, Any], rows: int) -> np.ndarray[Any, Any]:
    import numpy as np

    name = contract.label_output or contract.outputs[0].name
    return np.asarray(outputs[name]).reshape(rows, -1)[:, 0]


def _decoded(values: np.ndarray[Any, Any]) -> list[Any]:
    return [v.decode() if isinstance(v, bytes) else v for v in values]


def build_profile(
    frame: pd.DataFrame,
    features: list[str] | tuple[str, ...],
    *,
    predictions: tuple[str, pd.Series[Any]] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The reference profile of ``frame``'s feature columns (and of the model's outputs, when given)."""
    profile: dict[str, Any] = {
        "format": PROFILE_FORMAT,
        "rows": len(frame),
        "features": {f: summarize(frame[f], seed=seed) for f in features},
    }
    if predictions is not None:
        kind, values = predictions
        profile["prediction"] = {"output": kind, **summarize(values, numeric=kind != "label", seed=seed)}
    return profile
