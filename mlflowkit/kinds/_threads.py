"""How many CPUs a step may use, and keeping BLAS/OpenMP thread pools (and n_jobs) to that number while it trains.

Native libraries size their thread pools by the machine's cores, not by what the process may use (CPU
affinity, a container's CPU quota) nor by how many trials run side by side; oversubscribed, a fit runs
many times slower. threadpoolctl caps the pools for the duration of a fit.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["available_cpus", "limit_threads", "quiet_step_n_jobs"]

_CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def available_cpus() -> int:
    """The CPUs this process may use: its CPU affinity, capped by a cgroup v2 CPU quota when one is set."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = _CGROUP_CPU_MAX.read_text(encoding="utf-8").split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota to honour
    return max(1, cpus)


@contextmanager
def limit_threads(cpus: int) -> Iterator[None]:
    """Cap every BLAS and OpenMP thread pool of this process at ``cpus`` threads inside the block."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=max(1, int(cpus))):
        yield


@contextmanager
def quiet_step_n_jobs(ours: bool) -> Iterator[None]:
    """Inside the block, silence what an estimator says about an ``n_jobs`` the step set (``ours``), not the user.

    scikit-learn 1.8+ warns that LogisticRegression's n_jobs "has no effect" (its threads are BLAS's, which
    :func:`limit_threads` caps): the warning would reach the user's console about a value they never wrote.
    """
    with warnings.catch_warnings():
        if ours:
            warnings.filterwarnings("ignore", message=r".*\bn_jobs\b", category=FutureWarning)
        yield
