"""Estimators for the Ray tests, importable by Ray workers (the tests put this folder on PYTHONPATH).

Its module name is allowed through ``MLFLOWKIT_ALLOWED_MODULES=mlflowkit_test_estimators``, set by the tests.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.tree import DecisionTreeClassifier


def _in_ray_worker() -> bool:
    import ray

    return bool(ray.is_initialized() and ray.get_runtime_context().worker.mode == ray.WORKER_MODE)


class KillOnceClassifier(ClassifierMixin, BaseEstimator):
    """A decision tree whose first fit inside a Ray worker kills that worker (SIGKILL, as the OOM killer would).

    ``marker`` is a file path: the fit that creates it (atomically, so only one fit ever does) writes its
    pid there and kills its own process. Every fit in a worker appends its pid to ``marker + ".attempts"``.
    """

    def __init__(self, marker: str = "", max_depth: int | None = None, random_state: int | None = None) -> None:
        self.marker = marker
        self.max_depth = max_depth
        self.random_state = random_state

    def fit(self, x: Any, y: Any) -> KillOnceClassifier:
        if self.marker and _in_ray_worker():
            with open(self.marker + ".attempts", "a", encoding="utf-8") as fh:
                fh.write(f"{os.getpid()}\n")
            try:
                fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                os.kill(os.getpid(), signal.SIGKILL)
        self.tree_ = DecisionTreeClassifier(max_depth=self.max_depth, random_state=self.random_state).fit(x, y)
        self.classes_ = self.tree_.classes_
        return self

    def predict(self, x: Any) -> Any:
        return self.tree_.predict(x)

    def predict_proba(self, x: Any) -> Any:
        return self.tree_.predict_proba(x)


class ThreadProbeClassifier(ClassifierMixin, BaseEstimator):
    """A decision tree that records, while it fits, its n_jobs and the thread counts of every native thread pool."""

    def __init__(self, n_jobs: int | None = None, random_state: int | None = None) -> None:
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, x: Any, y: Any) -> ThreadProbeClassifier:
        from threadpoolctl import threadpool_info

        self.seen_n_jobs_ = self.n_jobs
        self.seen_threads_ = sorted({pool["num_threads"] for pool in threadpool_info()})
        self.tree_ = DecisionTreeClassifier(random_state=self.random_state).fit(x, y)
        self.classes_ = self.tree_.classes_
        return self

    def predict(self, x: Any) -> Any:
        return self.tree_.predict(x)
