"""Send the outbox to MLflow within a bounded time; never fail (or hold up) the run or command that asks.

Each server is asked for its ``/health`` first, with the target's timeout: a port nobody listens on
answers at once, a server that accepts but never answers costs one timeout, and then nothing else is
tried against it until the next run. MLflow's own calls run without retries and with the same timeout
per request (:func:`mlflowkit.tracking.mlflow_log.bounded_http`); the first request that goes unanswered
stops sending to that server (an item MLflow refuses for itself does not hold up the others). What was
not sent stays in the outbox, with the reason.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mlflowkit.handoff import RunRecord, TrackingOutcome
from mlflowkit.tracking.outbox import OutboxItem, done, enqueue, pending, retry_later
from mlflowkit.tracking.target import TrackingTarget, remember, remembered

if TYPE_CHECKING:
    from mlflowkit.store import ArtifactStore, ModelRegistry

__all__ = ["Flushed", "after_alias_move", "flush", "reachable", "track_run", "unreachable"]

log = logging.getLogger("mlflowkit.tracking")
BUDGET = 60.0
"""Seconds after which no further queued item is started (the one being sent finishes or times out)."""


@dataclass
class Flushed:
    """What one pass over the outbox did."""

    sent: list[OutboxItem] = field(default_factory=list)
    left: list[OutboxItem] = field(default_factory=list)
    logged: dict[str, tuple[str, str]] = field(default_factory=dict)
    """mlflowkit run id -> (MLflow run id, its UI page), for the runs sent."""
    errors: dict[str, str] = field(default_factory=dict)
    """Server URI -> why nothing (more) was sent there."""


def reachable(target: TrackingTarget) -> str | None:
    """None when the server answers ``/health`` within the target's timeout, else why not (one try, no retries)."""
    try:
        with urllib.request.urlopen(f"{target.base}/health", timeout=target.timeout) as answer:  # noqa: S310 (http(s) only: checked by the target)
            if answer.status == 200:
                return None
            return f"{target.base}/health answered HTTP {answer.status}"
    except urllib.error.HTTPError as exc:
        return f"{target.base}/health answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:  # refused, unknown host, timed out
        reason = getattr(exc, "reason", exc)
        return f"{target.base} is not reachable ({type(reason).__name__}: {reason})"


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the server did not answer: refused, reset, timed out."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionError | TimeoutError) or type(seen).__module__.startswith(("requests", "urllib3")):
            return True
        text = str(seen)
        if "Max retries exceeded" in text or "timed out" in text or "Connection aborted" in text:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def flush(store: ArtifactStore, registry: ModelRegistry | None, *, budget: float = BUDGET) -> Flushed:
    """Send what the outbox holds, server by server; what fails stays queued with the reason. Never raises."""
    result = Flushed()
    started = time.monotonic()
    items = pending(store)
    down: dict[str, str] = {}
    for item in items:
        uri = item.target.base
        if uri in down or time.monotonic() - started > budget:
            result.left.append(retry_later(store, item, down.get(uri, "not tried: the time for sending ran out")))
            continue
        if uri not in result.errors and (problem := reachable(item.target)) is not None:
            down[uri] = result.errors[uri] = problem
            result.left.append(retry_later(store, item, problem))
            continue
        try:
            logged = _send(store, registry, item)
        except Exception as exc:  # whatever MLflow or the network raised: the run goes on, the item waits
            problem = f"{type(exc).__name__}: {str(exc)[:300]}"
            result.errors[uri] = problem
            if unreachable(exc):  # no more requests to a server that stopped answering: no retry storm
                down[uri] = problem
            result.left.append(retry_later(store, item, problem))
            log.warning("MLflow at %s: %s (kept in the outbox; retried on the next run)", uri, problem)
            continue
        done(store, item)
        result.sent.append(item)
        if logged is not None and item.run_id:
            result.logged[item.run_id] = logged
    return result


def _send(store: ArtifactStore, registry: ModelRegistry | None, item: OutboxItem) -> tuple[str, str] | None:
    from mlflowkit.tracking.mlflow_log import bounded_http, client_for, log_run, mirror_aliases

    with bounded_http(item.target.timeout):
        client = client_for(item.target)
        if item.kind == "run":
            assert item.run_id is not None
            key = f"runs/{item.run_id}.json"
            record = RunRecord.model_validate(store.read_json(key))
            logged = log_run(client, store, record, item.target)
            outcome = TrackingOutcome(uri=item.target.uri, state="logged", mlflow_run_id=logged.run_id, url=logged.url)
            store.write_json(key, record.model_copy(update={"tracking": outcome}).to_json())  # `runs show` links it
            return logged.run_id, logged.url
        if registry is not None and item.target.registry:
            mirror_aliases(client, registry, item.model, item.target)
        return None


def track_run(store: ArtifactStore, registry: ModelRegistry | None, record: RunRecord, target: TrackingTarget) -> TrackingOutcome:
    """Log a finished run to ``target`` (and anything queued before it); say whether MLflow has it now. Never raises."""
    model = record.model
    remember(store, model, target)
    enqueue(store, "run", model, target, run_id=record.run_id)
    if target.registry:
        enqueue(store, "aliases", model, target)
    flushed = flush(store, registry)
    if record.run_id in flushed.logged:
        mlflow_run, url = flushed.logged[record.run_id]
        return TrackingOutcome(uri=target.uri, state="logged", mlflow_run_id=mlflow_run, url=url)
    note = flushed.errors.get(target.base, "not sent")
    return TrackingOutcome(uri=target.uri, state="queued", note=note)


def after_alias_move(
    store: ArtifactStore, registry: ModelRegistry, model: str, target: TrackingTarget | None = None
) -> str | None:
    """Mirror ``model``'s aliases in MLflow after a promotion or rollback; a message when MLflow could not be told.

    ``target``: where the model is tracked; by default where a run last logged it from this store. Without
    either, nothing happens (and MLflow is not imported).
    """
    target = target or remembered(store, model)
    if target is None or not target.registry:
        return None
    enqueue(store, "aliases", model, target)
    flushed = flush(store, registry)
    if any(i.kind == "aliases" and i.model == model for i in flushed.sent):
        return None
    problem = flushed.errors.get(target.base, "not sent")
    return (
        f"MLflow at {target.uri} was not told of the move ({problem}); "
        "it is kept and sent on the next run or `mlflowkit tracking sync`"
    )
