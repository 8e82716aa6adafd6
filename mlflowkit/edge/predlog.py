"""The edge runner's optional prediction log: sampled inputs and outputs in rotating JSON-lines files.

Inference never waits for it: a request puts its record on a bounded queue without blocking (a full
queue drops the record and counts it), and one background thread writes the lines. Files rotate by
size with the standard library's ``RotatingFileHandler`` (``predictions.jsonl``, ``.1``, ``.2``, ...),
so a device's disk use is bounded. ``mlflowkit monitor --data 'predictions.jsonl*'`` reads the files:
each line's ``inputs`` object is one row.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
from datetime import UTC, datetime
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

__all__ = ["PredictionLog", "rows_of"]


def rows_of(payload: Any) -> list[dict[str, Any]]:
    """The request's rows as records, from each shape the runner accepts: ``{"inputs": {col: [...]}}``,
    ``{"inputs": [{...}]}``, ``{"records": [{...}]}``, ``[{...}]`` and one record ``{...}``."""
    if isinstance(payload, dict) and "inputs" in payload:
        payload = payload["inputs"]
        if isinstance(payload, dict):
            n = max((len(v) if isinstance(v, list) else 1 for v in payload.values()), default=0)
            return [{k: (v[i] if isinstance(v, list) else v) for k, v in payload.items()} for i in range(n)]
    elif isinstance(payload, dict) and "records" in payload:
        payload = payload["records"]
    elif isinstance(payload, dict):
        payload = [payload]
    return [r for r in payload if isinstance(r, dict)] if isinstance(payload, list) else []


class PredictionLog:
    """Append sampled ``{"at", "model", "version", "inputs", "label", "probabilities"}`` lines under ``path``.

    Args:
        path: the log file (rotated beside itself).
        sample: the share of rows logged, 0 to 1.
        max_bytes: size at which the file rotates.
        backups: rotated files kept.
        queue_size: records waiting at most; more are dropped (``dropped`` counts them).
        seed: the sampler's seed (tests).
    """

    def __init__(
        self,
        path: Path,
        *,
        sample: float = 1.0,
        max_bytes: int = 10 << 20,
        backups: int = 5,
        queue_size: int = 10_000,
        seed: int | None = None,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.sample = path, sample
        self.dropped = 0
        self._random = random.Random(seed)  # noqa: S311 - sampling, not secrets
        self._queue: queue.Queue[str | None] = queue.Queue(maxsize=queue_size)
        self._handler = RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        self._handler.setFormatter(logging.Formatter("%(message)s"))
        self._thread = threading.Thread(target=self._write, name="prediction-log", daemon=True)
        self._thread.start()

    def record(self, payload: Any, result: dict[str, Any]) -> None:
        """Queue the sampled rows of one answered request; never blocks."""
        if self.sample <= 0:
            return
        at = datetime.now(UTC).isoformat(timespec="milliseconds")
        labels = result.get("predictions") or []
        probabilities = result.get("probabilities") or []
        for i, row in enumerate(rows_of(payload)):
            if self.sample < 1 and self._random.random() >= self.sample:
                continue
            line = {"at": at, "model": result.get("model"), "version": result.get("version"), "inputs": row}
            if i < len(labels):
                line["label"] = labels[i]
            if i < len(probabilities):
                line["probabilities"] = probabilities[i]
            try:
                self._queue.put_nowait(json.dumps(line, default=str))
            except queue.Full:
                self.dropped += 1

    def _write(self) -> None:
        while True:
            line = self._queue.get()
            if line is None:
                return
            self._handler.emit(logging.makeLogRecord({"msg": line, "levelno": logging.INFO}))

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued and close the file."""
        self._queue.put(None)
        self._thread.join(timeout)
        self._handler.close()
