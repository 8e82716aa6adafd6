"""Run a Plan: one Prefect task per step, outputs stored by reference, finished steps reused.

This is the only module that imports Prefect. Steps are executed by :class:`Runner`, which owns
caching (content-addressed keys), run records and progress; Prefect owns ordering, retries,
timeouts, concurrency and the view in its UI. A run whose every step is already cached needs no
orchestration, so with the embedded (ephemeral) API it does not start one.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import logging
import os
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from mlflowkit.errors import GateFailed, MlflowkitError, StepFailed
from mlflowkit.kinds.base import Inputs, Report, StepContext
from mlflowkit.plan.model import Plan, PlanStep
from mlflowkit.spec.models import SpecBase
from mlflowkit.store import ArtifactStore, Ref, registry_at

if TYPE_CHECKING:
    from mlflowkit.policy.model import Policy

__all__ = ["Progress", "RunResult", "Runner", "StepRecord", "flow_tags", "run_in_flow", "run_spec", "state_dir", "store_root"]

log = logging.getLogger("mlflowkit.runtime")


class Progress(Protocol):
    """Receives step events and reports as they happen (from worker threads)."""

    def step_started(self, step: PlanStep) -> None: ...
    def step_finished(self, record: StepRecord) -> None: ...
    def report(self, report: Report) -> None: ...


class _Silent:
    def step_started(self, step: PlanStep) -> None:
        pass

    def step_finished(self, record: StepRecord) -> None:
        pass

    def report(self, report: Report) -> None:
        pass


@dataclass
class StepRecord:
    """What happened to one step: ``ran``, ``cached``, ``failed`` or ``skipped``."""

    name: str
    kind: str
    status: str = "skipped"
    seconds: float = 0.0
    key: str = ""
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str | None = None


@dataclass
class RunResult:
    """The outcome of a run, as written to ``runs/<run_id>.json`` in the store."""

    run_id: str
    spec_name: str
    spec_path: str
    spec_hash: str
    model: str
    params: dict[str, Any]
    status: str
    started_at: str
    finished_at: str = ""
    seconds: float = 0.0
    orchestrated: bool = False
    flow_run_id: str | None = None
    git_commit: str | None = None
    steps: list[StepRecord] = field(default_factory=list)
    verdict: dict[str, Any] | None = None
    error: str | None = None
    version: dict[str, Any] | None = None
    """The registered version (``{"model": ..., "version": ...}``), when a register step ran or was cached."""
    trigger: dict[str, Any] | None = None
    """For a run a Prefect deployment started: the deployment, and whether a schedule started it."""
    report: str | None = None
    """The store key of the run's HTML report (``reports/<run>/report.html``)."""
    exception: MlflowkitError | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """True when every step ran or was cached."""
        return self.status == "completed"

    def to_json(self) -> dict[str, Any]:
        """The record as plain JSON."""
        data = {k: v for k, v in self.__dict__.items() if k not in {"exception", "steps"}}
        data["steps"] = [s.__dict__ for s in self.steps]
        return data


def state_dir(spec: SpecBase) -> Path:
    """The local state folder next to the spec (``.mlflowkit/``): Prefect home, and the default store."""
    return Path(spec.spec_dir) / ".mlflowkit"


def store_root(spec: SpecBase, override: str | None = None) -> str:
    """Where artifacts and the registry live: ``--store``, else ``MLFLOWKIT_STORE``, else ``spec.store``, else state dir."""
    root = override or os.environ.get("MLFLOWKIT_STORE") or spec.store
    if root is None:
        return str(state_dir(spec))
    if "://" not in root and not os.path.isabs(root):
        return os.path.join(spec.spec_dir, root)
    return root


def _git_commit(folder: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", folder, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


class Runner:
    """Executes the steps of a plan against a store; used inside Prefect tasks or directly.

    Args:
        spec: the loaded spec.
        plan: its compiled plan.
        store: artifact store root (see :func:`store_root`).
        from_step: rerun this step and everything after it, ignoring their cached outputs.
        progress: receives step events.
    """

    def __init__(
        self, spec: SpecBase, plan: Plan, store: str, *, from_step: str | None = None, progress: Progress | None = None
    ) -> None:
        from mlflowkit.plugins import kinds

        self.spec, self.plan = spec, plan
        self.store = ArtifactStore(store)
        self.registry = registry_at(store)
        self.forced = set(plan.downstream(from_step)) if from_step else set()
        self.progress = progress or _Silent()
        self.kinds = {s.name: kinds().get(s.kind)() for s in plan.steps}
        self.records = {s.name: StepRecord(s.name, s.kind, key=s.key) for s in plan.steps}
        self._position = {s.name: i for i, s in enumerate(plan.steps)}
        self.outputs: dict[str, dict[str, Ref]] = {}
        self.run_id = f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
        self.git_commit = _git_commit(spec.spec_dir)
        self._fingerprints: dict[str, str | None] = {}
        self._retryable: set[str] = set()
        self.trigger: dict[str, Any] | None = None
        self.policy: Policy | Literal["find"] | None = "find"  # run_spec/run_in_flow set the one found at the start
        self.errors: dict[str, MlflowkitError] = {}
        self.reports: list[Report] = []
        self._lock = threading.Lock()

    def context(
        self, step: PlanStep, logger: logging.Logger | logging.LoggerAdapter[Any] | None = None, in_flow: bool = False
    ) -> StepContext:
        """The StepContext a step runs with."""
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
            logger=logger or logging.getLogger(f"mlflowkit.step.{step.name}"),  # type: ignore[arg-type]
            publish=lambda report: self._publish(report, in_flow),
        )

    def _publish(self, report: Report, in_flow: bool) -> None:
        """Keep a step's report with the run, hand it to the progress display and, in a flow, to Prefect."""
        key = f"{report.step}-{report.key}"
        self.store.write_json(f"reports/{self.run_id}/{key}.json", report.__dict__)
        with self._lock:
            self.reports.append(report)
        self.progress.report(report)
        if in_flow:
            from prefect.artifacts import create_markdown_artifact, create_table_artifact

            artifact_key = re.sub(r"[^a-z0-9-]", "-", f"{self.plan.name}-{key}".lower())
            if report.rows is not None:
                create_table_artifact(report.rows, key=artifact_key, description=report.title)
            else:
                create_markdown_artifact(report.markdown or "", key=artifact_key, description=report.title)

    def runtime_key(self, step: PlanStep, upstream: Mapping[str, Mapping[str, Ref]]) -> str:
        """The static key plus what the step reads: upstream content hashes and outside inputs."""
        if step.name not in self._fingerprints:
            kind = self.kinds[step.name]
            self._fingerprints[step.name] = kind.fingerprint(self.context(step), kind.Params.model_validate(step.params))
        inputs = {n: {o: r.sha256 for o, r in sorted(upstream.get(n, {}).items())} for n in step.needs}
        return _key(step.key, inputs, self._fingerprints[step.name])

    def cached(self, step: PlanStep, key: str) -> dict[str, Ref] | None:
        """The step's stored outputs for ``key``, if every one still exists in the store."""
        if not step.cache or step.name in self.forced:
            return None
        try:
            entry = self.store.read_json(f"cache/{key}.json")
            refs = {name: Ref.model_validate(raw) for name, raw in entry["outputs"].items()}
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None  # absent, or unreadable after a power cut (entries are not fsynced): a miss
        return refs if all(self.store.exists(r) for r in refs.values()) else None

    def all_cached(self) -> bool:
        """Resolve every step from the cache, in order; True (and outputs filled) if all hit."""
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
        self, name: str, upstream: Mapping[str, Mapping[str, Ref]], logger: Any = None, *, in_flow: bool = False
    ) -> dict[str, Ref]:
        """Run one step (or take it from the cache); record and report what happened."""
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
            params = kind.Params.model_validate(step.params)
            # Plan order: when two upstream steps emit the same name, the later (nearer) one wins.
            order = tuple(sorted(step.needs, key=self._position.__getitem__))
            inputs = Inputs({n: upstream[n] for n in step.needs if n in upstream}, order)
            outputs: dict[str, Ref] = kind.run(self.context(step, logger, in_flow), params, inputs)
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
        status: str,
        seconds: float,
        outputs: dict[str, Ref],
        error: MlflowkitError | None = None,
        *,
        retryable: bool = False,
    ) -> None:
        with self._lock:
            record = self.records[step.name]
            record.status, record.seconds, record.error = status, round(seconds, 4), str(error) if error else None
            record.outputs = {k: r.model_dump(mode="json") for k, r in outputs.items()}
            if status in {"ran", "cached"}:
                self.outputs[step.name] = outputs
            if error is not None:
                self.errors[step.name] = error
            (self._retryable.add if retryable else self._retryable.discard)(step.name)
        self.progress.step_finished(record)

    def run_inline(self) -> None:
        """Execute every step in plan order in this thread, without an orchestrator (for tests and debugging)."""
        for step in self.plan.steps:
            self.execute(step.name, {n: self.outputs[n] for n in step.needs})

    def run_inline_safely(self) -> None:
        """Like :meth:`run_inline`, but a failure stops the run and stays in the records instead of raising."""
        with contextlib.suppress(MlflowkitError):  # recorded by execute(); run_spec reads it from the records
            self.run_inline()


def configured_api_url() -> str | None:
    """The Prefect server the user points at: ``PREFECT_API_URL``, else their active Prefect profile's.

    Read without importing Prefect (it costs about a second), from the same places Prefect reads.
    """
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    import tomllib

    home = Path(os.environ.get("PREFECT_HOME", Path.home() / ".prefect")).expanduser()
    profiles = Path(os.environ.get("PREFECT_PROFILES_PATH", home / "profiles.toml")).expanduser()
    try:
        data = tomllib.loads(profiles.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or data.get("active", "ephemeral")
    url = data.get("profiles", {}).get(active, {}).get("PREFECT_API_URL")
    return str(url) if url else None


def _ephemeral() -> bool:
    return configured_api_url() is None


@contextmanager
def _prefect_settings(state: Path) -> Iterator[None]:
    """Settings for a run: no analytics, no result persistence; for the embedded API, PREFECT_HOME in the state dir."""
    wanted = {
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    }
    ephemeral = _ephemeral()
    if ephemeral:  # a configured server keeps the user's own PREFECT_HOME (and profile)
        wanted["PREFECT_HOME"] = str(state / "prefect")
        # With the store elsewhere (s3://...), nothing else creates the state dir, and the embedded
        # API cannot start without its home: it times out instead of saying so.
        (state / "prefect").mkdir(parents=True, exist_ok=True)
    updates = {k: v for k, v in wanted.items() if k not in os.environ}
    saved = {k: os.environ.get(k) for k in updates}
    os.environ.update(updates)  # before `import prefect`, so its settings see them
    try:
        import prefect.settings

        names = {k: getattr(prefect.settings, k) for k in updates if hasattr(prefect.settings, k)}
        settings: dict[Any, Any] = {names[k]: v for k, v in updates.items() if k in names}
        if ephemeral and "PREFECT_FLOWS_HEARTBEAT_FREQUENCY" not in os.environ:
            # The heartbeat thread sleeps in 1 s steps and is joined at the end, so every local flow
            # would take a whole extra second; nothing watches heartbeats on the embedded API.
            settings[prefect.settings.PREFECT_FLOWS_HEARTBEAT_FREQUENCY] = None
        with prefect.settings.temporary_settings(updates=settings):
            yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def flow_tags(plan: Plan) -> list[str]:
    """Tags of a spec's flow runs: ``mlflowkit``, ``spec:NAME``, ``model:NAME`` (``version:N`` joins after register)."""
    return ["mlflowkit", f"spec:{plan.name}", f"model:{plan.model}"]


def _make_tasks(runner: Runner) -> dict[str, Any]:
    """One Prefect task per step of the runner's plan."""
    from prefect import get_run_logger, task
    from prefect.cache_policies import NO_CACHE
    from prefect.states import Failed

    plan = runner.plan
    tasks = {}

    def should_retry(task: Any, task_run: Any, state: Any) -> bool:
        # Retry only failures that may pass: a step that refused its input would refuse it again.
        return runner.retryable(task.name)

    for step in plan.steps:

        def body(upstream: dict[str, dict[str, Ref]], _name: str = step.name) -> Any:
            try:
                return runner.execute(_name, upstream, get_run_logger(), in_flow=True)
            except MlflowkitError as exc:
                if runner.retryable(_name):
                    raise  # unexpected: Prefect logs the traceback and retries within the step's budget
                return Failed(message=str(exc))  # expected (bad data, a failed gate): the message says it all

        tasks[step.name] = task(
            name=step.name,
            retries=step.retries,
            retry_delay_seconds=step.retry_delay,
            timeout_seconds=step.timeout,
            cache_policy=NO_CACHE,
            persist_result=False,
            retry_condition_fn=should_retry,
            task_run_name=step.name,
        )(body)
    return tasks


def _run_steps(runner: Runner, tasks: dict[str, Any], session: _Session) -> Any:
    """Inside a flow run: submit every step, wait, then close the run (record, report, tags, summary)."""
    from prefect.states import Failed

    plan = runner.plan
    futures: dict[str, Any] = {}
    for step in plan.steps:
        futures[step.name] = tasks[step.name].submit({n: futures[n] for n in step.needs})
    for future in futures.values():
        future.wait()
    session.finish(in_flow=True)
    failed = [runner.records[s.name] for s in plan.steps if runner.records[s.name].status == "failed"]
    if failed:  # the first failure in plan order is the cause; the steps after it did not run
        return Failed(message=failed[0].error or f"step {failed[0].name!r} failed")
    return {"run_id": runner.run_id, "model": plan.model, "version": session.result.version}


def _build_flow(runner: Runner, session: _Session) -> Callable[..., Any]:
    from prefect import Flow

    plan = runner.plan
    tasks = _make_tasks(runner)

    def lifecycle(**params: Any) -> Any:
        return _run_steps(runner, tasks, session)

    # Prefect reads flow parameters from the signature: expose the spec's params with their values.
    lifecycle.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v) for k, v in plan.params.items()]
    )
    return Flow(
        lifecycle,
        name=plan.name,
        description=f"mlflowkit: {plan.name} (recipe {plan.recipe})",
        log_prints=True,
        validate_parameters=False,
        persist_result=False,
    )


def run_spec(
    spec: SpecBase,
    plan: Plan,
    *,
    store: str | None = None,
    from_step: str | None = None,
    progress: Progress | None = None,
    orchestrate: bool | None = None,
    trigger: dict[str, Any] | None = None,
) -> RunResult:
    """Run a compiled spec and write its run record.

    Args:
        spec: the loaded spec.
        plan: its plan (see :func:`mlflowkit.compile`).
        store: artifact store root; default from :func:`store_root`.
        from_step: rerun this step and everything downstream of it.
        progress: receives step events.
        orchestrate: force (True) or skip (False) the Prefect flow; by default a fully cached
            run skips it when the API is the embedded one, and everything else runs in Prefect.
        trigger: what started this run (e.g. a drift check); kept in the run record and in the lineage
            of the version it registers.

    Returns:
        The run's result; ``result.ok`` says whether every step finished.

    Raises:
        SpecError: the spec breaks the operations policy that governs its folder now; nothing ran.
    """
    from mlflowkit.policy import enforce

    policy = enforce(spec)  # again, whatever the spec was loaded with: the policy may have changed, or been skipped
    runner = Runner(spec, plan, store_root(spec, store), from_step=from_step, progress=progress)
    runner.policy = policy  # every step is governed by this one (found once per run)
    runner.trigger = trigger
    session = _Session(runner)
    session.result.trigger = trigger
    if orchestrate is False:
        runner.run_inline_safely()
    elif orchestrate is None and _ephemeral() and not from_step and runner.all_cached():
        pass  # nothing to do, so no orchestrator to start (the embedded API costs seconds to start)
    else:
        session.result.orchestrated = True
        with _prefect_settings(state_dir(spec)):
            from prefect import tags

            flow = _build_flow(runner, session)
            with tags(*flow_tags(plan)):
                state = flow(**plan.params, return_state=True)
            session.result.flow_run_id = str(state.state_details.flow_run_id) if state.state_details else None
    return session.finish()


def run_in_flow(spec: SpecBase, plan: Plan, *, store: str | None = None, progress: Progress | None = None) -> RunResult:
    """Run a compiled spec's steps as tasks of the flow run in progress (a run a Prefect deployment started).

    Args:
        spec: the loaded spec, with the run's params applied.
        plan: its plan.
        store: artifact store root; default from :func:`store_root`.
        progress: receives step events.

    Returns:
        The run's result, with ``trigger`` naming the deployment (and whether a schedule started it).
    """
    from prefect.runtime import deployment, flow_run

    from mlflowkit.policy import enforce

    policy = enforce(spec)  # normally the one the spec was just loaded with, so not checked again
    runner = Runner(spec, plan, store_root(spec, store), progress=progress)
    runner.policy = policy
    session = _Session(runner)
    result = session.result
    result.orchestrated, result.flow_run_id = True, str(flow_run.id) if flow_run.id else None
    if deployment.id:
        result.trigger = {
            "deployment": f"{flow_run.flow_name}/{deployment.name}",
            "deployment_id": str(deployment.id),
            "scheduled": _auto_scheduled(result.flow_run_id),
        }
        drift = [t.split(":", 1)[1] for t in (flow_run.tags or []) if t.startswith("drift-check:")]
        if drift:  # `mlflowkit monitor` started it (see mlflowkit.runtime.monitor)
            result.trigger.update(by="monitor", check_id=drift[0])
        runner.trigger = result.trigger
    _run_steps(runner, _make_tasks(runner), session)
    return session.finish()


def _auto_scheduled(flow_run_id: str | None) -> bool:
    """Whether Prefect's scheduler (not a person or the API) created the flow run."""
    if not flow_run_id:
        return False
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            return bool(client.read_flow_run(uuid.UUID(flow_run_id)).auto_scheduled)
    except Exception:  # the record says "unknown" rather than fail the run over it
        return False


class _Session:
    """The run record of one run, from "running" to its end: status, verdict, version, report, tags."""

    def __init__(self, runner: Runner) -> None:
        spec, plan = runner.spec, runner.plan
        self.runner, self.started, self.closed = runner, time.perf_counter(), False
        self.result = RunResult(
            run_id=runner.run_id,
            spec_name=spec.name,
            spec_path=spec.path,
            spec_hash=spec.spec_hash,
            model=plan.model,
            params=dict(plan.params),
            status="running",
            started_at=datetime.now(UTC).isoformat(),
            git_commit=runner.git_commit,
        )
        self._write()

    def _write(self) -> None:
        self.runner.store.write_json(f"runs/{self.runner.run_id}.json", self.result.to_json())

    def finish(self, *, in_flow: bool = False) -> RunResult:
        """Close the run: its outcome and report, once; in a flow also the version tag and the summary artifact.

        A later call (after the flow returned) only brings the record's timing and flow run id up to date.
        """
        result, runner = self.result, self.runner
        result.seconds = round(time.perf_counter() - self.started, 3)
        if self.closed:
            self._write()
            return result
        self.closed = True
        if in_flow and result.flow_run_id is None:
            from prefect.runtime import flow_run

            result.flow_run_id = str(flow_run.id) if flow_run.id else None
        error: MlflowkitError | None = None
        failed = [r for r in runner.records.values() if r.status == "failed"]
        if failed:  # the first failure in plan order is the cause; the steps after it did not run
            error = runner.errors.get(failed[0].name) or StepFailed(failed[0].name, failed[0].error or "failed")
        elif any(r.status == "skipped" for r in runner.records.values()):
            error = MlflowkitError("the flow ended before every step ran")
        result.steps = list(runner.records.values())
        result.status = "failed" if error else "completed"
        result.error, result.exception = (str(error), error) if error else (None, None)
        if isinstance(error, GateFailed):
            result.verdict = error.verdict
        elif "gates" in runner.outputs and "verdict" in runner.outputs["gates"]:
            result.verdict = json.loads(runner.store.get_bytes(runner.outputs["gates"]["verdict"]))
        result.version = _registered_version(runner)
        result.finished_at = datetime.now(UTC).isoformat()
        self._write()
        result.report = _write_report(runner)
        self._write()
        if in_flow:
            try:
                _publish_summary(runner, result)
            except Exception as exc:  # the UI's view is a courtesy; the run's outcome is already recorded
                log.warning("run %s: no summary artifact (%s: %s)", runner.run_id, type(exc).__name__, exc)
        return result


def _registered_version(runner: Runner) -> dict[str, Any] | None:
    """The model version a register step of this run produced (ran or cached), if any."""
    for step in runner.plan.steps:
        ref = runner.outputs.get(step.name, {}).get("version")
        if step.kind == "register" and ref is not None and "version" in ref.meta:
            return {"model": ref.meta.get("model", runner.plan.model), "version": ref.meta["version"]}
    return None


def _write_report(runner: Runner) -> str | None:
    """Write the run's HTML report into the store; a report that cannot be made never fails the run."""
    try:
        from mlflowkit.report import write_report

        return write_report(runner.store, runner.run_id, registry=runner.registry)
    except Exception as exc:
        log.warning("run %s: no HTML report (%s: %s)", runner.run_id, type(exc).__name__, exc)
        return None


def _publish_summary(runner: Runner, result: RunResult) -> None:
    """In the flow run: tag it with the registered version, and publish a summary artifact.

    The version is known only after register, so its tag is added to the running flow run
    (``spec:`` and ``model:`` tags are set when the run is created).
    """
    from prefect.artifacts import create_markdown_artifact
    from prefect.client.orchestration import get_client

    version = result.version
    if version and result.flow_run_id:
        tag = f"version:{version['version']}"
        try:
            with get_client(sync_client=True) as client:
                flow_run_id = uuid.UUID(result.flow_run_id)
                tags = list(client.read_flow_run(flow_run_id).tags)
                if tag not in tags:
                    client.update_flow_run(flow_run_id, tags=[*tags, tag])
        except Exception as exc:  # a missing tag is a cosmetic loss; the record and the artifact carry it too
            log.warning("could not tag flow run %s with %s: %s", result.flow_run_id, tag, exc)
    lines = [
        f"# {result.spec_name}: {result.status}",
        "",
        "| | |",
        "|---|---|",
        f"| run | `{result.run_id}` |",
        f"| model | {result.model}{' v' + str(version['version']) if version else ' (no version registered)'} |",
        f"| spec | `{result.spec_path}` (sha256 {result.spec_hash[:12]}) |",
        f"| params | `{json.dumps(result.params, sort_keys=True)}` |",
        f"| steps | {', '.join(f'{s.name} {s.status}' for s in result.steps)} |",
        f"| report | `{runner.store.root}/{result.report}` (`mlflowkit report {result.run_id}`) |"
        if result.report
        else "| report | - |",
    ]
    if result.error:
        lines.append(f"| error | {result.error.replace('|', '/')} |")
    key = re.sub(r"[^a-z0-9-]", "-", f"{runner.plan.name}-run-summary".lower())
    create_markdown_artifact("\n".join(lines), key=key, description=f"run {result.run_id}: {result.status}")
