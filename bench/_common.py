"""Shared helpers for the benchmark scripts: a scratch dir, timing, medians, and a plain-text table.

Benchmarks are scripts, not tests. Each runs several repetitions and reports medians, because the
reference machine has two noisy cores; min and max are shown so the spread stays visible.
"""

from __future__ import annotations

import argparse
import atexit
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "MLFLOWKIT",
    "REPO",
    "TIMING_HEADERS",
    "Timing",
    "bench_env",
    "fmt_seconds",
    "header",
    "load_average",
    "machine",
    "parse_args",
    "print_table",
    "ratio",
    "run_process",
    "scratch_dir",
    "time_call",
    "time_process",
    "time_processes",
    "timing_rows",
]

REPO = Path(__file__).resolve().parent.parent
# The console script of the interpreter running the benchmark (the venv's), not whatever is on PATH.
_SCRIPT = Path(sys.executable).with_name("mlflowkit")
MLFLOWKIT = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-c", "from mlflowkit.cli import main; main()"]


@dataclass
class Timing:
    """Wall times of one measured thing, in seconds."""

    label: str
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def low(self) -> float:
        return min(self.samples)

    @property
    def high(self) -> float:
        return max(self.samples)


def parse_args(
    description: str, default_repeat: int, extra: Callable[[argparse.ArgumentParser], None] | None = None
) -> argparse.Namespace:
    """The common command line: ``--repeat N`` and ``--keep`` (leave the scratch dir for inspection)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--repeat", type=int, default=default_repeat,
                        help=f"repetitions per measurement (default {default_repeat})")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory instead of deleting it")
    if extra:
        extra(parser)
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def scratch_dir(keep: bool = False) -> Path:
    """A fresh ``tempfile.mkdtemp()`` that holds every file a benchmark writes; removed at exit unless ``keep``."""
    path = Path(tempfile.mkdtemp(prefix="mlflowkit-bench-"))
    if keep:
        print(f"scratch dir (kept): {path}")
    else:
        atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def bench_env(scratch: Path, *, prefect_home: Path | None = None, bytecode: bool = True, **extra: str) -> dict[str, str]:
    """A subprocess environment: PREFECT_HOME and MLFLOWKIT_HOME (the local server's) under ``scratch``, no analytics.

    With ``bytecode`` (the default) compiled modules are cached under ``scratch/pycache``, as they would be
    in a user's install; without it nothing is cached (``PYTHONDONTWRITEBYTECODE=1``) and every
    module without a ``.pyc`` of its own (the editable mlflowkit) is compiled on every start.
    """
    env = dict(os.environ)
    for name in ("PREFECT_API_URL", "MLFLOWKIT_STORE", "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX"):
        env.pop(name, None)  # the embedded API and the default store, so runs are comparable
    if bytecode:
        env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")  # a cache that writes nothing into the repo
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(PREFECT_HOME=str(prefect_home or scratch / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               MLFLOWKIT_HOME=str(scratch / "home"), **extra)  # fmt: skip
    atexit.register(_stop_local_server, scratch / "home")  # a run's local Prefect server, never the user's
    return env


def _stop_local_server(home: Path) -> None:
    from mlflowkit.runtime.localapi import stop_server

    stop_server(home)


def run_process(cmd: Sequence[str], *, env: Mapping[str, str], cwd: Path | str | None = None) -> float:
    """Run ``cmd`` to completion and return its wall time; raise with its output if it fails."""
    start = time.perf_counter()
    proc = subprocess.run(list(cmd), env=dict(env), cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed


def time_process(label: str, cmd: Sequence[str], repeat: int, *, env: Mapping[str, str], cwd: Path | str | None = None,
                 warmup: int = 1) -> Timing:
    """Wall times of ``repeat`` fresh processes, after ``warmup`` untimed ones (file and bytecode caches)."""
    return time_processes([(label, cmd, env, cwd)], repeat, warmup=warmup)[0]


Command = tuple[str, Sequence[str], Mapping[str, str], "Path | str | None"]


def time_processes(commands: Sequence[Command], repeat: int, *, warmup: int = 1) -> list[Timing]:
    """Like :func:`time_process` for several ``(label, cmd, env, cwd)``, interleaved round-robin.

    Interleaving spreads the machine's slow spells over every command instead of biasing one.
    """
    for _ in range(warmup):
        for _, cmd, env, cwd in commands:
            run_process(cmd, env=env, cwd=cwd)
    timings = [Timing(label) for label, *_ in commands]
    for _ in range(repeat):
        for timing, (_, cmd, env, cwd) in zip(timings, commands, strict=True):
            timing.samples.append(run_process(cmd, env=env, cwd=cwd))
    return timings


def time_call(
    label: str, fn: Callable[[], Any], repeat: int, *, setup: Callable[[], Any] | None = None, warmup: int = 1
) -> Timing:
    """Wall times of ``repeat`` calls of ``fn`` (``setup`` runs untimed before each call)."""
    timing = Timing(label)
    for i in range(warmup + repeat):
        if setup:
            setup()
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        if i >= warmup:
            timing.samples.append(elapsed)
    return timing


def ratio(a: float, b: float) -> str:
    """``a / b`` as ``12.3x``; ``n/a`` when b is zero."""
    return f"{a / b:,.2f}x" if b else "n/a"


def fmt_seconds(seconds: float) -> str:
    """Seconds in the unit that reads best: us, ms or s."""
    if abs(seconds) < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if abs(seconds) < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str = "") -> None:
    """A plain, aligned text table (first column left-aligned, the rest right-aligned)."""
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))

    if title:
        print(f"\n{title}")
    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))


def timing_rows(timings: Sequence[Timing], baseline: Timing) -> list[list[str]]:
    """Table rows ``label, median, min, max, ratio to baseline`` for each timing."""
    return [[t.label, fmt_seconds(t.median), fmt_seconds(t.low), fmt_seconds(t.high), ratio(t.median, baseline.median)]
            for t in timings]


TIMING_HEADERS = ("measurement", "median", "min", "max", "vs baseline")


def machine() -> str:
    """One line about where the numbers come from."""
    mem = ""
    try:
        kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
        mem = f", {kb / 1024**2:.0f} GB"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{os.cpu_count()} cores{mem}, Python {platform.python_version()}, {platform.system()} {platform.machine()}"


def load_average() -> str:
    """The 1-minute load average: on two cores, above 2 means others wait for a CPU (and timings stretch)."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "n/a"


def header(title: str, repeat: int) -> None:
    """The first lines every benchmark prints; the load average says how busy the machine was."""
    print(f"{title}\nmachine: {machine()}; load average {load_average()}; repetitions: {repeat} (medians reported)")
    atexit.register(lambda: print(f"\nload average at the end: {load_average()}"))
