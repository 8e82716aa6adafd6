"""ONNX for a scikit-learn model: skl2onnx, with text imputers made exportable.

Used by the ``onnx`` kind for scikit-learn models and, for the preprocessing, by the torch export.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import onnx

__all__ = ["sklearn_to_onnx"]


def sklearn_to_onnx(model: Any, initial_types: list[tuple[str, Any]], opset: int) -> onnx.ModelProto:
    """A fitted scikit-learn model (or pipeline) as ONNX, with probabilities as a plain tensor (no zipmap).

    Args:
        model: the fitted estimator or pipeline; it is not changed (a copy is converted).
        initial_types: skl2onnx input types, one per raw feature column (or one matrix).
        opset: the default-domain opset.
    """
    import copy

    from skl2onnx import convert_sklearn
    from sklearn.impute import SimpleImputer

    # ONNX string tensors have no NaN: a text imputer fitted on NaN is exported as imputing "".
    # Done on a copy; the fitted statistics are unchanged, so native and ONNX impute the same value.
    exported = copy.deepcopy(model)

    def text_imputers(obj: Any) -> None:
        if isinstance(obj, SimpleImputer) and getattr(obj, "statistics_", None) is not None and obj.statistics_.dtype == object:
            obj.missing_values = ""
        for attr in ("steps", "transformers_"):
            for item in getattr(obj, attr, None) or []:
                text_imputers(item[1])

    text_imputers(exported)
    options = {id(exported): {"zipmap": False}} if hasattr(exported, "predict_proba") else None
    # A fixed graph name (skl2onnx draws a random one): the same model exports the same bytes, so a model
    # fitted again the same way is known as the version it equals (the register kind compares ONNX bytes).
    proto: onnx.ModelProto = convert_sklearn(
        exported, initial_types=initial_types, target_opset=opset, options=options, name="mlflowkit"
    )
    return proto
