"""Import the heavy libraries a plan's steps need in one background thread, while orchestration talks to the API.

A run spends its first seconds creating the flow run, and its first steps reading data; meanwhile one
thread imports, in plan order, what every later step's kind declares (:meth:`StepKind.prefetch`):
pandas, scikit-learn, Great Expectations (seconds), the ONNX converter. A step waits only for its
own kind's imports before it runs, so no two threads ever import the same library at once (which
could deadlock on import locks); a failed import is left for the step to meet and report itself.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from mlflowkit.kinds.base import StepKind

__all__ = ["Prefetch"]

log = logging.getLogger("mlflowkit.runtime")


class Prefetch:
    """One daemon thread that runs each kind's :meth:`~mlflowkit.kinds.base.StepKind.prefetch` once, in order.

    Args:
        kinds: the plan's step kinds, in plan order (repeats are imported once).
    """

    def __init__(self, kinds: Sequence[StepKind]) -> None:
        self._order: list[type[StepKind]] = list(dict.fromkeys(type(k) for k in kinds))
        self._done = {cls: threading.Event() for cls in self._order}
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start importing (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mlflowkit-prefetch", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        for cls in self._order:
            try:
                cls.prefetch()
            except Exception as exc:  # the step imports again and says what is missing
                log.debug("prefetch of %s failed: %s", cls.__name__, exc)
            finally:
                self._done[cls].set()

    def wait_for(self, kind: StepKind) -> None:
        """Block until ``kind``'s imports are done (at once when prefetching never started or does not know it)."""
        event = self._done.get(type(kind))
        if self._thread is not None and event is not None:
            event.wait()
