"""ONNX for a ``torch``-kind model: skl2onnx for the preprocessing, ``torch.onnx.export`` for the network, one graph.

The merged model takes the same raw-column inputs as a scikit-learn pipeline's export (one ``[batch, 1]``
tensor per feature) and returns ``label`` and ``probabilities``, so the contract, the parity check and the
deploy targets treat both alike.
"""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import onnx

__all__ = ["MIN_TORCH_OPSET", "max_opset", "torch_to_onnx"]

MIN_TORCH_OPSET = 18
"""The oldest opset the torch.export-based exporter writes (it converts down from its own)."""


def max_opset() -> int:
    """The newest default-domain opset ``torch.onnx.export`` writes."""
    from torch.onnx import _constants

    return int(_constants.ONNX_MAX_OPSET)


def torch_to_onnx(model: Any, initial_types: list[tuple[str, Any]], opset: int) -> onnx.ModelProto:
    """One ONNX graph: the fitted preprocessing (skl2onnx), the network and softmax (torch.onnx), then the label.

    Args:
        model: a ``TorchTabularModel``.
        initial_types: skl2onnx input types of the raw feature columns.
        opset: the default-domain opset of the whole graph.

    Raises:
        ValueError: ``opset`` is older than the torch exporter writes.
    """
    import numpy as np
    import onnx
    import torch
    from onnx import compose, helper, numpy_helper

    from mlflowkit.kinds._sklearn_onnx import sklearn_to_onnx

    if opset < MIN_TORCH_OPSET:
        raise ValueError(f"torch.onnx.export writes opset {MIN_TORCH_OPSET} or newer, and opset {opset} was asked for")
    pre = sklearn_to_onnx(model.preprocess, initial_types, opset)
    (pre_out,) = [o.name for o in pre.graph.output]
    batch = torch.export.Dim("batch", min=1)
    example = torch.zeros((2, model.n_inputs), dtype=torch.float32)
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # "torchvision is not installed" notes, one per op it would register
    try:
        with warnings.catch_warnings():
            # torch 2.13's own pytree spec deprecation, raised inside the exporter.
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*", category=FutureWarning)
            program = torch.onnx.export(
                model.network(),
                (example,),
                dynamo=True,
                input_names=["features"],
                output_names=["probabilities"],
                dynamic_shapes=({0: batch},),
                opset_version=opset,
                verbose=False,
            )
    finally:
        quiet.setLevel(level)
    assert program is not None  # the dynamo exporter always returns its program
    net: onnx.ModelProto = program.model_proto
    ir = max(pre.ir_version, net.ir_version)
    pre.ir_version = net.ir_version = ir
    merged = compose.merge_models(pre, net, io_map=[(pre_out, "features")], prefix2="net_")
    # The label: the class whose probability is highest (the first on a tie, as numpy's argmax).
    classes = np.asarray(model.classes_)
    values = classes.astype(object) if classes.dtype.kind in "OUS" else classes.astype(np.int64)
    tensor = (
        helper.make_tensor("classes", onnx.TensorProto.STRING, [len(values)], [str(v).encode() for v in values])  # type: ignore[misc]
        if values.dtype == object
        else numpy_helper.from_array(values, "classes")
    )
    graph = merged.graph
    graph.initializer.append(tensor)
    graph.node.extend(
        [
            helper.make_node("ArgMax", ["net_probabilities"], ["label_index"], axis=1, keepdims=0),
            helper.make_node("Gather", ["classes", "label_index"], ["label"], axis=0),
            helper.make_node("Identity", ["net_probabilities"], ["probabilities"]),
        ]
    )
    label_type = onnx.TensorProto.STRING if values.dtype == object else onnx.TensorProto.INT64
    del graph.output[:]
    graph.output.extend(
        [
            helper.make_tensor_value_info("label", label_type, ["batch"]),
            helper.make_tensor_value_info("probabilities", onnx.TensorProto.FLOAT, ["batch", len(values)]),
        ]
    )
    return merged
