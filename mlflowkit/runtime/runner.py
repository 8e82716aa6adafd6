"""Execute the steps of a Plan in this process: content-addressed caching, step records, progress; no Prefect.

The :class:`Runner` is the one place a step is run. The Prefect flow (:mod:`mlflowkit.runtime.flow`)
calls :meth:`Runner.execute` from its tasks; tests, debugging and a fully cached rerun call it
directly. It imports neither Prefect nor any library a kind needs (kinds import theirs when they run).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from mlflowkit.errors import MlflowkitError, StepFailed
from mlflowkit.fmt import number
from mlflowkit.handoff import Ref, StepRecord, StepStatus, Trigger
from mlflowkit.kinds.base import Advance, Inputs, Report, StepContext
from mlflowkit.kinds.memo import ModelMemo
from mlflowkit.plan.model import Plan, PlanStep
from mlflowkit.runtime.prefetch import Prefetch
from mlflowkit.spec.models import SpecBase
from mlflowkit.store import ArtifactStore, registry_at

if TYPE_CHECKING:
    from mlflowkit.policy.model import Policy

__all__ = ["Progress", "ReportSink", "Runner", "new_run_id", "progress_line"]

log = logging.getLogger("mlflowkit.runtime")

ReportSink = Callable[[Report], None]
"""Receives a step's report as it is published (the flow shows it in the Prefect UI)."""


class Progress:
    """Receives what a run is doing as it happens; override what you show (every method does nothing here).

    Events come from the thread that runs a step, and steps may run side by side: implementations must be
    safe to call from several threads.
    """

    def starting(self, what: str) -> None:
        """The run's start-up, before its first step: what it is doing now (``starting the local Prefect server``)."""

    def step_started(self, step: PlanStep) -> None:
        """A step began (it may still be taken from the cache)."""

    def step_progress(self, advance: Advance) -> None:
        """A long step got further: one more trial, one more epoch (see :func:`progress_line`)."""

    def step_finished(self, record: StepRecord) -> None:
        """A step ran, was taken from the cache, or failed."""

    def report(self, report: Report) -> None:
        """A step published a table or a text for people."""


def progress_line(advance: Advance) -> str:
    """An advance in words, its numbers in the one format (:func:`mlflowkit.fmt.number`).

    ``trials 3/6: roc_auc 0.8123 (trial 5: max_depth=8); best so far 0.82 (trial 1)``;
    ``epochs 2/20: train loss 0.5123, validation loss 0.4987; best so far 0.4987 (epoch 2)``.
    """

    said = ", ".join(f"{name} {'-' if value is None else number(value)}" for name, value in advance.values)
    if advance.note:
        said = f"{said} ({advance.note})" if said else advance.note
    line = f"{advance.unit} {advance.done}/{advance.total}" + (f": {said}" if said else "")
    if advance.best is not None:
        line += f"; best so far {number(advance.best)}" + (f" ({advance.best_note})" if advance.best_note else "")
    return line


def new_run_id() -> str:
    """A run id: the UTC time, sortable, and a random suffix (``20260101-120000-ab12cd``)."""
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def _git_commit(folder: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", folder, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


class Runner:
    """Executes the steps of a plan against a store, one at a time or from concurrent tasks.

    Args:
        spec: the loaded spec.
        plan: its compiled plan.
        store: artifact store root (see :func:`mlflowkit.runtime.locations.store_root`).
        from_step: rerun this step and everything after it, ignoring their cached outputs.
        progress: receives step events.
        trigger: what started the run, when a person did not (steps see it; register keeps it in the lineage).
        policy: the operations policy the run was checked against when it started (None: none governs), so
            that every step is governed by the same one; ``"find"``: each step looks it up when it needs it.

    Attributes:
        records: the :class:`~mlflowkit.handoff.StepRecord` of each step, by name, in plan order.
        outputs: the outputs of each step that ran or was cached, by name.
        errors: the error of each step that failed, by name.
    """

    def __init__(
        self,
        spec: SpecBase,
        plan: Plan,
        store: str,
        *,
        from_step: str | None = None,
        progress: Progress | None = None,
        trigger: Trigger | None = None,
        policy: Policy | Literal["find"] | None = "find",
    ) -> None:
        from mlflowkit.plugins import kinds
        from mlflowkit.policy import policy_of, registry_trust

        self.spec, self.plan, self.trigger, self.policy = spec, plan, trigger, policy
        self.store = ArtifactStore(store)
        # The registry's trusted keys: the environment's, plus those of the policy governing the run.
        self.registry = registry_at(store, trust=registry_trust(policy_of(spec) if isinstance(policy, str) else policy))
        self._damage_told: set[str] = set()  # damaged cache outputs already logged (the cache is consulted twice)
        self.forced = set(plan.downstream(from_step)) if from_step else set()
        self.progress: Progress = progress or Progress()
        self.kinds = {s.name: kinds().get(s.kind)() for s in plan.steps}
        self.records = {s.name: StepRecord(name=s.name, kind=s.kind, key=s.key) for s in plan.steps}
        self._position = {s.name: i for i, s in enumerate(plan.steps)}
        self.outputs: dict[str, dict[str, Ref]] = {}
        self.run_id = new_run_id()
        self.git_commit = _git_commit(spec.spec_dir)
        self._fingerprints: dict[str, str | None] = {}
        self._retryable: set[str] = set()
        self.errors: dict[str, MlflowkitError] = {}
        self.reports: list[Report] = []
        self._lock = threading.Lock()
        self.prefetch = Prefetch(list(self.kinds.values()))
        """Imports the steps' heavy libraries in the background once :meth:`Prefetch.start` is called (a flow does)."""
        self.models = ModelMemo()
        """The models this run's steps stored, in memory while a step still to finish reads them."""
        self.on_step_finished: Callable[[StepRecord], None] | None = None
        """Told each step's record as soon as the step ends (the run's record is written again then)."""

    def context(
        self,
        step: PlanStep,
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
        on_report: ReportSink | None = None,
    ) -> StepContext:
        """The StepContext a step runs with; ``on_report`` also receives what it publishes."""
        step_logger = logger or logging.getLogger(f"mlflowkit.step.{step.name}")
        return StepContext(
            step=step.name,
            run_id=self.run_id,
            spec_name=self.spec.name,
            spec_hash=self.spec.spec_hash,
            spec_dir=self.spec.spec_dir,
            store=self.store,
            registry=self.registry,
            model_name=self.plan.model,
            git_commit=self.git_commit,
            params=dict(self.spec.params),
            trigger=self.trigger,
            policy=self.policy,
            models=self.models,
            logger=step_logger,  # type: ignore[arg-type]
            publish=lambda report: self._publish(report, on_report),
            on_advance=lambda advance: self._advance(advance, step_logger),
        )

    def _advance(self, advance: Advance, logger: logging.Logger | logging.LoggerAdapter[Any]) -> None:
        """Show how far a step has got, and log it at INFO (inside a flow, that is the task run's Prefect log)."""
        self.progress.step_progress(advance)
        logger.info("%s", progress_line(advance))

    def _publish(self, report: Report, on_report: ReportSink | None) -> None:
        """Keep a step's report with the run and hand it to the progress display (and to ``on_report``)."""
        self.store.write_json(f"reports/{self.run_id}/{report.step}-{report.key}.json", report.__dict__)
        with self._lock:
            self.reports.append(report)
        self.progress.report(report)
        if on_report is not None:
            on_report(report)

    def runtime_key(self, step: PlanStep, upstream: Mapping[str, Mapping[str, Ref]]) -> str:
        """The static key plus what the step reads: upstream content hashes and outside inputs."""
        if step.name not in self._fingerprints:
            kind = self.kinds[step.name]
            self._fingerprints[step.name] = kind.fingerprint(self.context(step), kind.Params.model_validate(step.params))
        inputs = {n: {o: r.sha256 for o, r in sorted(upstream.get(n, {}).items())} for n in step.needs}
        kind = self.kinds[step.name]
        extra = kind.input_fingerprint(self.context(step), kind.Params.model_validate(step.params), self._inputs(step, upstream))
        return _key(step.key, inputs, self._fingerprints[step.name], *([extra] if extra is not None else []))

    def _inputs(self, step: PlanStep, upstream: Mapping[str, Mapping[str, Ref]]) -> Inputs:
        # Plan order: when two upstream steps emit the same name, the later (nearer) one wins.
        order = tuple(sorted(step.needs, key=self._position.__getitem__))
        return Inputs({n: upstream[n] for n in step.needs if n in upstream}, order)

    def cached(self, step: PlanStep, key: str) -> dict[str, Ref] | None:
        """The step's stored outputs for ``key``, if every one is still there and hashes as its ref says.

        A damaged or replaced output is a miss that is logged: the step runs again and rewrites it.
        """
        if not step.cache or step.name in self.forced:
            return None
        try:
            entry = self.store.read_json(f"cache/{key}.json")
            refs = {name: Ref.model_validate(raw) for name, raw in entry["outputs"].items()}
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None  # absent, or unreadable after a power cut (entries are not fsynced): a miss
        hit = True
        for name, ref in refs.items():
            problem = self.store.problem(ref)
            if problem is not None and problem != "missing" and ref.key not in self._damage_told:
                self._damage_told.add(ref.key)
                log.warning(
                    "step %s: its cached output %r (%s) is damaged or was replaced (expected sha256 %s, found %s); "
                    "running the step again",
                    step.name, name, ref.key, ref.sha256, problem,
                )  # fmt: skip
            hit = hit and problem is None
        return refs if hit else None

    def all_cached(self) -> bool:
        """Resolve every step from the cache, in order; True (and every step recorded as cached) if all hit."""
        self.progress.starting("checking the cache")
        found: dict[str, dict[str, Ref]] = {}
        for step in self.plan.steps:
            try:
                hit = self.cached(step, self.runtime_key(step, found))
            except StepFailed:
                return False  # e.g. the data source is missing: let the real run report it
            if hit is None:
                return False
            found[step.name] = hit
        for step in self.plan.steps:
            self._finish(step, "cached", 0.0, found[step.name])
        return True

    def execute(
        self,
        name: str,
        upstream: Mapping[str, Mapping[str, Ref]],
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
        *,
        on_report: ReportSink | None = None,
    ) -> dict[str, Ref]:
        """Run one step (or take it from the cache); record and report what happened.

        Raises:
            MlflowkitError: the step failed; :meth:`retryable` says whether a retry may help.
        """
        step = self.plan.step(name)
        self.progress.step_started(step)
        start = time.perf_counter()
        try:
            key = self.runtime_key(step, upstream)
            hit = self.cached(step, key)
            if hit is not None:
                self._finish(step, "cached", time.perf_counter() - start, hit)
                return hit
            kind = self.kinds[name]
            self.prefetch.wait_for(kind)  # never import a library while the prefetch thread imports it
            params = kind.Params.model_validate(step.params)
            inputs = self._inputs(step, upstream)
            outputs: dict[str, Ref] = kind.run(self.context(step, logger, on_report), params, inputs)
            if step.cache:
                self.store.write_json(
                    f"cache/{key}.json",
                    {
                        "step": name,
                        "kind": step.kind,
                        "run_id": self.run_id,
                        "outputs": {k: r.model_dump(mode="json") for k, r in outputs.items()},
                    },
                    durable=False,  # a lost cache entry is only a miss
                )
        except MlflowkitError as exc:  # an expected failure: the kind said what is wrong
            self._finish(step, "failed", time.perf_counter() - start, {}, exc)
            raise
        except Exception as exc:  # anything else may be passing (a network blip): worth a retry
            error = StepFailed(name, f"{type(exc).__name__}: {exc}")
            self._finish(step, "failed", time.perf_counter() - start, {}, error, retryable=True)
            raise error from exc
        self._finish(step, "ran", time.perf_counter() - start, outputs)
        return outputs

    def retryable(self, name: str) -> bool:
        """Whether the step's last failure may pass on a retry (an unexpected error, not a refusal)."""
        return name in self._retryable

    def _finish(
        self,
        step: PlanStep,
        status: StepStatus,
        seconds: float,
        outputs: dict[str, Ref],
        error: MlflowkitError | None = None,
        *,
        retryable: bool = False,
    ) -> None:
        record = StepRecord(
            name=step.name,
            kind=step.kind,
            status=status,
            seconds=round(seconds, 4),
            key=step.key,
            outputs=outputs,
            error=str(error) if error else None,
        )
        with self._lock:
            self.records[step.name] = record
            if status in {"ran", "cached"}:
                self.outputs[step.name] = outputs
            if error is not None:
                self.errors[step.name] = error
            (self._retryable.add if retryable else self._retryable.discard)(step.name)
            if status in {"ran", "cached"}:  # a failed step may be retried: it may still read what it needs
                self.models.keep_only(self._still_read())
        if self.on_step_finished is not None:
            self.on_step_finished(record)
        self.progress.step_finished(record)

    def _still_read(self) -> set[str]:
        """The hashes of the outputs that a step which has not finished reads (call with the lock held)."""
        done = {n for n, r in self.records.items() if r.status in {"ran", "cached"}}
        return {
            ref.sha256
            for step in self.plan.steps
            if step.name not in done
            for need in step.needs
            for ref in self.outputs.get(need, {}).values()
        }

    def run_inline(self) -> None:
        """Execute every step in plan order in this thread; the first failure raises (and is recorded)."""
        for step in self.plan.steps:
            self.execute(step.name, {n: self.outputs[n] for n in step.needs})

    def run_inline_safely(self) -> None:
        """Like :meth:`run_inline`, but a failure stops the run and stays in the records instead of raising."""
        with contextlib.suppress(MlflowkitError):  # recorded by execute(); the session reads it from the records
            self.run_inline()
