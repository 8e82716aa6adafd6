"""The ``register`` kind: a new immutable model version with its lineage, promoted to champion."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from pydantic import Field

from mlflowkit.kinds.base import Inputs, Params, StepContext, StepKind

if TYPE_CHECKING:
    from mlflowkit.store import ModelVersion, Ref

__all__ = ["Register", "register_version"]


class RegisterParams(Params):
    """Under which name the model is kept, and which alias a new version takes."""

    model: str | None = Field(
        None,
        pattern=r"^[a-z0-9][a-z0-9._-]{0,127}$",
        description="The registered model's name (lowercase letters, digits, '.', '_', '-'); defaults to the spec's name.",
    )
    alias: str | None = Field(
        "champion",
        pattern=r"^[a-z][a-z0-9_-]*$",
        description="Alias the new version takes (the old holder of `champion` becomes `previous`); null for none.",
    )


def _plain(value: Any) -> Any:
    """JSON without NaN: a NaN metric is recorded as null (the registry keeps strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def register_version(ctx: StepContext, inputs: Inputs, verdict: dict[str, Any] | None, model: str | None = None) -> ModelVersion:
    """Store the trained model, its metrics and verdict as a new version, with its lineage."""
    model_ref = inputs["model"]
    metrics_ref = inputs["metrics"]
    lineage: dict[str, Any] = {
        "spec_name": ctx.spec_name,
        "spec_hash": ctx.spec_hash,
        "run_id": ctx.run_id,
        "git_commit": ctx.git_commit,
        "data_fingerprint": model_ref.meta.get("data_fingerprint"),
        "estimator": model_ref.meta.get("estimator"),
        "params": model_ref.meta.get("params"),
        "run_params": dict(ctx.params),
        "features": model_ref.meta.get("features"),
        "classes": model_ref.meta.get("classes"),
        "target": model_ref.meta.get("target"),
        "metrics": metrics_ref.meta["metrics"],
        "champion_at_evaluation": metrics_ref.meta.get("champion"),
        "verdict": verdict,
        "artifacts": {"model": model_ref.key, "metrics": metrics_ref.key},
    }
    files = {"model.joblib": ctx.store.get_bytes(model_ref), "metrics.json": ctx.store.get_bytes(metrics_ref)}
    # The deployable form, when an export step ran: the ONNX model and its contract go with the version.
    if "onnx" in inputs and "contract" in inputs:
        files["model.onnx"] = ctx.store.get_bytes(inputs["onnx"])
        files["contract.json"] = ctx.store.get_bytes(inputs["contract"])
        lineage["artifacts"].update(onnx=inputs["onnx"].key, contract=inputs["contract"].key)
        lineage["onnx"] = inputs["onnx"].meta
    # A hyper-parameter search: its outcome in the lineage, every trial in a file of the version.
    if "search" in model_ref.meta:
        lineage["search"] = {k: v for k, v in model_ref.meta["search"].items() if k != "trials"}
    if "trials" in inputs:
        files["trials.json"] = ctx.store.get_bytes(inputs["trials"])
        lineage["artifacts"]["trials"] = inputs["trials"].key
    if verdict is not None:
        files["verdict.json"] = json.dumps(_plain(verdict), sort_keys=True, indent=2).encode()
    return ctx.registry.register(model or ctx.model_name, files, _plain(lineage))


class Register(StepKind):
    """Store a new model version: the fitted model, metrics, gate verdict and lineage.

    Example:

    ```yaml
    register:
      model: churn
      alias: champion
    ```
    """

    Params = RegisterParams
    summary = "register a new model version and promote it"

    def run(self, ctx: StepContext, params: RegisterParams, inputs: Inputs) -> dict[str, Ref]:
        from mlflowkit.store.promotion import CHAMPION, promote

        verdict = json.loads(ctx.store.get_bytes(inputs["verdict"])) if "verdict" in inputs else None
        version = register_version(ctx, inputs, verdict, params.model)
        reason = f"run {ctx.run_id}: gates passed"
        if params.alias == CHAMPION:
            promote(ctx.registry, version.model, version.version, reason=reason)
        elif params.alias:
            ctx.registry.set_alias(version.model, params.alias, version.version, reason=reason)
        ctx.logger.info("registered %s v%s%s", version.model, version.version, f" as {params.alias}" if params.alias else "")
        record = json.dumps({"model": version.model, "version": version.version, "alias": params.alias}).encode()
        return {"version": ctx.store.put_bytes(record, "application/json", {"model": version.model, "version": version.version})}
