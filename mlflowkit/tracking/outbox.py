"""The store's outbox of what MLflow has not received yet: runs to log and models whose aliases moved.

An item is written before anything is sent and removed only once MLflow has it, so a tracking server
that is down (or a process killed while sending) loses nothing: the next run, promotion or
``mlflowkit tracking sync`` sends it again. Sending is idempotent (see :mod:`mlflowkit.tracking.mlflow_log`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from mlflowkit.tracking.target import TrackingTarget

if TYPE_CHECKING:
    from mlflowkit.store import ArtifactStore

__all__ = ["OutboxItem", "done", "enqueue", "pending", "retry_later"]

_PREFIX = "tracking/outbox/"


class OutboxItem(BaseModel):
    """One thing to send: a run to log, or a model whose aliases MLflow should mirror."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["run", "aliases"] = Field(description="``run``: log the run; ``aliases``: mirror the model's aliases.")
    run_id: str | None = Field(None, description="The run to log (kind ``run``).")
    model: str = Field(description="mlflowkit's model name.")
    target: TrackingTarget = Field(description="Where to send it.")
    queued_at: str = Field(description="When it was first queued, ISO 8601.")
    attempts: int = Field(0, description="Failed attempts so far.")
    last_error: str = Field("", description="Why the last attempt failed.")

    @property
    def key(self) -> str:
        """Its key in the store: one item per run, one per model's aliases (a newer move replaces an older one)."""
        name = f"run-{self.run_id}" if self.kind == "run" else f"aliases-{self.model}"
        return f"{_PREFIX}{name}.json"


def enqueue(
    store: ArtifactStore, kind: Literal["run", "aliases"], model: str, target: TrackingTarget, run_id: str | None = None
) -> OutboxItem:
    """Queue a run (or a model's aliases) for ``target``; an item already queued for it keeps its history."""
    item = OutboxItem(kind=kind, run_id=run_id, model=model, target=target, queued_at=datetime.now(UTC).isoformat())
    try:
        old = OutboxItem.model_validate(store.read_json(item.key))
        item = item.model_copy(update={"queued_at": old.queued_at, "attempts": old.attempts, "last_error": old.last_error})
    except (FileNotFoundError, ValueError):
        pass
    store.write_json(item.key, item.model_dump(mode="json"))
    return item


def pending(store: ArtifactStore) -> list[OutboxItem]:
    """What is waiting: runs first (oldest first), then alias moves (which need the versions the runs register)."""
    items = []
    for key in store.list_keys(_PREFIX):
        try:
            items.append(OutboxItem.model_validate(store.read_json(key)))
        except (FileNotFoundError, ValueError):  # a half-written or foreign file: not ours to send
            continue
    return sorted(items, key=lambda i: (i.kind != "run", i.run_id or "", i.model))


def done(store: ArtifactStore, item: OutboxItem) -> None:
    """MLflow has it: drop it."""
    store.delete(item.key)


def retry_later(store: ArtifactStore, item: OutboxItem, error: str) -> OutboxItem:
    """It failed this time: keep it, counting the attempt and saying why."""
    failed = item.model_copy(update={"attempts": item.attempts + 1, "last_error": error[:500]})
    store.write_json(item.key, failed.model_dump(mode="json"))
    return failed
