"""The run record of one run: written as ``running`` when it starts, finished exactly once with its outcome.

The outcome is read from the runner's step records. The verdict and the registered version are found
among the step outputs by their media type (whatever the stages are called), and the HTML report is
written next to the record. Imports no Prefect: the flow publishes its own view of the finished record.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import TypeVar

from pydantic import BaseModel

from mlflowkit.errors import GateFailed, MlflowkitError, StepFailed
from mlflowkit.handoff import (
    VERDICT,
    VERSION,
    RegisteredVersion,
    RunRecord,
    RunResult,
    TrackingOutcome,
    Verdict,
    find_output,
)
from mlflowkit.runtime.runner import Runner

__all__ = ["RunSession"]

log = logging.getLogger("mlflowkit.runtime")
_Doc = TypeVar("_Doc", bound=BaseModel)


class RunSession:
    """One run's record, from ``running`` (written at once, so a crashed run is seen) to its end.

    Args:
        runner: the runner executing the run.
        flow_run_id: the Prefect flow run, when known already (a deployment's run).

    Attributes:
        orchestrated: whether a Prefect flow runs it (the flow sets it; the record says so once finished).
    """

    def __init__(self, runner: Runner, *, flow_run_id: str | None = None) -> None:
        spec, plan = runner.spec, runner.plan
        self.runner, self._started = runner, time.perf_counter()
        self.result: RunResult | None = None
        """The finished run; None until :meth:`finish`."""
        self.orchestrated = flow_run_id is not None
        self.record = RunRecord(
            run_id=runner.run_id,
            spec_name=spec.name,
            spec_path=spec.path,
            spec_hash=spec.spec_hash,
            model=plan.model,
            params=dict(plan.params),
            status="running",
            started_at=datetime.now(UTC).isoformat(),
            orchestrated=self.orchestrated,
            flow_run_id=flow_run_id,
            git_commit=runner.git_commit,
            trigger=runner.trigger,
        )
        self._write(self.record)

    def _write(self, record: RunRecord) -> None:
        self.runner.store.write_json(f"runs/{record.run_id}.json", record.to_json())

    def finish(self, *, flow_run_id: str | None = None) -> RunResult:
        """Close the run: its outcome, verdict, version and report, written once.

        Args:
            flow_run_id: the Prefect flow run, when it became known during the run.

        Raises:
            RuntimeError: the run was finished already.
        """
        if self.result is not None:
            raise RuntimeError(f"run {self.record.run_id} is finished already")
        runner = self.runner
        records = [runner.records[s.name] for s in runner.plan.steps]
        error: MlflowkitError | None = None
        failed = [r for r in records if r.status == "failed"]
        if failed:  # the first failure in plan order is the cause; the steps after it did not run
            error = runner.errors.get(failed[0].name) or StepFailed(failed[0].name, failed[0].error or "failed")
        elif any(r.status == "skipped" for r in records):
            error = MlflowkitError("the flow ended before every step ran")
        record = self.record.model_copy(
            update={
                "status": "failed" if error else "completed",
                "error": str(error) if error else None,
                "steps": tuple(records),
                "verdict": self._verdict(error),
                "version": self._version(),
                "orchestrated": self.orchestrated,
                "flow_run_id": flow_run_id or self.record.flow_run_id,
                "seconds": round(time.perf_counter() - self._started, 3),
                "finished_at": datetime.now(UTC).isoformat(),
            }
        )
        self._write(record)  # the report reads the record from the store
        report = _write_report(runner)
        record = record.model_copy(update={"report": report, "seconds": round(time.perf_counter() - self._started, 3)})
        self._write(record)
        tracked = _track(runner, record)  # after the record and report are written: the outbox sends them
        if tracked is not None:
            record = record.model_copy(update={"tracking": tracked})
            self._write(record)
        path = runner.store.where(record.report) if record.report else None
        self.result = RunResult(**dict(record), exception=error, report_path=path)
        return self.result

    def _verdict(self, error: MlflowkitError | None) -> Verdict | None:
        """The gates' verdict: from a failing gate's error, else from the output that carries one."""
        if isinstance(error, GateFailed) and isinstance(error.verdict, Verdict):
            return error.verdict
        return self._document(VERDICT, Verdict)

    def _version(self) -> RegisteredVersion | None:
        """The model version a register step of this run produced (ran or cached), if any."""
        return self._document(VERSION, RegisteredVersion)

    def _document(self, media_type: str, model: type[_Doc]) -> _Doc | None:
        """The first output of ``media_type`` in plan order, read as ``model``; None when absent or unreadable."""
        for step in self.runner.plan.steps:
            ref = find_output(self.runner.outputs.get(step.name, {}), media_type)
            if ref is None:
                continue
            try:
                return model.model_validate_json(self.runner.store.get_bytes(ref))
            except (OSError, ValueError, MlflowkitError) as exc:  # the record says what it could not read
                log.warning("run %s: cannot read %s (%s: %s)", self.runner.run_id, ref.key, type(exc).__name__, exc)
                return None
        return None


def _track(runner: Runner, record: RunRecord) -> TrackingOutcome | None:
    """Log the run to MLflow when ``tracking:`` (or $MLFLOWKIT_TRACKING_URI) asks; a server that is down never fails it."""
    from mlflowkit.tracking.target import target_for

    try:
        target = target_for(runner.spec, record.model)
    except ValueError as exc:  # a malformed $MLFLOWKIT_TRACKING_URI: said, not fatal
        log.warning("run %s: not logged to MLflow: %s", record.run_id, exc)
        return None
    if target is None:
        return None
    from mlflowkit.tracking.sync import track_run

    outcome = track_run(runner.store, runner.registry, record, target)
    if outcome.state == "queued":
        log.warning("run %s: not logged to MLflow yet: %s (queued; retried on the next run)", record.run_id, outcome.note)
    return outcome


def _write_report(runner: Runner) -> str | None:
    """Write the run's HTML report into the store; a report that cannot be made never fails the run."""
    try:
        from mlflowkit.report import write_report

        return write_report(runner.store, runner.run_id, registry=runner.registry)
    except Exception as exc:
        log.warning("run %s: no HTML report (%s: %s)", runner.run_id, type(exc).__name__, exc)
        return None
