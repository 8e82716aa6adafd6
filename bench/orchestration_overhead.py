"""What Prefect costs a user per step: a chain of 50 ``noop`` steps (no caching) through ``run_spec`` (goal: <= 15 ms/step).

Judged on what a user pays: the whole flow run divided by its steps, on mlflowkit's local Prefect
server (started once per user; its start is its own row, with a new database and with an existing
one). ``Runner.run_inline()`` (mlflowkit's own machinery: cache keys, store writes, records; no
Prefect) shows how much of it is mlflowkit's; a 1-step flow gives the fixed cost of any flow run.
Flows run on a quiet API (``--pause`` seconds after the previous flow, as for a user's one run) and
20 back to back (as in a loop, a notebook or a test suite), counting the Prefect client's back-offs
(a SQLite "database is locked" answer makes it sleep ~2 s): the goal is none.

    python bench/orchestration_overhead.py --repeat 5
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    TIMING_HEADERS,
    Timing,
    fmt_seconds,
    header,
    parse_args,
    print_table,
    scratch_dir,
    timing_rows,
)

GOAL_MS = 15.0
BACK_TO_BACK = 20


def write_chain(folder: Path, steps: int) -> Path:
    """A spec plus ``recipes/noop-chain.yaml`` next to it: ``steps`` noop stages in a chain, none cached."""
    names = [f"s{i:02d}" for i in range(steps)]
    lines = ["recipe: noop-chain", f"description: {steps} noop steps in a chain (benchmark).", "stages:"]
    for prev, name in zip([None, *names], names, strict=False):
        lines.append(f"  {name}: {{kind: noop{', needs: [' + prev + ']' if prev else ''}}}")
    lines.append("defaults:")
    lines += [f"  {name}: {{cache: false}}" for name in names]
    (folder / "recipes").mkdir(parents=True)
    (folder / "recipes" / "noop-chain.yaml").write_text("\n".join(lines) + "\n")
    spec = folder / "spec.yaml"
    spec.write_text(f"spec: mlflowkit/v1\nname: noop-chain-{steps}\nrecipe: noop-chain\n")
    return spec


class RetryCounter:
    """Counts the Prefect client's back-off sleeps (a 503 "database is locked" from the SQLite API, say)."""

    def __init__(self) -> None:
        self.count, self.seconds, self.available = 0, 0.0, False
        try:
            import prefect.client.base as base
        except ImportError:
            return
        original: Callable[..., Any] | None = getattr(base, "_record_if_maintenance_backoff", None)
        if original is None:  # a private hook of prefect 3.8; without it the count is "n/a"
            return

        def record(response: Any, exc_info: Any, retry_seconds: float) -> Any:
            self.count += 1
            self.seconds += retry_seconds
            return original(response, exc_info, retry_seconds)

        base._record_if_maintenance_backoff = record
        self.available = True


# Time spent blocked rather than working: left out of the profile's list of top costs.
_WAITS = ("acquire", "SimpleQueue", "sleep", "select", "poll", "wait", "join", "recv")


def profile_flow(run: Callable[[], None], top: int = 12) -> None:
    """cProfile one flow run in every thread (Prefect runs tasks in worker threads) and print the top costs."""
    profiles: list[cProfile.Profile] = []

    def start_in_thread(*_: Any) -> None:
        sys.setprofile(None)
        profile = cProfile.Profile()
        profiles.append(profile)
        profile.enable()

    main_profile = cProfile.Profile()
    threading.setprofile(start_in_thread)
    main_profile.enable()
    try:
        run()
    finally:
        main_profile.disable()
        threading.setprofile(None)
    stats = pstats.Stats(main_profile, stream=io.StringIO())
    for profile in profiles:
        profile.disable()
        stats.add(profile)
    rows, packages = [], {}
    for (file, line, name), (_, calls, tottime, cumtime, callers) in stats.stats.items():  # type: ignore[attr-defined]
        if any(w in name for w in _WAITS):
            continue
        rows.append((tottime, calls, cumtime, f"{Path(file).name}:{line}({name})" if line else name))
        # A builtin's own time (fsync, urandom, ...) counts for the packages that called it.
        edges: dict[str, float] = {}
        for caller, edge in (callers.items() if file == "~" else ()):
            edges[_package(caller[0])] = edges.get(_package(caller[0]), 0.0) + edge[2]
        total = sum(edges.values())
        for package, share in (edges.items() if total else [(_package(file), tottime)]):
            packages[package] = packages.get(package, 0.0) + (tottime * share / total if total else share)
    rows.sort(reverse=True)
    own = sum(packages.values())
    by_package = sorted(packages.items(), key=lambda kv: -kv[1])[:8]
    print_table(("package (own time, builtins counted for their callers)", "tottime", "share"),
                [[name, f"{t * 1e3:.0f} ms", f"{100 * t / own:.0f}%"] for name, t in by_package],
                title="cProfile of one flow run, all threads, blocking waits left out (the profiler inflates times)")
    print_table(("function", "tottime", "calls", "cumtime"),
                [[where, f"{t * 1e3:.1f} ms", str(calls), f"{c * 1e3:.1f} ms"] for t, calls, c, where in rows[:top]],
                title="top functions by own time")


def _package(file: str) -> str:
    """The top-level package a source file belongs to: a site-package, mlflowkit, or the standard library."""
    parts = Path(file).parts
    if "site-packages" in parts and parts.index("site-packages") + 1 < len(parts):
        return parts[parts.index("site-packages") + 1].removesuffix(".py")
    if "mlflowkit" in parts:
        return "mlflowkit"
    return "builtins" if file == "~" else "stdlib"


def main() -> None:
    def extra(parser: Any) -> None:
        parser.add_argument("--steps", type=int, default=50, help="length of the chain (default 50)")
        parser.add_argument("--pause", type=float, default=3.0,
                            help="seconds of quiet before each 'quiet API' flow (default 3)")
        parser.add_argument("--profile", action="store_true", help="also cProfile one quiet flow and print the top costs")

    args = parse_args(__doc__.splitlines()[0], default_repeat=5, extra=extra)
    tmp = scratch_dir(args.keep)
    # In-process run: Prefect reads these at import; the local server keeps its state under MLFLOWKIT_HOME.
    os.environ.pop("PREFECT_API_URL", None)
    os.environ.pop("PREFECT_HOME", None)
    os.environ.update(MLFLOWKIT_HOME=str(tmp / "home"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
                      PREFECT_LOGGING_LEVEL="WARNING")  # the CLI's default without --verbose
    n = args.steps
    header(f"orchestration overhead: a chain of {n} noop steps (cache: false), in process", args.repeat)

    from mlflowkit.plan.compile import compile_spec
    from mlflowkit.runtime.engine import run_spec
    from mlflowkit.runtime.localapi import ensure_server, stop_server
    from mlflowkit.runtime.locations import store_root
    from mlflowkit.runtime.runner import Runner
    from mlflowkit.spec.load import load_spec

    specs = {k: load_spec(write_chain(tmp / f"chain{k}", k)) for k in (1, n)}
    plans = {k: compile_spec(s) for k, s in specs.items()}

    def orchestrated(k: int, timing: Timing, pause: float = args.pause) -> None:
        time.sleep(pause)
        start = time.perf_counter()
        result = run_spec(specs[k], plans[k], orchestrate=True)
        timing.samples.append(time.perf_counter() - start)
        ran = sum(r.status == "ran" for r in result.steps)
        if not result.ok or not result.orchestrated or ran != k:
            raise RuntimeError(f"expected {k} steps to run in Prefect; got {result.status}, {ran} ran: {result.error}")

    def inline(k: int, timing: Timing) -> None:
        runner = Runner(specs[k], plans[k], store_root(specs[k]))  # construction (a git call) is not per step
        start = time.perf_counter()
        runner.run_inline()
        timing.samples.append(time.perf_counter() - start)
        if any(r.status != "ran" for r in runner.records.values()):
            raise RuntimeError("a step did not run inline")

    # One-off: the local server's first start (a new database), a restart (the database exists), import prefect.
    start = time.perf_counter()
    ensure_server()
    first_start = time.perf_counter() - start
    restarts = Timing("local server start, database exists")
    for _ in range(min(args.repeat, 3)):
        stop_server()
        start = time.perf_counter()
        ensure_server()
        restarts.samples.append(time.perf_counter() - start)
    start = time.perf_counter()
    import prefect  # noqa: F401 - timing the import is the point

    import_prefect = time.perf_counter() - start
    retries = RetryCounter()
    first = Timing("first flow")
    try:
        orchestrated(1, first, pause=0)
        quiet_1, quiet_n = Timing("Prefect, 1 step, quiet API"), Timing(f"Prefect, {n} steps, quiet API")
        busy_n, inline_n = Timing(f"Prefect, {n} steps, back to back"), Timing(f"Runner.run_inline, {n} steps (no Prefect)")
        spent = dict.fromkeys(("quiet", "busy"), (0, 0.0))

        def counted(group: str, fn: Callable[[], None]) -> None:
            """Run ``fn`` and add the client back-offs it met to ``group``."""
            count, seconds = retries.count, retries.seconds
            fn()
            spent[group] = (spent[group][0] + retries.count - count, spent[group][1] + retries.seconds - seconds)

        inline(n, Timing("warm-up"))  # kinds loaded, store folders made
        for _ in range(args.repeat):  # interleaved, so a slow spell of the machine hits every measurement
            counted("quiet", lambda: orchestrated(1, quiet_1))
            counted("quiet", lambda: orchestrated(n, quiet_n))
            inline(n, inline_n)
        for _ in range(BACK_TO_BACK):
            counted("busy", lambda: orchestrated(n, busy_n, pause=0))  # right after the previous flow
        if args.profile:
            time.sleep(args.pause)
            profile_flow(lambda: run_spec(specs[n], plans[n], orchestrate=True))
    finally:
        stop_server()

    print_table(("one-off (not in the per-step numbers)", "median", "min", "max"), [
        ["local server, first start on a machine (database migrated)", fmt_seconds(first_start), "-", "-"],
        [restarts.label, fmt_seconds(restarts.median), fmt_seconds(restarts.low), fmt_seconds(restarts.high)],
        ["import prefect", fmt_seconds(import_prefect), "-", "-"],
        ["first flow run of the process (1 step)", fmt_seconds(first.samples[0]), "-", "-"],
    ], title="start-up, paid once per user (the server) or once per process (the import)")
    rows = timing_rows([quiet_n, quiet_1, busy_n, inline_n], quiet_n)
    print_table(TIMING_HEADERS, rows, title=f"whole chain (baseline: {n} steps as a flow on a quiet API)")

    def fmt(group: str) -> str:
        return "n/a" if not retries.available else f"{spent[group][0]} ({spent[group][1]:.1f} s)"

    print(f"Prefect client back-offs (HTTP 503 'database is locked' and the like): quiet {fmt('quiet')} over "
          f"{2 * args.repeat} flows; back to back {fmt('busy')} over {BACK_TO_BACK} flows")
    inline_step = inline_n.median / n
    per = [
        ("quiet API: flow / n (what a user pays)", quiet_n.median / n),
        ("back to back: flow / n", busy_n.median / n),
        ("marginal: (flow_n - flow_1) / (n - 1)", (quiet_n.median - quiet_1.median) / (n - 1)),
        ("  of which mlflowkit's Runner (run_inline / n)", inline_step),
    ]
    print_table(("per step", "median"), [[k, fmt_seconds(v)] for k, v in per], title="per step")
    print(f"fixed cost of one flow run (1-step flow - one inline step): {fmt_seconds(quiet_1.median - inline_step)}")
    print()
    for label, value in per[:2]:
        ms = value * 1e3
        print(f"goal <= {GOAL_MS:.0f} ms/step, {label.split(':')[0]}: {'MET' if ms <= GOAL_MS else 'MISSED'} ({ms:.1f} ms/step)")
    if retries.available:
        print(f"goal: no back-off in {BACK_TO_BACK} back-to-back flows: {'MET' if spent['busy'][0] == 0 else 'MISSED'}")


if __name__ == "__main__":
    main()
