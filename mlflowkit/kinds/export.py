"""The ``onnx`` kind: the trained model (scikit-learn, or a ``torch``-kind network) becomes ONNX, checked against it.

The export runs both on the held-out rows; a probability that differs by more than ``tolerance`` or a
single label that differs stops the flow before registration. The model contract (inputs, outputs,
classes, opset) is written next to the model and travels with the registered version.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

from mlflowkit.errors import StepFailed
from mlflowkit.handoff import CONTRACT, ONNX, ModelMeta, meta_of
from mlflowkit.kinds._frames import load_frame
from mlflowkit.kinds._policy import governing_policy
from mlflowkit.kinds.base import Inputs, Params, SectionIssues, StepContext, StepKind
from mlflowkit.kinds.model_files import load_model

if TYPE_CHECKING:
    import onnx

    from mlflowkit.store import Ref
    from mlflowkit.targets.contract import Contract

__all__ = ["ONNX_MEDIA_TYPE", "SKEW_ENV", "OnnxExport", "OnnxParams", "export_onnx"]

ONNX_MEDIA_TYPE = ONNX
SKEW_ENV = "MLFLOWKIT_TEST_ONNX_SKEW"
"""Test seam: a float added to the exported model's probabilities, so that a test can see parity fail."""

MIN_OPSET = 9


class OnnxParams(Params):
    """How the model is exported and how closely the export must match it."""

    opset: Annotated[int, Field(ge=MIN_OPSET)] | Literal["auto"] = Field(
        "auto",
        description=(
            "Default-domain ONNX opset. `auto`: the highest that both skl2onnx and the installed ONNX Runtime support."
            " Set a number when a deploy target's runtime is older (its `max_opset`)."
        ),
    )
    tolerance: float = Field(1e-5, gt=0, le=0.5, description="Largest difference allowed between ONNX and native probabilities.")
    max_rows: int | None = Field(None, ge=1, description="Compare on at most this many held-out rows (default: all of them).")


class OnnxExport(StepKind):
    """Export the trained pipeline (imputers, encoders, scalers, column transformer, estimator) to ONNX.

    Inputs are one ``[batch, 1]`` tensor per feature column, named after the column: float32 for numbers
    (missing: NaN), string for text (missing: ``""``). A model trained without preprocessing takes one
    float32 ``[batch, n_features]`` input named ``input``. Outputs: ``label`` and ``probabilities``.

    Example:

    ```yaml
    export:
      opset: auto          # or a number, e.g. 17 for an older Triton
      tolerance: 1.0e-5    # largest |ONNX - native| probability on the held-out rows
    ```
    """

    Params = OnnxParams
    summary = "export the model to ONNX and check it against the native model"
    keeps_columns = True

    @classmethod
    def prefetch(cls) -> None:
        import onnxruntime  # noqa: F401
        import skl2onnx  # noqa: F401

    @classmethod
    def check(cls, section: Any, spec: Any) -> SectionIssues:
        deploy = spec.section("deploy")
        limits = [(i, t.max_opset) for i, t in enumerate(getattr(deploy, "targets", None) or ()) if getattr(t, "max_opset", None)]
        if not limits:
            return
        lowest_index, lowest = min(limits, key=lambda item: item[1])
        if section.opset == "auto":
            yield (
                ("opset",),
                f"deploy[{lowest_index}] runs ONNX opset {lowest} at most, and opset `auto` may export a newer one",
                f"set export.opset: {lowest}",
            )
        elif section.opset > lowest:
            yield (
                ("opset",),
                f"opset {section.opset} is newer than deploy[{lowest_index}] supports (max_opset {lowest})",
                f"set export.opset: {lowest}",
            )

    def run(self, ctx: StepContext, params: OnnxParams, inputs: Inputs) -> dict[str, Ref]:
        model_ref, test_ref = inputs["model"], inputs["test"]
        model = load_model(ctx.store, model_ref, spec_dir=ctx.spec_dir, policy=governing_policy(ctx), kept=ctx.models)
        test = load_frame(ctx.store, test_ref)
        if params.max_rows is not None:
            test = test.iloc[: params.max_rows]
        meta = meta_of(model_ref, ModelMeta, step=ctx.step, name="model")
        features = list(meta.features) or [str(c) for c in test.columns if c != meta.target]
        skew = float(os.environ.get(SKEW_ENV, "0") or 0)
        onnx_bytes, contract = export_onnx(
            model,
            test,
            features=features,
            classes=list(meta.classes),
            target=meta.target,
            opset=params.opset,
            tolerance=params.tolerance,
            step=ctx.step,
            skew=skew,
        )
        parity = contract.parity
        ctx.report(
            "parity",
            "ONNX parity on the held-out split: " + ("PASS" if parity["ok"] else "FAIL"),
            rows=[
                {
                    "rows": parity["rows"],
                    "max_abs_diff": f"{parity['max_abs_diff']:.3g}",
                    "tolerance": f"{parity['tolerance']:g}",
                    "disagreeing_rows": parity["disagreeing_rows"],
                    "opset": contract.max_opset,
                    "inputs": len(contract.inputs),
                }
            ],
        )
        if not parity["ok"]:
            raise StepFailed(
                ctx.step,
                f"ONNX export does not match the native model on the held-out rows: {parity['describe']}",
            )
        ctx.logger.info("exported ONNX (opset %s, %d inputs): %s", contract.max_opset, len(contract.inputs), parity["describe"])
        small = {
            "opset": contract.opset,
            "layout": contract.layout,
            "parity": {k: v for k, v in parity.items() if k != "describe"},
        }
        body = json.dumps(contract.model_dump(mode="json"), sort_keys=True, indent=2).encode()
        return {
            "onnx": ctx.store.put_bytes(onnx_bytes, ONNX_MEDIA_TYPE, small),
            "contract": ctx.store.put_bytes(body, CONTRACT, small),
        }


def export_onnx(
    model: Any,
    frame: Any,
    *,
    features: list[str],
    classes: list[Any],
    target: str | None,
    opset: int | Literal["auto"] = "auto",
    tolerance: float = 1e-5,
    step: str = "export",
    skew: float = 0.0,
) -> tuple[bytes, Contract]:
    """Convert ``model`` to ONNX and compare it with the native model on the rows of ``frame``.

    Args:
        model: a fitted scikit-learn estimator or Pipeline, or a ``torch``-kind model (``framework == "torch"``).
        frame: held-out rows holding at least ``features``.
        features: the feature columns, in training order.
        classes: the class labels (empty for a regressor).
        target: the target column's name (recorded in the contract).
        opset: default-domain opset, or ``auto`` for the highest both skl2onnx and ONNX Runtime support.
        tolerance: largest probability difference allowed.
        step: the step name for errors.
        skew: test seam; added to the exported probabilities.

    Returns:
        The ONNX bytes and the contract, whose ``parity`` says how the comparison went (the caller
        decides what a failure means).

    Raises:
        StepFailed: the model cannot be converted, or the opset is not supported here.
    """
    import numpy as np
    import onnx
    import onnxruntime
    import skl2onnx

    from mlflowkit.kinds._sklearn_onnx import sklearn_to_onnx
    from mlflowkit.targets.contract import compare_outputs, feeds, ort_max_opset, run_onnx

    # A `torch`-kind model: its preprocessing goes through skl2onnx, its network through torch.onnx.export.
    torch_model = getattr(model, "framework", None) == "torch"
    highest = min(int(skl2onnx.__max_supported_opset__), ort_max_opset())
    torch_note = ""
    if torch_model:
        from mlflowkit.kinds._torch_onnx import max_opset, torch_to_onnx

        highest = min(highest, max_opset())
        torch_note = f", torch.onnx up to {max_opset()}"
    chosen = highest if opset == "auto" else int(opset)
    if chosen > highest:
        raise StepFailed(
            step,
            f"opset {chosen} is not supported here: skl2onnx {skl2onnx.__version__} goes up to "
            f"{skl2onnx.__max_supported_opset__}, onnxruntime {onnxruntime.__version__} up to {ort_max_opset()}{torch_note}",
        )
    x = frame[features]
    layout, initial_types = _initial_types(x, model.preprocess if torch_model else model, step)
    try:
        proto = torch_to_onnx(model, initial_types, chosen) if torch_model else sklearn_to_onnx(model, initial_types, chosen)
    except Exception as exc:  # skl2onnx raises many types (RuntimeError, NotImplementedError, MissingShapeCalculator)
        if torch_model:
            reason = f"torch.onnx.export cannot export {model.model}: {type(exc).__name__}: {str(exc).splitlines()[0]}"
            raise StepFailed(step, f"{reason}; set `export: {{kind: noop}}` to skip the export (no deploy then)") from exc
        name = type(getattr(model, "steps", [[None, model]])[-1][1]).__name__
        reason = f"skl2onnx cannot convert this model ({name}): {type(exc).__name__}: {str(exc).splitlines()[0]}"
        hint = "register a converter with skl2onnx.update_registered_converter, or set `export: {kind: noop}` (no deploy then)"
        raise StepFailed(step, f"{reason}; {hint}") from exc
    if skew:
        _skew_probabilities(proto, skew)
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    contract = _contract(proto, layout=layout, features=features, classes=classes, target=target)
    native: dict[str, Any] = {}
    if contract.label_output:
        native[contract.label_output] = np.asarray(model.predict(x))
    if contract.probability_output and hasattr(model, "predict_proba"):
        native[contract.probability_output] = model.predict_proba(x)
    exported = run_onnx(data, feeds(contract, frame))
    parity = compare_outputs(contract, native, exported, tolerance=tolerance)
    record = {**parity.model_dump(), "ok": parity.ok, "describe": parity.describe()}
    producer = {"skl2onnx": skl2onnx.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}
    if torch_model:
        import torch

        producer["torch"] = torch.__version__
    return data, contract.model_copy(update={"parity": record, "producer": producer})


def _initial_types(x: Any, model: Any, step: str) -> tuple[Literal["columns", "matrix"], list[tuple[str, Any]]]:
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    first = model.steps[0][1] if hasattr(model, "steps") else model
    if type(first).__name__ != "ColumnTransformer":
        return "matrix", [("input", FloatTensorType([None, x.shape[1]]))]
    types: list[tuple[str, Any]] = []
    for column in x.columns:
        dtype = x[column].dtype
        if dtype.kind in "iuf":
            types.append((str(column), FloatTensorType([None, 1])))
        elif dtype.kind in "OSU" or str(dtype) in {"str", "string", "category"}:
            types.append((str(column), StringTensorType([None, 1])))
        else:
            raise StepFailed(
                step, f"column {column!r} has dtype {dtype}, which the ONNX export cannot type (use numbers or text)"
            )
    return "columns", types


_ELEM = {1: "float32", 11: "float64", 7: "int64", 6: "int32", 8: "string"}


def _contract(proto: onnx.ModelProto, *, layout: str, features: list[str], classes: list[Any], target: str | None) -> Contract:
    from mlflowkit.targets.contract import Contract, TensorSpec

    def specs(values: Any, is_input: bool) -> tuple[TensorSpec, ...]:
        out = []
        for i, v in enumerate(values):
            t = v.type.tensor_type
            dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim)
            # One input per feature, in the features' order; skl2onnx renames a column it cannot use as a
            # tensor name (`Solar.R` becomes `Solar_R`), so the column is the feature at the same place.
            column = (v.name if v.name in features else features[i]) if is_input and layout == "columns" else None
            out.append(TensorSpec(name=v.name, dtype=_ELEM[t.elem_type], shape=dims, column=column))
        return tuple(out)

    outputs = specs(proto.graph.output, False)
    names = [o.name for o in outputs]
    return Contract(
        layout=layout,
        inputs=specs(proto.graph.input, True),
        outputs=outputs,
        features=tuple(features),
        classes=tuple(classes),
        target=target,
        label_output="label" if "label" in names else (names[0] if not classes else None),
        probability_output="probabilities" if "probabilities" in names else None,
        opset={(o.domain or ""): int(o.version) for o in proto.opset_import},
    )


def _skew_probabilities(proto: onnx.ModelProto, amount: float) -> None:
    """Test seam: add ``amount`` to the ``probabilities`` output (labels unchanged)."""
    import numpy as np
    from onnx import helper, numpy_helper

    for node in proto.graph.node:
        node.output[:] = ["probabilities_raw" if o == "probabilities" else o for o in node.output]
    proto.graph.initializer.append(numpy_helper.from_array(np.array(amount, dtype=np.float32), "mlflowkit_test_skew"))
    proto.graph.node.append(helper.make_node("Add", ["probabilities_raw", "mlflowkit_test_skew"], ["probabilities"]))
