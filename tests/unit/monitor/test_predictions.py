"""One rule turns a model's outputs into the profiled prediction column: the reference profile and the drift check share it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlflowkit.monitor.profile import build_profile, predicted_labels, prediction_column, predictions_for
from mlflowkit.spec.load import load_spec_text
from mlflowkit.store import registry_at
from mlflowkit.targets.contract import Contract, TensorSpec


def contract(*, classes: tuple[object, ...], label_dtype: str, probabilities: int | None) -> Contract:
    outputs = [TensorSpec(name="label", dtype=label_dtype, shape=(-1,))]
    if probabilities:
        outputs.append(TensorSpec(name="probabilities", dtype="float32", shape=(-1, probabilities)))
    return Contract(
        layout="columns",
        inputs=(TensorSpec(name="segment", dtype="string", shape=(-1, 1), column="segment"),),
        outputs=tuple(outputs),
        features=("segment",),
        classes=classes,
        label_output="label",
        probability_output="probabilities" if probabilities else None,
        opset={"": 17},
    )


@pytest.mark.parametrize(
    ("classes", "label_dtype", "outputs", "kind", "values"),
    [
        # A binary classifier: the positive class's probability.
        (("no", "yes"), "string", {"label": np.array(["no", "yes"], dtype=object), "probabilities": np.array([[0.8, 0.2], [0.3, 0.7]])}, "probability", [0.2, 0.7]),
        # More classes: the label, as text.
        ((1, 2, 3), "int64", {"label": np.array([3, 1]), "probabilities": np.array([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])}, "label", ["3", "1"]),
        # A regressor: the value.
        ((), "float32", {"label": np.array([[1.5], [2.25]], dtype=np.float32)}, "value", [1.5, 2.25]),
        # Text out but no classes in the contract: still labels (the drift check used to try floats here and fail).
        ((), "string", {"label": np.array([[b"a"], ["b"]], dtype=object)}, "label", ["a", "b"]),
    ],
)
def test_prediction_column(classes: tuple[object, ...], label_dtype: str, outputs: dict, kind: str, values: list) -> None:
    probabilities = len(classes) if "probabilities" in outputs else None
    found_kind, column = prediction_column(contract(classes=classes, label_dtype=label_dtype, probabilities=probabilities), outputs, 2)
    assert found_kind == kind
    assert column.tolist() == pytest.approx(values) if kind != "label" else column.tolist() == values
    assert column.name == "prediction"


def test_predicted_labels_decode_text() -> None:
    labels = predicted_labels(contract(classes=(), label_dtype="string", probabilities=None), {"label": np.array([b"x", "y"], dtype=object)}, 2)
    assert labels == ["x", "y"]


def _echo_model() -> bytes:
    """A real ONNX model whose output is its text input (a model with text out and no classes)."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("segment", TensorProto.STRING, [None, 1])
    y = helper.make_tensor_value_info("label", TensorProto.STRING, [None, 1])
    graph = helper.make_graph([helper.make_node("Identity", ["segment"], ["label"])], "echo", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_the_drift_check_reads_the_prediction_as_the_profile_did(tmp_path: Path) -> None:
    """The champion's live outputs are profiled by the rule its reference profile was built with (no Prefect)."""
    from mlflowkit.runtime.monitor import run_monitor

    frame = pd.DataFrame({"segment": ["a", "b", "c", "a"] * 50})
    model, echo = _echo_model(), contract(classes=(), label_dtype="string", probabilities=None)
    profile = build_profile(frame, ["segment"], predictions=predictions_for(echo, model, frame))
    assert profile["prediction"]["output"] == "label"
    registry = registry_at(str(tmp_path / "store"))
    files = {"model.onnx": model, "contract.json": echo.model_dump_json().encode(), "profile.json": json.dumps(profile).encode()}
    version = registry.register("echo", files, {"metrics": {}})
    registry.set_alias("echo", "champion", version.version, reason="test")
    frame.to_csv(tmp_path / "live.csv", index=False)
    spec = load_spec_text(
        "spec: mlflowkit/v1\nname: echo\nrecipe: tabular-classification\ndata: {source: d.csv, target: y}\nregister: {model: echo}\n",
        spec_dir=tmp_path,
        read_data=False,  # the monitor reads live.csv; the training data is not what this test is about
    )

    result = run_monitor(spec, str(tmp_path / "live.csv"), store=str(tmp_path / "store"), trigger=False, orchestrate=False, log=lambda _: None)

    assert result.report.prediction is not None
    assert result.report.prediction.type == "categorical" and result.report.prediction.status == "ok"
    assert result.report.verdict == "ok", result.report.reasons
