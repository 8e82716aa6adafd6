"""Run history for ``mlflowkit runs list|show``: the run records, the registry, and the Prefect API's view.

The records and the registry are always there; Prefect's state, timing and the deployment that
started a run are added when the server in ``PREFECT_API_URL`` answers. When it does not, the
history says so in a note and shows what the store knows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflowkit.store import ModelRegistry

__all__ = ["History", "history"]


@dataclass
class History:
    """Each record with ``version``, ``prefect`` (state, times, deployment) added; ``note`` when Prefect was not asked."""

    records: list[dict[str, Any]]
    note: str = ""
    api_url: str | None = None
    versions: dict[str, str] = field(default_factory=dict)


def _versions(registry: ModelRegistry) -> dict[str, str]:
    """run id -> ``model vN`` for every registered version."""
    found: dict[str, str] = {}
    try:
        for model in registry.models():
            for v in registry.versions(model):
                run_id = (v.lineage or {}).get("run_id")
                if run_id:
                    found[str(run_id)] = f"{v.model} v{v.version}"
    except Exception:  # an unreadable registry leaves the column empty, the records still show
        return found
    return found


def history(records: list[dict[str, Any]], registry: ModelRegistry | None) -> History:
    """Add the registered version and Prefect's view of each run to the records."""
    from mlflowkit.flows.api import ApiUnavailable, PrefectApi
    from mlflowkit.runtime.localapi import running_server
    from mlflowkit.runtime.locations import configured_api_url

    result = History(records=records, versions=_versions(registry) if registry is not None else {})
    for r in records:
        v = r.get("version")
        r["registered"] = f"{v['model']} v{v['version']}" if v else result.versions.get(r["run_id"], "")
    local = None if configured_api_url() else running_server()  # the local server runs use, if it is up
    url = configured_api_url() or (local.url if local else None)
    result.api_url = url
    if not url:
        result.note = "no Prefect server running (PREFECT_API_URL, mlflowkit server start): state and trigger from the records"
        return result
    ids = [r["flow_run_id"] for r in records if r.get("flow_run_id")]
    try:
        with PrefectApi(url) as api:
            runs = api.flow_runs(ids)
            deployments = {
                d["id"]: d
                for d in api.deployments(ids=sorted({f["deployment_id"] for f in runs.values() if f.get("deployment_id")}))
            }
    except ApiUnavailable as exc:
        result.note = f"the Prefect API is not reachable ({exc}): state and trigger are from the run records"
        return result
    for r in records:
        flow_run = runs.get(r.get("flow_run_id") or "")
        if flow_run is None:
            continue
        deployment = deployments.get(flow_run.get("deployment_id") or "")
        r["prefect"] = {
            "state": flow_run.get("state_name") or flow_run.get("state_type"),
            "start": flow_run.get("start_time"),
            "end": flow_run.get("end_time"),
            "seconds": flow_run.get("total_run_time"),
            "tags": flow_run.get("tags") or [],
            "deployment": f"{deployment['flow_name']}/{deployment['name']}" if deployment else None,
            "scheduled": bool(flow_run.get("auto_scheduled")),
            "url": f"{url.rstrip('/').removesuffix('/api')}/runs/flow-run/{flow_run['id']}",
        }
    return result


def trigger(record: dict[str, Any]) -> str:
    """How a run started: ``schedule (flow/deployment)``, ``deployment flow/deployment``, or ``cli/api``."""
    prefect = record.get("prefect") or {}
    local = record.get("trigger") or {}
    deployment = prefect.get("deployment") or local.get("deployment")
    if not deployment:
        return "cli/api"
    scheduled = prefect.get("scheduled") if "scheduled" in prefect else local.get("scheduled")
    return f"schedule ({deployment})" if scheduled else f"deployment {deployment}"
