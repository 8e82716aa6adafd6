"""The run record of one run: written as ``running`` when it starts and after each step, finished once with its outcome.

The outcome is read from the runner's step records. The verdict and the registered version are found
among the step outputs by their media type (whatever the stages are called). The HTML report is
written once per set of outputs: a run that changed nothing (every step cached) points its record at
the report of the run that made those outputs. The record names the process that runs it, so a record
still ``running`` whose process is gone reads back as ``killed`` (:func:`as_seen`), with the steps it
finished, their times, and how long it had run when its last step ended. Imports no Prefect:
the flow publishes its own view of the finished record.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel

from mlflowkit.errors import GateFailed, MlflowkitError, StepFailed
from mlflowkit.handoff import (
    VERDICT,
    VERSION,
    RegisteredVersion,
    RunRecord,
    RunResult,
    StepRecord,
    TrackingOutcome,
    Verdict,
    find_output,
)
from mlflowkit.runtime.detached import spawn_detached
from mlflowkit.runtime.runner import Runner

if TYPE_CHECKING:
    from mlflowkit.tracking.target import TrackingTarget

__all__ = ["LIBRARIES", "ReportMode", "RunSession", "as_seen", "loaded_libraries", "process_seconds", "process_start"]

ReportMode = Literal["inline", "background"]
"""How a run writes its report: before :meth:`RunSession.finish` returns, or by a process of its own after it."""

log = logging.getLogger("mlflowkit.runtime")
_Doc = TypeVar("_Doc", bound=BaseModel)


class RunSession:
    """One run's record, from ``running`` (written at once, so a crashed run is seen) to its end.

    Args:
        runner: the runner executing the run.
        flow_run_id: the Prefect flow run, when known already (a deployment's run).
        report: ``background`` hands the report to a process of its own, so that the run ends when its
            last step does (the record names the report's key at once; ``mlflowkit report`` writes it
            if it is asked for before that process is done).

    Attributes:
        orchestrated: whether a Prefect flow runs it (the flow sets it; the record says so once finished).
    """

    def __init__(self, runner: Runner, *, flow_run_id: str | None = None, report: ReportMode = "inline") -> None:
        spec, plan = runner.spec, runner.plan
        self.runner, self._started, self.report_mode = runner, time.perf_counter(), report
        self.result: RunResult | None = None
        """The finished run; None until :meth:`finish`."""
        self.orchestrated = flow_run_id is not None
        self.record = RunRecord(
            run_id=runner.run_id,
            spec_name=spec.name,
            spec_path=spec.path,
            spec_hash=spec.spec_hash,
            model=plan.model,
            description=spec.description,
            intended_use=spec.model_card.intended_use if spec.model_card else "",
            limitations=spec.model_card.limitations if spec.model_card else "",
            params=dict(plan.params),
            status="running",
            started_at=datetime.now(UTC).isoformat(),
            orchestrated=self.orchestrated,
            flow_run_id=flow_run_id,
            git_commit=runner.git_commit,
            trigger=runner.trigger,
            host=socket.gethostname(),
            pid=os.getpid(),
            pid_started=process_start(os.getpid()),
        )
        self._lock = threading.Lock()  # steps end in several threads; one record at a time, never one after finish
        self._closed = False  # no more step-by-step writes
        self._finishing = False  # finish() has begun (in some thread)
        self._write(self.record)
        runner.on_step_finished = self._step_finished

    def flow_run_started(self, flow_run_id: str) -> None:
        """Name the Prefect flow run in the ``running`` record as soon as it exists."""
        with self._lock:
            self.record = self.record.model_copy(update={"flow_run_id": flow_run_id})
            self._write(self.record)

    def _step_finished(self, step: StepRecord) -> None:
        """Write the ``running`` record again with every step ended so far, so a killed run shows how far it got.

        Not fsynced (a power cut may lose the latest copy, never tear it: the write replaces the file); a write
        that fails is logged and the run goes on (its finished record is written, or fails, at the end).
        """
        with self._lock:
            if self._closed:
                return
            ended = [self.runner.records[s.name] for s in self.runner.plan.steps]
            self.record = self.record.model_copy(
                update={
                    "steps": tuple(r for r in ended if r.status != "skipped"),  # "skipped": not reached yet
                    "seconds": round(time.perf_counter() - self._started, 3),
                }
            )
            try:
                self._write(self.record, durable=False)
            except (OSError, MlflowkitError) as exc:
                log.warning("run %s: its record was not updated after step %s (%s)", self.record.run_id, step.name, exc)

    def _write(self, record: RunRecord, *, durable: bool = True) -> None:
        self.runner.store.write_json(f"runs/{record.run_id}.json", record.to_json(), durable=durable)

    def finish(self, *, flow_run_id: str | None = None, error: MlflowkitError | None = None) -> RunResult:
        """Close the run: its outcome, verdict, version and report, written once.

        Args:
            flow_run_id: the Prefect flow run, when it became known during the run.
            error: what ended the run early when no step failed (the local Prefect server died): the run
                fails with it, whatever steps were still to run.

        Raises:
            RuntimeError: the run was finished already, or another thread is finishing it.
        """
        with self._lock:
            if self._finishing:
                raise RuntimeError(f"run {self.record.run_id} is finished already")
            self._finishing = self._closed = True  # from here on, a step that ends does not write the record
        try:
            return self._close(flow_run_id, error)
        except BaseException:
            with self._lock:
                self._finishing = False  # e.g. the store refused the write: the caller may try again
            raise

    def _close(self, flow_run_id: str | None, ended_by: MlflowkitError | None) -> RunResult:
        runner = self.runner
        records = [runner.records[s.name] for s in runner.plan.steps]
        error: MlflowkitError | None = ended_by
        failed = [r for r in records if r.status == "failed"]
        if failed:  # the first failure in plan order is the cause; the steps after it did not run
            error = runner.errors.get(failed[0].name) or StepFailed(failed[0].name, failed[0].error or "failed")
        elif error is None and any(r.status == "skipped" for r in records):
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
                "libraries": loaded_libraries(),
            }
        )
        report = self._report(record)
        record = record.model_copy(update={"report": report, "seconds": round(time.perf_counter() - self._started, 3)})
        self._write(record)
        if report is not None and report.startswith(f"reports/{record.run_id}/"):
            # MLflow gets the report with the run: with tracking on, it is written before it is sent.
            self._write_report(record, now=_tracking_target(runner, record) is not None)
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


    def _report(self, record: RunRecord) -> str | None:
        """The report's key: an earlier run's when every step was cached and it made the same outputs, else this run's."""
        store, run_id = self.runner.store, record.run_id
        index = f"reports/by-outputs/{_outputs_digest(record)}.json"
        if record.steps and all(s.status == "cached" for s in record.steps):
            try:
                earlier = str(store.read_json(index)["report"])
                if store.exists(earlier):
                    return earlier
            except (OSError, ValueError, KeyError, TypeError):
                pass  # no report of these outputs yet (or an unreadable entry): this run writes one
        from mlflowkit.report import report_key

        key = report_key(run_id)
        if record.status == "completed":
            store.write_json(index, {"report": key, "run_id": run_id}, durable=False)  # a lost entry: one more report
        return key

    def _write_report(self, record: RunRecord, *, now: bool = False) -> None:
        """Write the report now, or hand it to a process of its own; a report that cannot be made never fails the run."""
        runner = self.runner
        if self.report_mode == "background" and runner.store.is_local and not now:
            try:
                spawn_detached([sys.executable, "-m", "mlflowkit.report", runner.store.root, record.run_id])
                return
            except OSError as exc:
                log.warning("run %s: report writer did not start (%s); writing it here", record.run_id, exc)
        try:
            from mlflowkit.report import write_report

            write_report(runner.store, runner.run_id, registry=runner.registry)
        except Exception as exc:
            log.warning("run %s: no HTML report (%s: %s)", runner.run_id, type(exc).__name__, exc)


LIBRARIES = {
    "mlflowkit": "mlflowkit",
    "sklearn": "scikit-learn",
    "pandas": "pandas",
    "numpy": "numpy",
    "pyarrow": "pyarrow",
    "onnx": "onnx",
    "onnxruntime": "onnxruntime",
    "skl2onnx": "skl2onnx",
    "skops": "skops",
    "prefect": "prefect",
    "ray": "ray",
    "great_expectations": "great-expectations",
    "fairlearn": "fairlearn",
    "torch": "torch",
    "mlflow": "mlflow",
}
"""Module -> distribution of the libraries a run's lineage names, when the run loaded them."""


def loaded_libraries() -> dict[str, str]:
    """The versions of the libraries this process has imported (what the run used): read from the modules, free."""
    found = {}
    for module, distribution in LIBRARIES.items():
        version = getattr(sys.modules.get(module), "__version__", None)
        if isinstance(version, str):
            found[distribution] = version
    return found


def _tracking_target(runner: Runner, record: RunRecord) -> TrackingTarget | None:
    """Where ``tracking:`` (or $MLFLOWKIT_TRACKING_URI) sends the run, or None; a malformed URI is said, not fatal."""
    from mlflowkit.tracking.target import target_for

    try:
        return target_for(runner.spec, record.model)
    except ValueError as exc:
        log.warning("run %s: not logged to MLflow: %s", record.run_id, exc)
        return None


def _track(runner: Runner, record: RunRecord) -> TrackingOutcome | None:
    """Log the run to MLflow when ``tracking:`` (or $MLFLOWKIT_TRACKING_URI) asks; a server that is down never fails it."""
    target = _tracking_target(runner, record)
    if target is None:
        return None
    from mlflowkit.tracking.sync import track_run

    outcome = track_run(runner.store, runner.registry, record, target)
    if outcome.state == "queued":
        log.warning("run %s: not logged to MLflow yet: %s (queued; retried on the next run)", record.run_id, outcome.note)
    return outcome


def _outputs_digest(record: RunRecord) -> str:
    """What a run made, as one hash: every step's output hashes and the version it registered."""
    made = {s.name: {k: r.sha256 for k, r in sorted(s.outputs.items())} for s in record.steps}
    version = record.version.model_dump(mode="json") if record.version else None
    return hashlib.sha256(json.dumps([made, version, record.status], sort_keys=True).encode()).hexdigest()


def process_start(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (Linux ``/proc``); None elsewhere or when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])  # field 22; the name in parentheses may hold spaces


def process_seconds() -> float | None:
    """How long this process has been running (interpreter start-up included); None without Linux ``/proc``."""
    started = process_start(os.getpid())
    try:
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return None if started is None else max(0.0, uptime - started / os.sysconf("SC_CLK_TCK"))


def _process_gone(record: RunRecord) -> bool:
    """Whether the process that wrote a ``running`` record is gone: on this host, its pid dead or reused."""
    if record.pid is None or record.host != socket.gethostname():
        return False  # another machine's run, or a record from before pids were kept: cannot tell
    try:
        os.kill(record.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, someone else's
    started = process_start(record.pid)
    return record.pid_started is not None and started is not None and started != record.pid_started


def as_seen(raw: dict[str, Any]) -> dict[str, Any]:
    """A run record as read back: ``running`` becomes ``killed`` (with an error saying so) when its process is gone."""
    if raw.get("status") != "running":
        return raw
    try:
        record = RunRecord.model_validate(raw)
    except ValueError:
        return raw
    if not _process_gone(record):
        return raw
    gone = f"process {record.pid} on {record.host} ended before the run did"
    return {**raw, "status": "killed", "error": raw.get("error") or gone}
