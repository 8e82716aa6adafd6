"""Run a compiled spec: in this process, straight from the cache, or as a Prefect flow; one run record either way.

:func:`run_spec` picks how. A run whose every step is already cached needs no orchestration, so with the
local Prefect server it starts none, and this module imports no Prefect (nor pandas, nor
matplotlib) to decide that; :mod:`mlflowkit.runtime.flow` is loaded only when a flow runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mlflowkit.errors import MlflowkitError
from mlflowkit.handoff import RunResult, StepRecord, Trigger
from mlflowkit.plan.model import Plan
from mlflowkit.runtime.locations import embedded_api, store_root
from mlflowkit.runtime.record import ReportMode, RunSession
from mlflowkit.runtime.runner import Progress, Runner
from mlflowkit.spec.models import SpecBase

__all__ = ["Progress", "RunResult", "StepRecord", "run_spec"]


def run_spec(
    spec: SpecBase,
    plan: Plan,
    *,
    store: str | None = None,
    from_step: str | None = None,
    progress: Progress | None = None,
    orchestrate: bool | None = None,
    trigger: Trigger | Mapping[str, Any] | None = None,
    report: ReportMode = "inline",
    verbose: bool | None = None,
    on_server_gone: Callable[[MlflowkitError], None] | None = None,
) -> RunResult:
    """Run a compiled spec and write its run record.

    Args:
        spec: the loaded spec.
        plan: its plan (see :func:`mlflowkit.compile`).
        store: artifact store root; default from :func:`~mlflowkit.runtime.locations.store_root`.
        from_step: rerun this step and everything downstream of it.
        progress: receives step events.
        orchestrate: force (True) or skip (False) the Prefect flow; by default a fully cached
            run skips it when the API is the embedded one, and everything else runs in Prefect.
        trigger: what started this run (e.g. a drift check); kept in the run record and in the lineage
            of the version it registers.
        report: ``background`` writes the HTML report in a process of its own, so the call returns when the
            last step is done (the CLI does); ``inline`` has it written before the call returns.
        verbose: for a flow, whether Prefect's own log lines reach the terminal (False: only the steps'
            warnings; None: as Prefect is configured). The flow run's logs in Prefect get them either way.
        on_server_gone: for a flow on the local Prefect server, called from another thread when that server
            dies mid-run, once the run's record is finished as failed with the error it is given (the CLI
            ends its process there); without it, the call returns that result when Prefect's client gives up.

    Returns:
        The run's result; ``result.ok`` says whether every step finished.

    Raises:
        SpecError: the spec breaks the operations policy that governs its folder now; nothing ran.
    """
    from mlflowkit.policy import enforce

    policy = enforce(spec)  # again, whatever the spec was loaded with: the policy may have changed, or been skipped
    if trigger is not None and not isinstance(trigger, Trigger):
        trigger = Trigger.model_validate(trigger)
    runner = Runner(
        spec, plan, store_root(spec, store), from_step=from_step, progress=progress, trigger=trigger, policy=policy
    )
    session = RunSession(runner, report=report)
    if orchestrate is False:
        runner.run_inline_safely()
    elif orchestrate is None and embedded_api() and not from_step and runner.all_cached():
        pass  # nothing to do, so no flow run (importing Prefect alone costs a second)
    else:
        from mlflowkit.runtime.flow import run_as_flow

        return run_as_flow(runner, session, verbose=verbose, on_server_gone=on_server_gone)
    return session.finish()
