"""The flows a deployment runs (a spec's training flow, its drift check), their names, and starting them.

A deployment's entrypoint is ``mlflowkit.flows.entry.flow``; the process that runs a flow run (a
``flows serve`` process or a work pool's worker) imports it. Which spec it is comes from
``MLFLOWKIT_SPEC`` (a work pool's job variables set it) or else from the deployment of the flow run
being started (``PREFECT__FLOW_RUN_ID``), whose description names the spec file.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflowkit.spec.models import SpecBase

__all__ = [
    "DEPLOYMENT_NAME",
    "ENTRYPOINT",
    "MONITOR_DEPLOYMENT_NAME",
    "MONITOR_ENTRYPOINT",
    "SPEC_ENV",
    "flow_parameters",
    "monitor_flow_of",
    "spec_flow",
    "start_training_deployment",
]

ENTRYPOINT = "mlflowkit.flows.entry.flow"
MONITOR_ENTRYPOINT = "mlflowkit.flows.entry.monitor_flow"
SPEC_ENV = "MLFLOWKIT_SPEC"
DEPLOYMENT_NAME = "lifecycle"
"""A spec's training deployment is ``<spec name>/lifecycle``."""
MONITOR_DEPLOYMENT_NAME = "monitor"
"""A spec's scheduled drift check is ``<spec name>-monitor/monitor``."""


def flow_parameters(params: dict[str, Any]) -> inspect.Signature:
    """The flow's signature: one keyword parameter per spec param, typed by its default (for the UI's form)."""

    def annotation(value: Any) -> Any:
        return Any if value is None else type(value)

    return inspect.Signature(
        [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v, annotation=annotation(v)) for k, v in params.items()]
    )


def spec_flow(spec_path: str | os.PathLike[str]) -> Any:
    """A Prefect flow named after the spec that loads it with the run's params and runs its steps as tasks.

    Raises:
        SpecError: the spec does not validate.
    """
    from prefect import Flow

    from mlflowkit.policy.governed import load_spec

    path = str(Path(spec_path).resolve())
    spec = load_spec(path)

    def lifecycle(**params: Any) -> Any:
        from prefect.states import Failed

        from mlflowkit.errors import MlflowkitError
        from mlflowkit.plan.compile import compile_spec
        from mlflowkit.policy.governed import load_spec
        from mlflowkit.runtime.flow import expected_failure, run_in_flow

        try:
            loaded = load_spec(path, overrides=params)  # a bad value from the UI fails the run, naming the param
            result = run_in_flow(loaded, compile_spec(loaded))
        except MlflowkitError as exc:  # a refusal (the spec, the policy, the store): a failed run, not a crash
            return expected_failure(exc)
        if not result.ok:
            return Failed(message=result.error or "the run failed")
        return {"run_id": result.run_id, "model": result.model, "version": result.version, "report": result.report}

    lifecycle.__signature__ = flow_parameters(dict(spec.params))  # type: ignore[attr-defined]
    return Flow(
        lifecycle,
        name=spec.name,
        description=spec.description or f"mlflowkit: {spec.name} (recipe {spec.recipe})",
        log_prints=True,
        validate_parameters=False,
        persist_result=False,
    )


def monitor_flow_of(spec_path: str | os.PathLike[str]) -> Any:
    """The Prefect flow ``<spec>-monitor``: one drift check of the spec's ``monitor.data`` (or ``data``), see
    :func:`mlflowkit.runtime.monitor.run_monitor`; retraining it triggers goes through the spec's deployment.

    Raises:
        SpecError: the spec does not validate.
    """
    from prefect import Flow

    from mlflowkit.policy.governed import load_spec

    path = str(Path(spec_path).resolve())
    spec = load_spec(path)

    def monitor(data: str | None = None) -> Any:
        from mlflowkit.policy.governed import load_spec
        from mlflowkit.runtime.monitor import run_monitor

        result = run_monitor(load_spec(path), data, in_flow=True, start_deployment=start_training_deployment)
        return {"check_id": result.check_id, "verdict": result.report.verdict, "trigger": result.trigger}

    return Flow(
        monitor,
        name=f"{spec.name}-monitor",
        description=f"mlflowkit: drift check of {spec.name}'s champion on live data",
        log_prints=True,
        persist_result=False,
    )


def start_training_deployment(spec: SpecBase, record: dict[str, Any], log: Callable[[str], None]) -> bool:
    """Start the spec's training deployment, if the Prefect server in ``PREFECT_API_URL`` has one.

    What a drift check passes to :func:`mlflowkit.runtime.monitor.run_monitor`: the flow run is tagged with
    the check, and ``record`` (the trigger) gets ``via``, ``deployment`` and ``flow_run_id``.

    Returns:
        False when there is no server or no such deployment (the caller retrains in its own process).
    """
    from mlflowkit.flows.api import ApiUnavailable, PrefectApi
    from mlflowkit.runtime.locations import configured_api_url

    url = configured_api_url()
    if not url:
        return False  # the embedded API holds no deployments that outlive a process
    deployment = f"{spec.name}/{DEPLOYMENT_NAME}"
    try:
        with PrefectApi(url) as api:
            api.get(f"/deployments/name/{deployment}")
    except ApiUnavailable as exc:
        log(f"monitor: no deployment {deployment} at {url} ({exc})")
        return False
    from prefect.deployments import run_deployment

    tags = ["mlflowkit", "trigger:drift", f"drift-check:{record['check_id']}"]
    run: Any = run_deployment(name=deployment, parameters={}, timeout=0, tags=tags)
    record.update(via="deployment", deployment=deployment, flow_run_id=str(run.id))
    log(f"monitor: drift; triggered deployment {deployment} (flow run {run.id})")
    return True


def spec_of_flow_run(flow_run_id: str) -> str:
    """The spec file of the deployment that created a flow run (read from the Prefect API).

    Raises:
        AttributeError: the flow run has no deployment, or its deployment names no spec file.
    """
    import re

    from mlflowkit.flows.api import PrefectApi
    from mlflowkit.runtime.locations import configured_api_url

    url = configured_api_url()
    if not url:
        raise AttributeError(f"{ENTRYPOINT}: no PREFECT_API_URL to look up flow run {flow_run_id}")
    with PrefectApi(url, timeout=30) as api:
        flow_run = api.get(f"/flow_runs/{flow_run_id}")
        if not flow_run.get("deployment_id"):
            raise AttributeError(f"{ENTRYPOINT}: flow run {flow_run_id} was not created from a deployment")
        deployment = api.get(f"/deployments/{flow_run['deployment_id']}")
    env = ((deployment.get("job_variables") or {}).get("env") or {}).get(SPEC_ENV)
    # The last such line: registration appends it after the spec's own description, which may hold anything.
    found = re.findall(r"^mlflowkit spec: (.+)$", deployment.get("description") or "", re.MULTILINE)
    if env or found:
        return str(env or found[-1]).strip()
    raise AttributeError(
        f"{ENTRYPOINT}: deployment {deployment.get('name')} names no spec file (register it with mlflowkit flows deploy)"
    )


def __getattr__(name: str) -> Any:
    """``flow``: the flow of the spec in ``MLFLOWKIT_SPEC``, else of the flow run's deployment (what a runner loads)."""
    if name not in {"flow", "monitor_flow"}:
        raise AttributeError(name)
    spec = os.environ.get(SPEC_ENV)
    if not spec and os.environ.get("PREFECT__FLOW_RUN_ID"):
        spec = spec_of_flow_run(os.environ["PREFECT__FLOW_RUN_ID"])
    if not spec:
        raise AttributeError(f"{ENTRYPOINT} needs {SPEC_ENV} (the spec file) or a flow run started from a deployment")
    return spec_flow(spec) if name == "flow" else monitor_flow_of(spec)
