"""The Prefect side of a run: settings, one task per step, the flow, and what the Prefect UI shows of a run.

The only module of the runtime that imports Prefect (inside its functions, so that importing it costs
nothing). Steps still run through :class:`~mlflowkit.runtime.runner.Runner`, which owns caching and
records; Prefect owns ordering, retries, timeouts, concurrency and the view in its UI. The run record
is finished once, inside the flow run, and then tagged and summarised there.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from mlflowkit.errors import MlflowkitError
from mlflowkit.handoff import RunResult, Trigger
from mlflowkit.kinds.base import Report
from mlflowkit.plan.model import Plan
from mlflowkit.run_summary import outcome_lines, summary_markdown
from mlflowkit.runtime.locations import embedded_api, mlflowkit_home, store_root
from mlflowkit.runtime.record import RunSession
from mlflowkit.runtime.runner import Progress, Runner
from mlflowkit.spec.models import SpecBase

if TYPE_CHECKING:
    from mlflowkit.runtime.localapi import ServerInfo

__all__ = ["ServerGone", "expected_failure", "flow_tags", "prefect_settings", "run_as_flow", "run_in_flow", "run_logging"]

ServerGone = Callable[[MlflowkitError], None]
"""Told that the local Prefect server died mid-run (the error says which, and where its log is)."""

log = logging.getLogger("mlflowkit.runtime")


@contextmanager
def prefect_settings(say: Callable[[str], None] = lambda what: None) -> Iterator[ServerInfo | None]:
    """Settings for a run: no analytics, no result persistence; without a configured server, the local one.

    The local server (:mod:`mlflowkit.runtime.localapi`) is started if none runs; the client then talks
    to it as to any server, so it never imports Prefect's server package nor waits for a server to stop.
    ``say`` hears what takes time meanwhile (``starting the local Prefect server``). Yields the local
    server, or None when a configured one is used.
    """
    server: ServerInfo | None = None
    wanted = {
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
        "DO_NOT_TRACK": "1",  # the client's own telemetry, and its first-run banner in a terminal
    }
    local = embedded_api()
    if local:  # a configured server keeps the user's own PREFECT_HOME (and profile)
        from mlflowkit.runtime.localapi import ensure_server

        say("finding the local Prefect server")
        server = ensure_server(on_start=say)
        wanted["PREFECT_API_URL"] = server.url
        wanted["PREFECT_HOME"] = str(mlflowkit_home() / "prefect")
    updates = {k: v for k, v in wanted.items() if k not in os.environ}
    saved = {k: os.environ.get(k) for k in updates}
    os.environ.update(updates)  # before `import prefect`, so its settings see them
    try:
        say("importing Prefect")
        import prefect.settings

        names = {k: getattr(prefect.settings, k) for k in updates if hasattr(prefect.settings, k)}
        settings: dict[Any, Any] = {names[k]: v for k, v in updates.items() if k in names}
        if local and "PREFECT_FLOWS_HEARTBEAT_FREQUENCY" not in os.environ:
            # The heartbeat thread sleeps in 1 s steps and is joined at the end, so every local flow
            # would take a whole extra second; the local server runs no zombie detection to read them
            # (a killed run is recognised by its record's pid instead).
            settings[prefect.settings.PREFECT_FLOWS_HEARTBEAT_FREQUENCY] = None
        with prefect.settings.temporary_settings(updates=settings):
            yield server
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _NoEmptyTraceback(logging.Filter):
    """Prefect logs a failed state with ``exc_info=True`` and no exception: the line would end in ``NoneType: None``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[0] is None:
            record.exc_info = None
        return True


class _StepWarningsOnly(logging.Filter):
    """For the terminal without ``-v``: of the flow's and tasks' records, only the steps' own warnings and errors.

    Prefect's lines (states, ``NotReady``, tracebacks of a failure mlflowkit reports itself) and this
    module's summary stay in the flow run's logs; other libraries' warnings pass as before.
    """

    def __init__(self) -> None:
        super().__init__()
        import prefect

        self._ours = (os.path.dirname(prefect.__file__) + os.sep, __file__)

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("prefect"):
            return True
        return record.levelno >= logging.WARNING and not record.pathname.startswith(self._ours)


@contextmanager
def run_logging(verbose: bool | None) -> Iterator[None]:
    """Logging for a flow run: its records at INFO go to the flow run's logs; the terminal as ``verbose`` says.

    Prefect's run loggers take the level of ``PREFECT_LOGGING_LEVEL`` (the CLI used to set WARNING to keep
    the terminal quiet, which also kept every step message out of the Prefect UI). Here the level is
    at most INFO, and ``verbose=False`` quiets the console handler instead.
    """
    import prefect.main  # noqa: F401  (Prefect configures its logging when this loads; filters go on its handlers)
    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [logging.getLogger(n) for n in ("prefect.flow_runs", "prefect.task_runs")]
    levels = [lg.level for lg in loggers]
    no_empty = _NoEmptyTraceback()
    for lg in loggers:
        if lg.getEffectiveLevel() > logging.INFO:
            lg.setLevel(logging.INFO)
        lg.addFilter(no_empty)
    quiet = _StepWarningsOnly()
    consoles = [h for h in logging.getLogger().handlers if isinstance(h, PrefectConsoleHandler)] if verbose is False else []
    for handler in consoles:
        handler.addFilter(quiet)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
            lg.removeFilter(no_empty)
        for handler in consoles:
            handler.removeFilter(quiet)


def flow_tags(plan: Plan) -> list[str]:
    """Tags of a spec's flow runs: ``mlflowkit``, ``spec:NAME``, ``model:NAME`` (``version:N`` joins after register)."""
    return ["mlflowkit", f"spec:{plan.name}", f"model:{plan.model}"]


def _artifact_key(*parts: str) -> str:
    """Prefect artifact keys take lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]", "-", "-".join(parts).lower())


def _show_in_ui(plan: Plan) -> Any:
    """A report sink that makes each step report a Prefect artifact of the task run publishing it."""

    def show(report: Report) -> None:
        from prefect.artifacts import create_markdown_artifact, create_table_artifact

        key = _artifact_key(plan.name, report.step, report.key)
        if report.rows is not None:
            from mlflowkit.fmt import number  # numbers as the terminal and the report write them

            rows = [{k: number(v) if isinstance(v, float) else v for k, v in row.items()} for row in report.rows]
            create_table_artifact(rows, key=key, description=report.title)
        else:
            create_markdown_artifact(report.markdown or "", key=key, description=report.title)

    return show


def _make_tasks(runner: Runner) -> dict[str, Any]:
    """One Prefect task per step of the runner's plan.

    A task reads its inputs from the runner (``runner.outputs``), not from Prefect parameters: Prefect
    refuses to start a task whose upstream parameter failed, and such a task keeps a generated name
    (``register-4f6``) and logs an error of its own. Here every task starts, under its step's name, and
    one whose upstream step did not finish ends as ``Skipped`` without running.
    """
    from prefect import get_run_logger, task
    from prefect.cache_policies import NO_CACHE
    from prefect.states import Completed, Failed

    show = _show_in_ui(runner.plan)
    tasks = {}

    def should_retry(task: Any, task_run: Any, state: Any) -> bool:
        # Retry only failures that may pass: a step that refused its input would refuse it again.
        return runner.retryable(task.name)

    for step in runner.plan.steps:

        def body(_name: str = step.name, _needs: tuple[str, ...] = step.needs) -> Any:
            missing = [n for n in _needs if n not in runner.outputs]
            if missing:
                return Completed(name="Skipped", message=f"not run: step {missing[0]!r} did not finish")
            upstream = {n: runner.outputs[n] for n in _needs}
            try:
                return runner.execute(_name, upstream, get_run_logger(), on_report=show)
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


def _run_steps(runner: Runner, session: RunSession) -> Any:
    """Inside a flow run: submit every step, wait, finish the run record, and show it in the UI.

    Returns the flow run's final state: Failed with mlflowkit's message when the run failed (an expected
    failure is a failed run, not a crashed engine), else what the run made.
    """
    from prefect import get_run_logger
    from prefect.futures import wait
    from prefect.runtime import flow_run
    from prefect.states import Failed
    from prefect.utilities.annotations import allow_failure

    logger = get_run_logger()
    try:
        if flow_run.id and session.record.flow_run_id is None:
            session.flow_run_started(str(flow_run.id))  # a run killed from here on still names its flow run
        tasks = _make_tasks(runner)
        futures: dict[str, Any] = {}
        for step in runner.plan.steps:
            # wait_for, not parameters: every task starts, named, and skips itself when an upstream step failed
            futures[step.name] = tasks[step.name].submit(wait_for=[allow_failure(futures[n]) for n in step.needs])
        wait(list(futures.values()))
        result = session.finish(flow_run_id=str(flow_run.id) if flow_run.id else None)
    except MlflowkitError as exc:  # e.g. the store refused a write: say why, as for a failed step
        logger.error("%s", exc)
        return Failed(message=str(exc))
    try:
        _publish_summary(runner, result)
    except Exception as exc:  # the UI's view is a courtesy; the run's outcome is already recorded
        log.warning("run %s: no summary artifact (%s: %s)", runner.run_id, type(exc).__name__, exc)
    for line in outcome_lines(result):
        logger.info("%s", line)
    if not result.ok:  # the first failure in plan order is the cause; the steps after it did not run
        logger.error("%s", result.error or "the run failed")
        return Failed(message=result.error or "the run failed")
    return {"run_id": result.run_id, "model": result.model, "version": result.version}


def expected_failure(exc: MlflowkitError) -> Any:
    """The Failed state (with mlflowkit's message, logged once) for a flow run that mlflowkit refused to run.

    A flow function that raises is shown by Prefect as an engine crash with a traceback; a refusal
    (a parameter from the UI that breaks the spec, the policy, a store that cannot be opened) is a
    failed run whose message says why.
    """
    from prefect import get_run_logger
    from prefect.states import Failed

    get_run_logger().error("%s", exc)
    return Failed(message=str(exc))


def run_as_flow(
    runner: Runner, session: RunSession, *, verbose: bool | None = None, on_server_gone: ServerGone | None = None
) -> RunResult:
    """Run the runner's plan as a new Prefect flow run (on the local server, or the configured one).

    Args:
        runner: the run's steps.
        session: its record.
        verbose: False keeps Prefect's own lines (states, tracebacks) out of the terminal, True shows them
            at INFO; None leaves Prefect's console as configured. The flow run's logs get them either way.
        on_server_gone: called (from a watching thread) when the local Prefect server dies mid-run, once
            the run's record is finished as failed with the error it is given; the CLI ends its process
            there. Without it, the call returns that result when Prefect's client gives up (minutes).

    Returns:
        The finished run; if the flow ended before it could finish the record, it is finished here.
    """
    plan = runner.plan
    session.orchestrated = True
    with prefect_settings(say=runner.progress.starting) as server, run_logging(verbose):
        from prefect import Flow, tags

        runner.prefetch.start()  # after Prefect's own imports: the two never import one library at once

        def lifecycle(**params: Any) -> Any:
            return _run_steps(runner, session)  # an expected failure returns a Failed state; it never raises

        # Prefect reads flow parameters from the signature: expose the spec's params with their values.
        lifecycle.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v) for k, v in plan.params.items()]
        )
        flow = Flow(
            lifecycle,
            name=plan.name,
            description=f"mlflowkit: {plan.name} (recipe {plan.recipe})",
            log_prints=True,
            validate_parameters=False,
            persist_result=False,
        )
        runner.progress.starting("starting the flow run")
        with tags(*flow_tags(plan)), _ended_if_server_dies(server, session, on_server_gone):
            state: Any = flow(**plan.params, return_state=True)
    if session.result is not None:
        return session.result
    # The flow crashed before the record was finished (the steps left show how far it got).
    return session.finish(flow_run_id=str(state.state_details.flow_run_id) if state.state_details else None)


@contextmanager
def _ended_if_server_dies(server: ServerInfo | None, session: RunSession, then: ServerGone | None) -> Iterator[None]:
    """While the flow runs, watch the local server; if it dies, finish the record as failed and call ``then``."""
    if server is None:  # a configured server is the user's to run; Prefect's retries are theirs to tune
        yield
        return
    from mlflowkit.runtime.localapi import gone_message, watch_server

    def gone(info: ServerInfo) -> None:
        error = MlflowkitError(gone_message(info))
        try:
            session.finish(error=error)
        except RuntimeError:  # the flow is finishing the record itself: give it a moment to write it
            deadline = time.monotonic() + 10
            while session.result is None and time.monotonic() < deadline:
                time.sleep(0.1)
            if session.result is not None and session.result.ok:
                return  # every step had finished as the server went: the run ends as it would have
        except (OSError, MlflowkitError) as exc:
            log.warning("run %s: its record was not finished (%s)", session.record.run_id, exc)
        if then is not None:
            then(error)

    with watch_server(server, gone):
        yield


def run_in_flow(spec: SpecBase, plan: Plan, *, store: str | None = None, progress: Progress | None = None) -> RunResult:
    """Run a compiled spec's steps as tasks of the flow run in progress (a run a Prefect deployment started).

    Args:
        spec: the loaded spec, with the run's params applied.
        plan: its plan.
        store: artifact store root; default from :func:`~mlflowkit.runtime.locations.store_root`.
        progress: receives step events.

    Returns:
        The run's result, with ``trigger`` naming the deployment (and whether a schedule started it).
    """
    from prefect.runtime import deployment, flow_run

    from mlflowkit.policy import enforce

    policy = enforce(spec)  # normally the one the spec was just loaded with, so not checked again
    flow_run_id = str(flow_run.id) if flow_run.id else None
    trigger = None
    if deployment.id:
        drift = [t.split(":", 1)[1] for t in (flow_run.tags or []) if t.startswith("drift-check:")]
        trigger = Trigger(
            by="monitor" if drift else "deployment",  # `mlflowkit monitor` tags the runs it starts
            deployment=f"{flow_run.flow_name}/{deployment.name}",
            deployment_id=str(deployment.id),
            scheduled=_auto_scheduled(flow_run_id),
            check_id=drift[0] if drift else None,
        )
    runner = Runner(spec, plan, store_root(spec, store), progress=progress, trigger=trigger, policy=policy)
    session = RunSession(runner, flow_run_id=flow_run_id)
    session.orchestrated = True
    with run_logging(None):
        _run_steps(runner, session)
    assert session.result is not None  # _run_steps finishes it
    return session.result


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


def _publish_summary(runner: Runner, result: RunResult) -> None:
    """In the flow run: tag it with the registered version, and publish a summary artifact.

    The version is known only after register, so its tag is added to the running flow run
    (``spec:`` and ``model:`` tags are set when the run is created).
    """
    from prefect.artifacts import create_markdown_artifact
    from prefect.client.orchestration import get_client

    version = result.version
    if version and result.flow_run_id:
        tag = f"version:{version.version}"
        try:
            with get_client(sync_client=True) as client:
                flow_run_id = uuid.UUID(result.flow_run_id)
                tags = list(client.read_flow_run(flow_run_id).tags)
                if tag not in tags:
                    client.update_flow_run(flow_run_id, tags=[*tags, tag])
        except Exception as exc:  # a missing tag is a cosmetic loss; the record and the artifact carry it too
            log.warning("could not tag flow run %s with %s: %s", result.flow_run_id, tag, exc)
    create_markdown_artifact(
        summary_markdown(runner.store, result),
        key=_artifact_key(runner.plan.name, "run-summary"),
        description=f"run {result.run_id}: {result.status}",
    )
