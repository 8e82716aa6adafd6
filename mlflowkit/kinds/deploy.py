"""The ``deploy`` kind: the version register produced goes to every target in the spec's ``deploy:`` list.

Each entry is picked by its ``target:``: a discriminated union of the installed targets (entry-point
group ``mlflowkit.targets``, see :mod:`mlflowkit.targets.base`), so that a target is added without
touching the others. Only the champion deploys, and only in its ONNX form. An empty list does nothing
and imports nothing.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args

from pydantic import BeforeValidator, Field

from mlflowkit.errors import MlflowkitError, RegistryError, StepFailed
from mlflowkit.handoff import DEPLOYMENT, VERSION, RegisteredVersion, find_output
from mlflowkit.kinds.base import Inputs, Params, SectionIssues, StepContext, StepKind
from mlflowkit.plugins import targets as _installed_targets
from mlflowkit.targets.base import DeployTarget, Release

if TYPE_CHECKING:
    from mlflowkit.store import Ref

__all__ = ["Deploy", "DeployParams", "TargetSpec"]



class _NoTarget(DeployTarget):
    """Stands in when no target is installed, so that the union is never empty."""

    target: Literal["none-installed"]


def _known_target(value: Any) -> Any:
    """Name the plug-in when ``target:`` is broken or missing, instead of a bare "tag not expected" error."""
    from mlflowkit.errors import PluginError

    tag = value.get("target") if isinstance(value, dict) else None
    if isinstance(tag, str) and not any((tag,) == get_args(c.model_fields["target"].annotation) for c in _TARGET_CLASSES):
        try:
            _installed_targets().get(tag)
        except PluginError as exc:
            raise ValueError(f"deploy target {tag!r} ({exc.group}) {exc.reason}") from None
    return value


_TARGET_CLASSES: tuple[type[DeployTarget], ...] = tuple(_installed_targets().ok.values()) or (_NoTarget,)
if TYPE_CHECKING:
    TargetSpec = DeployTarget
else:  # a union built from the installed targets; the type checker sees their base
    TargetSpec = Annotated[
        Annotated[Union[_TARGET_CLASSES], Field(discriminator="target")],  # noqa: UP007
        BeforeValidator(_known_target),
    ]


class DeployParams(Params):
    """Where the registered model goes."""

    targets: list[TargetSpec] = Field(
        default_factory=list,
        description="Deploy targets, each chosen by `target:` (see `mlflowkit plugins list`); empty: deploy nothing.",
    )


class Deploy(StepKind):
    """Deploy the version the register step produced (it must be the champion) to every target, in order.

    A target that fails leaves its previous version serving and stops the step; targets after it are
    not touched. The record of what was deployed where is the step's ``deployment`` output.

    Example:

    ```yaml
    deploy:
      - target: triton
        url: http://127.0.0.1:8000
        grpc_url: 127.0.0.1:8001
        model_repository: .mlflowkit/triton/models
        backend: python          # the CPU Triton of `mlflowkit triton up`; `onnxruntime` on a full Triton
        keep_versions: 2
    ```
    """

    Params = DeployParams
    summary = "deploy the champion to its targets (Triton, edge bundles)"
    keeps_columns = True
    list_field = "targets"

    @classmethod
    def check(cls, section: Any, spec: Any) -> SectionIssues:
        seen: dict[tuple[str, str, str], int] = {}
        for i, target in enumerate(section.targets):
            key = (target.target, target.destination, target.model_name or "")
            if key in seen:
                yield (i,), f"deploys the same model to {target.destination} as deploy[{seen[key]}]", "remove one of them"
            seen.setdefault(key, i)
        if section.targets and "onnx" not in spec.stage_kinds.values():
            yield (), "deploy needs the ONNX model, and no step of kind `onnx` runs", "use a recipe with an `export` stage"

    def run(self, ctx: StepContext, params: DeployParams, inputs: Inputs) -> dict[str, Ref]:
        from mlflowkit.store.promotion import CHAMPION

        version_ref = find_output(inputs, VERSION)
        if version_ref is None:
            if not params.targets:
                ctx.logger.info("no deploy targets")
                return {}
            raise StepFailed(ctx.step, "no registered version to deploy: deploy runs after a register step")
        registered = RegisteredVersion.model_validate_json(ctx.store.get_bytes(version_ref))
        model, number = registered.model, registered.version
        if registered.existing:  # the same model as a version registered before: its aliases did not move
            ctx.logger.info("%s v%s was registered before (the model equals it): nothing new to deploy", model, number)
            return {}
        if registered.held:  # the policy keeps it a challenger until it is approved: not an error
            note = (
                f"{model} v{number} is held as challenger: {registered.held}. Once approved "
                f"(`mlflowkit models approve {model} {number}`), `mlflowkit models promote {model} {number} --spec SPEC` "
                "deploys it to this spec's targets and makes it champion."
            )
            ctx.logger.warning(note)
            ctx.report("deployments", f"{model} v{number} not deployed: awaiting approval", markdown=note)
            return {}
        if not params.targets:
            ctx.logger.info("no deploy targets")
            if registered.alias == CHAMPION:
                _ensure_champion(ctx, model, number)  # "deployed" to no target: nothing stands in its way
            return {}
        from mlflowkit.kinds._frames import load_frame
        from mlflowkit.targets.contract import Contract

        try:
            version = ctx.registry.get(model, number)
            # Only a version the register step promoted deploys. It may have lost `champion` since: a
            # deploy that failed gives it back to the version still serving, and a rerun retries.
            if registered.alias != CHAMPION:
                aliases = ", ".join(version.aliases) or "none"
                raise StepFailed(
                    ctx.step, f"{model} v{number} is not the champion (aliases: {aliases}); only promoted versions deploy"
                )
            moved = _taken_away(ctx, model, number)
            if moved is not None:
                raise StepFailed(
                    ctx.step,
                    f"{model} v{number} lost champion to v{moved.version} after it was deployed ({moved.actor}: {moved.reason}); "
                    f"a rerun does not undo that: `mlflowkit models promote {model} {number} --spec SPEC` if you mean it",
                )
            if "model.onnx" not in version.files or "contract.json" not in version.files:
                raise StepFailed(
                    ctx.step, f"{model} v{number} has no model.onnx/contract.json; add an export step before register"
                )
            onnx_bytes = ctx.registry.read_file(model, number, "model.onnx")
            contract = Contract.model_validate_json(ctx.registry.read_file(model, number, "contract.json"))
        except RegistryError as exc:
            raise StepFailed(ctx.step, str(exc)) from exc
        release = Release(
            model=model,
            version=number,
            onnx=onnx_bytes,
            contract=contract,
            smoke=load_frame(ctx.store, inputs["test"]),
            lineage=dict(version.lineage),
        )
        records: list[dict[str, Any]] = []
        for i, target in enumerate(params.targets):
            try:
                record = target.deploy(release, name=target.model_name or model, log=ctx.logger.info)
            except Exception as exc:  # a plug-in target may raise anything: the others are put back all the same
                try:
                    note = _put_back(ctx, model, number, params.targets[:i], records) if records else ""
                except Exception as back:
                    note = f"; putting the earlier targets back failed: {back}"
                note += _unpromote(ctx, model, number, reason=f"deploy[{i}] to {target.target} failed")
                cause = str(exc) if isinstance(exc, MlflowkitError) else f"{type(exc).__name__}: {exc}"
                raise StepFailed(ctx.step, f"deploy[{i}] ({target.target}): {cause}{note}") from exc
            records.append(record)
        _ensure_champion(ctx, model, number)
        from mlflowkit.release import write_record

        # What serves where, kept with the registry: `mlflowkit models rollback` redeploys to these targets.
        write_record(ctx.registry, model, number, targets=params.targets, records=records, cause=f"run {ctx.run_id}")
        ctx.report(
            "deployments",
            f"deployed {model} v{number}",
            rows=[
                {
                    "target": r["target"],
                    "destination": r["destination"],
                    "model": r["model"],
                    "version": r["version"],
                    "previous": r["previous"] or "",
                    "smoke": ", ".join(f"{p}: {c['rows']} rows" for p, c in r["smoke"].items()),
                    "removed": ", ".join(map(str, r["removed_versions"])),
                    "seconds": r["seconds"],
                }
                for r in records
            ],
        )
        body = json.dumps({"model": model, "version": number, "targets": records}, sort_keys=True, indent=2, default=str)
        return {"deployment": ctx.store.put_bytes(body.encode(), DEPLOYMENT, {"model": model, "version": number})}


def _taken_away(ctx: StepContext, model: str, number: int) -> Any:
    """The alias move that took ``champion`` from ``number`` since it was deployed, unless a failed deploy did it.

    A deploy that failed gives champion back (see :func:`_unpromote`) and its rerun retries; any other
    move (a rollback, a promotion of another version) is someone's decision that a rerun must not undo.
    """
    from mlflowkit.store.promotion import CHAMPION

    if ctx.registry.aliases(model).get(CHAMPION) == number:
        return None
    away = [e for e in ctx.registry.history(model) if e.alias == CHAMPION and e.previous == number and e.version != number]
    if not away or _FAILED_DEPLOY in away[-1].reason:
        return None
    return away[-1]


def _put_back(
    ctx: StepContext, model: str, number: int, targets: list[DeployTarget], records: list[dict[str, Any]]
) -> str:
    """A later target failed: the earlier ones, which took the new version, get the one that served before.

    All or nothing across targets, as for a rollback (:mod:`mlflowkit.release`): what serves stays the
    same everywhere, and it is what the registry's champion will say once :func:`_unpromote` ran.
    """
    from mlflowkit.release import release_of
    from mlflowkit.store.promotion import CHAMPION, PREVIOUS

    aliases = ctx.registry.aliases(model)
    # The version that serves elsewhere: the champion, unless this deploy's version holds it (first try).
    before = aliases.get(CHAMPION) if aliases.get(CHAMPION) not in (None, number) else aliases.get(PREVIOUS)
    if before is None:
        return f"; {len(records)} earlier target(s) serve the new version (no earlier version to put back)"
    older = release_of(ctx.registry, model, ctx.registry.get(model, before))
    notes = []
    for target, record in zip(targets, records, strict=True):
        try:
            target.deploy(older, name=record.get("model") or target.model_name or model, log=ctx.logger.info)
            notes.append(f"{target.target} at {target.destination} serves v{before} again")
        except Exception as exc:
            notes.append(f"{target.target} at {target.destination}: putting v{before} back failed: {exc}")
    return "; " + "; ".join(notes)


_FAILED_DEPLOY = "(failed deploy)"


def _unpromote(ctx: StepContext, model: str, number: int, *, reason: str) -> str:
    """Give ``champion`` back to the version still serving, since the new one reached no target.

    Register promoted the new version before deploy ran; without this, the registry's champion would
    name a version that serves nowhere, and the next run would compare against it.
    """
    from mlflowkit.store.promotion import CHAMPION, PREVIOUS, rollback

    aliases = ctx.registry.aliases(model)
    if aliases.get(CHAMPION) != number:
        return ""
    reason = f"{reason} {_FAILED_DEPLOY}"
    if PREVIOUS in aliases:
        try:
            back = rollback(ctx.registry, model, reason=reason)
        except MlflowkitError as exc:  # e.g. the policy does not let this run's user roll back
            return f"; champion stays v{number}, which does not serve everywhere: giving it back failed: {exc}"
        return f"; champion is v{back.version} again, which still serves"
    ctx.registry.remove_alias(model, CHAMPION, reason=reason)
    return f"; v{number} is no longer champion (it is not serving anywhere)"


def _ensure_champion(ctx: StepContext, model: str, number: int) -> None:
    """After a successful deploy, the deployed version holds ``champion`` (again, on a retry)."""
    from mlflowkit.store.promotion import CHAMPION, promote

    if CHAMPION not in ctx.registry.get(model, number).aliases:  # a rerun after a failed deploy
        promote(ctx.registry, model, number, reason=f"run {ctx.run_id}: deployed to every target")
