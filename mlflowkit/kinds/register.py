"""The ``register`` kind: a new immutable model version with its lineage, promoted to champion."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from mlflowkit._jsonsafe import finite
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
        description="Alias the new version takes (the old holder of `champion` becomes `previous`); null for none. "
        "`previous`, `challenger` and `rejected` are the registry's own.",
    )

    @field_validator("alias")
    @classmethod
    def _not_reserved(cls, value: str | None) -> str | None:
        if value in {"previous", "challenger", "rejected"}:
            raise ValueError(f"{value!r} is moved by the registry itself (promotion, approval policy, gates); pick another alias")
        return value


def register_version(
    ctx: StepContext,
    inputs: Inputs,
    verdict: dict[str, Any] | None,
    model: str | None = None,
    governance: dict[str, Any] | None = None,
) -> ModelVersion:
    """Store the trained model, its metrics and verdict as a new version, with its lineage (and its policy's rules)."""
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
    if ctx.trigger:  # a schedule or a drift check started this run: the version says so
        lineage["trigger"] = dict(ctx.trigger)
    # The monitoring reference, when a profile step ran: live data is compared with it (`mlflowkit monitor`).
    if "profile" in inputs:
        files["profile.json"] = ctx.store.get_bytes(inputs["profile"])
        lineage["artifacts"]["profile"] = inputs["profile"].key
    if verdict is not None:
        files["verdict.json"] = json.dumps(finite(verdict), sort_keys=True, indent=2).encode()
    if governance is not None:
        lineage["governance"] = governance
    return ctx.registry.register(model or ctx.model_name, files, finite(lineage))


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
        from mlflowkit.kinds._policy import governing_policy
        from mlflowkit.policy import current_actor, governance, may
        from mlflowkit.store.promotion import CHALLENGER, CHAMPION, promote

        verdict = json.loads(ctx.store.get_bytes(inputs["verdict"])) if "verdict" in inputs else None
        policy, actor = governing_policy(ctx), current_actor()
        version = register_version(ctx, inputs, verdict, params.model, governance(policy, actor))
        reason = f"run {ctx.run_id}: gates passed"
        alias, held = params.alias, ""
        if alias == CHAMPION and policy is not None:
            # The operations policy may hold a gate-passed version back from champion; it then waits as challenger.
            if policy.promotion.require_approval:
                where = policy.where(("promotion", "require_approval"))
                held = f"the policy requires an approval before champion (policy rule promotion.require_approval at {where})"
            elif not may(policy, "promote", actor):
                where = policy.where(("promotion", "promoters"))
                held = f"{actor!r} may not promote (policy rule promotion.promoters at {where})"
        if held:
            alias = CHALLENGER
            ctx.registry.set_alias(version.model, CHALLENGER, version.version, reason=f"{reason}; held: {held}")
            ctx.logger.warning(
                "%s v%s kept as %s, not champion: %s; approve and promote it with `mlflowkit models approve %s %s"
                " --reason ...` and `mlflowkit models promote %s %s --spec SPEC --reason ...` (which deploys it)",
                *(version.model, version.version, CHALLENGER, held, version.model, version.version),
                *(version.model, version.version),
            )
        elif alias == CHAMPION:
            promote(ctx.registry, version.model, version.version, reason=reason, actor=actor)
        elif alias:
            ctx.registry.set_alias(version.model, alias, version.version, reason=reason)
        ctx.logger.info("registered %s v%s%s", version.model, version.version, f" as {alias}" if alias else "")
        document: dict[str, Any] = {"model": version.model, "version": version.version, "alias": alias}
        if held:
            document["held"] = held
        record = json.dumps(document).encode()
        return {"version": ctx.store.put_bytes(record, "application/json", {"model": version.model, "version": version.version})}
