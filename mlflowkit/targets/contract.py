"""The model contract: what an exported ONNX model takes and returns, and how a table becomes its inputs.

The export step writes it as ``contract.json`` next to ``model.onnx``; deploy targets generate their
configuration from it, and application developers integrate against it. Input layout ``columns``
(one ``[batch, 1]`` input per feature column, named after it) is what a pipeline with a
ColumnTransformer exports to: numbers are float32 (missing = NaN), text is a string tensor
(missing = ``""``). Layout ``matrix`` is one float32 ``[batch, n_features]`` input named ``input``,
for estimators fitted without preprocessing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["CONTRACT_FORMAT", "Contract", "Parity", "TensorSpec", "compare_outputs", "feeds", "ort_max_opset", "run_onnx"]

CONTRACT_FORMAT = "mlflowkit/contract-v1"
MISSING_TEXT = ""
"""What a missing text value is sent as: ONNX string tensors have no NaN."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpec(_Frozen):
    """One input or output tensor of the model."""

    name: str = Field(description="The tensor's name in the ONNX graph (and in Triton).")
    dtype: Literal["float32", "float64", "int64", "int32", "string"] = Field(description="Element type.")
    shape: tuple[int, ...] = Field(description="Shape; -1 marks a dynamic dimension (the first is the batch).")
    column: str | None = Field(None, description="The table column it carries (inputs in the `columns` layout).")


class Contract(_Frozen):
    """Inputs, outputs, class labels and provenance of one exported model."""

    format: Literal["mlflowkit/contract-v1"] = Field("mlflowkit/contract-v1", description="The contract format version.")
    layout: Literal["columns", "matrix"] = Field(description="`columns`: one input per feature; `matrix`: one input.")
    inputs: tuple[TensorSpec, ...] = Field(description="The model's inputs, in graph order.")
    outputs: tuple[TensorSpec, ...] = Field(description="The model's outputs, in graph order.")
    features: tuple[str, ...] = Field(description="The feature columns, in training order.")
    classes: tuple[Any, ...] = Field((), description="Class labels, in the order of the probability columns.")
    target: str | None = Field(None, description="The target column the model predicts.")
    label_output: str | None = Field(None, description="The output holding the predicted label.")
    probability_output: str | None = Field(None, description="The output holding class probabilities.")
    opset: dict[str, int] = Field(description="Opset per domain ('' is the default ONNX domain).")
    producer: dict[str, str] = Field(default_factory=dict, description="Versions of the converter and runtime used.")
    parity: dict[str, Any] = Field(default_factory=dict, description="The export's parity check on the held-out rows.")

    @property
    def max_opset(self) -> int:
        """The default-domain opset: what a runtime must support to load the model."""
        return self.opset.get("", 0)


class Parity(_Frozen):
    """How two sets of outputs of the same model on the same rows compare."""

    rows: int = Field(description="Rows compared.")
    max_abs_diff: float = Field(description="Largest absolute difference between probabilities (0 when there are none).")
    disagreeing_rows: int = Field(description="Rows whose predicted label differs.")
    tolerance: float = Field(description="Largest difference allowed.")

    @property
    def ok(self) -> bool:
        """True when every label agrees and every probability is within the tolerance."""
        return self.disagreeing_rows == 0 and self.max_abs_diff <= self.tolerance

    def describe(self) -> str:
        """One line for error messages and logs."""
        return (
            f"max |Δprobability| = {self.max_abs_diff:.3g} (tolerance {self.tolerance:g}), "
            f"{self.disagreeing_rows} of {self.rows} rows disagree on the label"
        )


def feeds(contract: Contract, frame: pd.DataFrame) -> dict[str, np.ndarray[Any, Any]]:
    """The model's inputs for the rows of ``frame`` (which holds at least the feature columns).

    Raises:
        KeyError: a feature column is missing from ``frame``.
    """
    import numpy as np

    missing = [c for c in contract.features if c not in frame.columns]
    if missing:
        raise KeyError(f"columns {missing} are not in the data (the model needs {list(contract.features)})")
    if contract.layout == "matrix":
        spec = contract.inputs[0]
        return {spec.name: frame[list(contract.features)].to_numpy(dtype=np.dtype(spec.dtype))}
    out: dict[str, np.ndarray[Any, Any]] = {}
    for spec in contract.inputs:
        column = frame[spec.column or spec.name]
        if spec.dtype == "string":
            values = column.astype(object).where(column.notna(), MISSING_TEXT).map(str)
            out[spec.name] = values.to_numpy(dtype=object).reshape(-1, 1)
        else:
            out[spec.name] = column.to_numpy(dtype=np.dtype(spec.dtype), na_value=np.nan).reshape(-1, 1)
    return out


def run_onnx(model: bytes, inputs: dict[str, np.ndarray[Any, Any]]) -> dict[str, np.ndarray[Any, Any]]:
    """Run the model in process with ONNX Runtime (CPU); outputs by name."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # warnings about unused initializers are noise here
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, inputs), strict=True))


def compare_outputs(contract: Contract, expected: dict[str, Any], actual: dict[str, Any], *, tolerance: float) -> Parity:
    """Compare labels (exactly) and probabilities (within ``tolerance``) of two runs on the same rows."""
    import numpy as np

    rows = 0
    disagreeing = 0
    max_diff = 0.0
    if contract.label_output:
        want = np.asarray(expected[contract.label_output]).reshape(-1)
        got = np.asarray(actual[contract.label_output]).reshape(-1)
        want, got = _plain_labels(want), _plain_labels(got)
        rows = len(want)
        disagreeing = int(np.sum(want != got)) if len(want) == len(got) else max(len(want), len(got))
        if not contract.classes and want.dtype.kind == "f" and got.dtype.kind == "f" and len(want) == len(got):
            # A regressor's predictions (float32 in ONNX, float64 natively) agree within the tolerance, relatively.
            relative = np.abs(want.astype(np.float64) - got) / np.maximum(1.0, np.abs(want))
            disagreeing = int(np.sum(~(relative <= tolerance)))
            max_diff = float("inf") if np.isnan(relative).any() else float(relative.max(initial=0.0))
    if contract.probability_output:
        want_p = np.asarray(expected[contract.probability_output], dtype=np.float64)
        got_p = np.asarray(actual[contract.probability_output], dtype=np.float64)
        rows = rows or len(want_p)
        if want_p.shape != got_p.shape:
            max_diff = float("inf")
        elif want_p.size:
            diff = np.abs(want_p - got_p)
            max_diff = float("inf") if np.isnan(diff).any() else float(diff.max())
            if disagreeing and want_p.ndim == 2 and want_p.shape[1] >= 2 and len(want) == len(got) == len(want_p):
                # Two classes tied within the tolerance (a forest split 50/50): either label is the model's
                # answer, and the two runtimes may break the tie differently. Such rows do not disagree.
                top = np.sort(want_p, axis=1)
                tied = (top[:, -1] - top[:, -2]) <= tolerance
                disagreeing = int(np.sum((want != got) & ~tied))
    return Parity(rows=rows, max_abs_diff=max_diff, disagreeing_rows=disagreeing, tolerance=tolerance)


def _plain_labels(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Labels as comparable values: bytes (Triton's strings) become str."""
    import numpy as np

    if values.dtype == object or values.dtype.kind == "S":
        return np.array([v.decode() if isinstance(v, bytes) else v for v in values], dtype=object)
    return values


def ort_max_opset() -> int:
    """The highest default-domain opset the installed ONNX Runtime implements."""
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_c

    return int(max(k.version_range[0] for k in ort_c.get_all_opkernel_def() if k.domain == ""))
