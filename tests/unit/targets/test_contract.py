"""The model contract: inputs from a table (missing values, dtypes), output comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlflowkit.targets.contract import Contract, TensorSpec, compare_outputs, feeds

COLUMNS = Contract(
    layout="columns",
    inputs=(
        TensorSpec(name="age", dtype="float32", shape=(-1, 1), column="age"),
        TensorSpec(name="plan", dtype="string", shape=(-1, 1), column="plan"),
    ),
    outputs=(
        TensorSpec(name="label", dtype="string", shape=(-1,)),
        TensorSpec(name="probabilities", dtype="float32", shape=(-1, 2)),
    ),
    features=("age", "plan"),
    classes=("no", "yes"),
    label_output="label",
    probability_output="probabilities",
    opset={"": 21},
)


def test_columns_layout_missing_values_and_types() -> None:
    frame = pd.DataFrame({"age": [30, None, 41], "plan": ["a", None, "b"], "other": [1, 2, 3]})
    got = feeds(COLUMNS, frame)
    assert set(got) == {"age", "plan"}
    assert got["age"].dtype == np.float32 and got["age"].shape == (3, 1) and np.isnan(got["age"][1, 0])
    assert got["plan"].dtype == object and got["plan"].ravel().tolist() == ["a", "", "b"]


def test_matrix_layout_and_a_missing_column() -> None:
    matrix = COLUMNS.model_copy(
        update={"layout": "matrix", "inputs": (TensorSpec(name="input", dtype="float32", shape=(-1, 2)),), "features": ("a", "b")}
    )
    got = feeds(matrix, pd.DataFrame({"b": [1.0, 2.0], "a": [3.0, 4.0]}))
    assert got["input"].tolist() == [[3.0, 1.0], [4.0, 2.0]]  # training order, not the frame's
    with pytest.raises(KeyError, match=r"columns \['b'\] are not in the data"):
        feeds(matrix, pd.DataFrame({"a": [1.0]}))


def test_compare_counts_disagreeing_labels_and_the_largest_difference() -> None:
    expected = {
        "label": np.array(["no", "yes", "no"], dtype=object),
        "probabilities": np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]),
    }
    same = {"label": np.array([[b"no"], [b"yes"], [b"no"]], dtype=object), "probabilities": expected["probabilities"] + 1e-7}
    parity = compare_outputs(COLUMNS, expected, same, tolerance=1e-5)
    assert parity.ok and parity.rows == 3 and parity.max_abs_diff == pytest.approx(1e-7)
    off = {
        "label": np.array(["no", "no", "yes"], dtype=object),
        "probabilities": expected["probabilities"] + [[0, 0], [0.3, -0.3], [0, 0]],
    }
    parity = compare_outputs(COLUMNS, expected, off, tolerance=1e-5)
    assert not parity.ok and parity.disagreeing_rows == 2 and parity.max_abs_diff == pytest.approx(0.3)
    assert parity.describe() == "max |Δprobability| = 0.3 (tolerance 1e-05), 2 of 3 rows disagree on the label"
    nan = {"label": expected["label"], "probabilities": np.full((3, 2), np.nan)}
    assert compare_outputs(COLUMNS, expected, nan, tolerance=1e-5).max_abs_diff == float("inf")


def test_a_tie_between_two_classes_is_not_a_disagreement() -> None:
    # Row 0: a forest split 50/50, broken one way natively and the other way by ONNX Runtime. Row 1: a real miss.
    native = {"label": np.array(["no", "yes"]), "probabilities": np.array([[0.5, 0.5], [0.2, 0.8]])}
    onnx = {"label": np.array(["yes", "no"]), "probabilities": np.array([[0.5000001, 0.4999999], [0.2, 0.8]])}
    parity = compare_outputs(COLUMNS, native, onnx, tolerance=1e-5)
    assert parity.disagreeing_rows == 1 and not parity.ok
    onnx["label"] = np.array(["yes", "yes"])
    assert compare_outputs(COLUMNS, native, onnx, tolerance=1e-5).ok


def test_a_column_whose_name_onnx_renames_still_feeds_its_input() -> None:
    from sklearn.linear_model import LogisticRegression

    from mlflowkit.kinds.export import export_onnx
    from mlflowkit.kinds.train import _pipeline

    frame = pd.DataFrame({"Solar.R": [10.0, 200.0, None, 150.0] * 10, "wind speed": [3.0, 9.0, 5.0, 1.0] * 10, "y": ["a", "b"] * 20})
    x = frame.drop(columns=["y"])
    model = _pipeline(LogisticRegression(), x).fit(x, frame["y"])
    _, contract = export_onnx(model, frame, features=list(x.columns), classes=list(model.classes_), target="y")
    assert [spec.column for spec in contract.inputs] == ["Solar.R", "wind speed"]
    assert contract.parity["ok"]
