"""The ``register`` kind: a new immutable model version with its lineage, promoted to champion.

It reads the model (:class:`~mlflowkit.handoff.ModelMeta`), its metrics (:class:`~mlflowkit.handoff.MetricsMeta`)
and the verdict (found by its media type), and hands on a :class:`~mlflowkit.handoff.RegisteredVersion`. A
model byte-identical to a registered version is not registered again (`equal_version`, and again under the
registry's lock when the version is committed, so two runs of the same model at once make one version).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from mlflowkit._jsonsafe import finite
from mlflowkit.handoff import VERDICT, VERSION, MetricsMeta, ModelMeta, RegisteredVersion, Verdict, find_output, meta_of
from mlflowkit.kinds.base import Inputs, Params, StepContext, StepKind
from mlflowkit.kinds.model_files import model_file_name

if TYPE_CHECKING:
    from mlflowkit.store import ModelVersion, Ref

__all__ = ["Register", "equal_version", "register_version", "say_equal"]


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
    verdict: Verdict | None,
    model: str | None = None,
    governance: dict[str, Any] | None = None,
) -> tuple[ModelVersion, bool]:
    """Store the trained model, its metrics and verdict as a new version, with its lineage (and its policy's rules).

    Returns:
        The new version and True; or, when a version equal to this model (`equal_version`) was committed
        meanwhile, that version and False: the equality is checked again under the registry's lock.
    """
    model_ref = inputs["model"]
    metrics_ref = inputs["metrics"]
    fitted = meta_of(model_ref, ModelMeta, step=ctx.step, name="model")
    scored = meta_of(metrics_ref, MetricsMeta, step=ctx.step, name="metrics")
    lineage: dict[str, Any] = {
        "spec_name": ctx.spec_name,
        "spec_hash": ctx.spec_hash,
        "run_id": ctx.run_id,
        "git_commit": ctx.git_commit,
        "data_fingerprint": fitted.data_fingerprint.model_dump(mode="json") if fitted.data_fingerprint else None,
        "estimator": fitted.estimator,
        "params": fitted.params,
        "run_params": dict(ctx.params),
        "features": list(fitted.features),
        "classes": list(fitted.classes),
        "target": fitted.target,
        "metrics": scored.metrics,
        "champion_at_evaluation": scored.champion.model_dump(mode="json") if scored.champion else None,
        "verdict": verdict.model_dump(mode="json") if verdict is not None else None,
        "artifacts": {"model": model_ref.key, "metrics": metrics_ref.key},
    }
    files = {model_file_name(model_ref): ctx.store.get_bytes(model_ref), "metrics.json": ctx.store.get_bytes(metrics_ref)}
    # The deployable form, when an export step ran: the ONNX model and its contract go with the version.
    if "onnx" in inputs and "contract" in inputs:
        files["model.onnx"] = ctx.store.get_bytes(inputs["onnx"])
        files["contract.json"] = ctx.store.get_bytes(inputs["contract"])
        lineage["artifacts"].update(onnx=inputs["onnx"].key, contract=inputs["contract"].key)
        lineage["onnx"] = inputs["onnx"].meta
    # A hyper-parameter search: its outcome in the lineage, every trial in a file of the version.
    if fitted.search is not None:
        lineage["search"] = {k: v for k, v in fitted.search.items() if k != "trials"}
    if "trials" in inputs:
        files["trials.json"] = ctx.store.get_bytes(inputs["trials"])
        lineage["artifacts"]["trials"] = inputs["trials"].key
    if ctx.trigger:  # a schedule or a drift check started this run: the version says so
        lineage["trigger"] = ctx.trigger.model_dump(mode="json", exclude_none=True)
    # The monitoring reference, when a profile step ran: live data is compared with it (`mlflowkit monitor`).
    if "profile" in inputs:
        files["profile.json"] = ctx.store.get_bytes(inputs["profile"])
        lineage["artifacts"]["profile"] = inputs["profile"].key
    if verdict is not None:
        files["verdict.json"] = json.dumps(finite(lineage["verdict"]), sort_keys=True, indent=2).encode()
    if governance is not None:
        lineage["governance"] = governance
    return ctx.registry.register_unless_equal(model or ctx.model_name, files, finite(lineage), tuple(_compared(inputs)))


def equal_version(ctx: StepContext, inputs: Inputs, model: str | None = None) -> ModelVersion | None:
    """The newest registered version of the model that this run's model equals byte for byte, or None.

    What is compared is what deploys: the ONNX model and its contract when an export step ran (a
    scikit-learn model fitted again on the same data with the same seed exports the same ONNX bytes,
    while skops writes a different file each time), else the model file (the same bytes when train's
    output came from the cache, as it does when only a gate or the deploy targets changed).
    """
    return ctx.registry.find_equal(model or ctx.model_name, _compared(inputs))


def _compared(inputs: Inputs) -> dict[str, str]:
    """The version's files that make two models equal (see `equal_version`), with this run's SHA-256s."""
    if "onnx" in inputs and "contract" in inputs:
        return {"model.onnx": inputs["onnx"].sha256, "contract.json": inputs["contract"].sha256}
    return {model_file_name(inputs["model"]): inputs["model"].sha256}


def say_equal(ctx: StepContext, version: ModelVersion) -> None:
    """Tell the run (its log, its output and the Prefect UI) that the model equals ``version``: nothing moved."""
    from mlflowkit.store.promotion import CHAMPION

    note = f"model equals {version.model} v{version.version}; not registered again, no alias moved"
    if CHAMPION in version.aliases:
        note += f" (v{version.version} is the champion)"
    else:
        held = ", ".join(version.aliases) or "none"
        note += (
            f" (aliases of v{version.version}: {held}); to make it champion: "
            f"`mlflowkit models promote {version.model} {version.version} --reason ...`"
        )
    ctx.logger.info("%s", note)
    ctx.report("registered", f"{version.model} v{version.version}: not registered again", markdown=note)


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
    keeps_columns = True

    def run(self, ctx: StepContext, params: RegisterParams, inputs: Inputs) -> dict[str, Ref]:
        from mlflowkit.kinds._policy import governing_policy
        from mlflowkit.policy import current_actor, governance, may
        from mlflowkit.store.promotion import CHALLENGER, CHAMPION, promote

        verdict_ref = find_output(inputs, VERDICT)
        verdict = Verdict.model_validate_json(ctx.store.get_bytes(verdict_ref)) if verdict_ref is not None else None
        policy, actor = governing_policy(ctx), current_actor()
        same = equal_version(ctx, inputs, params.model)
        # Checked again under the registry's lock: another run may register the same bytes meanwhile.
        version, new = (
            (same, False) if same is not None else register_version(ctx, inputs, verdict, params.model, governance(policy, actor))
        )
        if not new:
            # Registering the same bytes again would make `previous` equal `champion`: a rollback would change nothing.
            say_equal(ctx, version)
            return _handed_on(ctx, RegisteredVersion(model=version.model, version=version.version, existing=True))
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
        return _handed_on(ctx, RegisteredVersion(model=version.model, version=version.version, alias=alias, held=held))


def _handed_on(ctx: StepContext, document: RegisteredVersion) -> dict[str, Ref]:
    """The step's ``version`` output: ``document`` in the store."""
    meta = {"model": document.model, "version": document.version}
    return {"version": ctx.store.put_bytes(document.model_dump_json().encode(), VERSION, meta)}
