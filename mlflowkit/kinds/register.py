"""The ``register`` kind: a new immutable model version with its lineage, promoted to champion."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from pydantic import Field

from mlflowkit.errors import RegistryError
from mlflowkit.kinds.base import Inputs, Params, StepContext, StepKind

if TYPE_CHECKING:
    from mlflowkit.store import Ref

__all__ = ["Register"]


class RegisterParams(Params):
    """Under which name the model is kept, and which alias a new version takes."""

    model: str | None = Field(
        None, pattern=r"^[a-z0-9][a-z0-9._-]{0,127}$", description="The registered model's name; defaults to the spec's name."
    )
    alias: str | None = Field(
        "champion",
        pattern=r"^[a-z][a-z0-9_-]*$",
        description="Alias the new version takes (the old holder of `champion` becomes `previous`); null for none.",
    )


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
        model_ref = inputs["model"]
        metrics = inputs["metrics"].meta["metrics"]
        verdict = json.loads(ctx.store.get_bytes(inputs["verdict"])) if "verdict" in inputs else None
        name = params.model or ctx.model_name
        lineage = {
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
            "metrics": metrics,
            "verdict": verdict,
            "artifacts": {"model": model_ref.key, "metrics": inputs["metrics"].key},
        }
        files = {
            "model.joblib": ctx.store.get_bytes(model_ref),
            "metrics.json": ctx.store.get_bytes(inputs["metrics"]),
        }
        if verdict is not None:
            files["verdict.json"] = ctx.store.get_bytes(inputs["verdict"])
        version = ctx.registry.register(name, files, lineage)
        if params.alias:
            reason = f"run {ctx.run_id}: gates passed"
            if params.alias == "champion":
                try:
                    old = ctx.registry.get(name, "champion").version
                    ctx.registry.set_alias(name, "previous", old, reason=f"run {ctx.run_id}: replaced by v{version.version}")
                except RegistryError:
                    pass  # first version: nothing to keep as previous
            ctx.registry.set_alias(name, params.alias, version.version, reason=reason)
        ctx.logger.info("registered %s v%s%s", name, version.version, f" as {params.alias}" if params.alias else "")
        record = json.dumps({"model": name, "version": version.version, "alias": params.alias}).encode()
        return {"version": ctx.store.put_bytes(record, "application/json", {"model": name, "version": version.version})}
