"""What Prefect costs per step: a chain of 50 ``noop`` steps (no caching), through ``run_spec`` (goal: ≤ 25 ms/step).

Compared with 50 plain Python calls doing the same no-op work and with ``Runner.run_inline()`` (our own
machinery: cache keys, store writes, records; no Prefect). The one-off cost of ``import prefect`` and of
starting the ephemeral Prefect API is paid by a warm-up flow and reported on its own; a 1-step flow gives
the fixed cost of any flow run, so the per-step number is also shown as a marginal cost.

Flows are measured on a quiet API (``--pause`` seconds after the previous flow, as for a user's one run)
and back to back (as in a loop, a notebook or a test suite), where the embedded SQLite API may still be
recording the last flow's task runs. A diagnostic variant runs with Prefect's flow heartbeat thread off,
to show what it adds at the end of every flow run.

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
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
    ratio,
    scratch_dir,
    timing_rows,
)

GOAL_MS = 25.0


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


def plain_chain(steps: int) -> None:
    """The same work as the noop kind, as plain calls: each step passes its inputs on."""

    def noop(inputs: dict[str, Any]) -> dict[str, Any]:
        return dict(inputs)

    outputs: dict[str, Any] = {}
    for _ in range(steps):
        outputs = noop(outputs)


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


@contextmanager
def heartbeat_off() -> Iterator[None]:
    """Run flows without Prefect's flow-run heartbeat thread (the setting is None: no thread)."""
    import prefect.settings

    setting = getattr(prefect.settings, "PREFECT_FLOWS_HEARTBEAT_FREQUENCY", None)
    with prefect.settings.temporary_settings(updates={setting: None}) if setting is not None else nullcontext():
        yield


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
        parser.add_argument("--profile", action="store_true",
                            help="also cProfile one quiet flow (heartbeat off) and print the top costs")

    args = parse_args(__doc__.splitlines()[0], default_repeat=5, extra=extra)
    tmp = scratch_dir(args.keep)
    # In-process run: Prefect reads these at import; its ephemeral API server (a subprocess) inherits them.
    os.environ.pop("PREFECT_API_URL", None)
    os.environ.update(PREFECT_HOME=str(tmp / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
                      PREFECT_LOGGING_LEVEL="WARNING")  # the CLI's default without --verbose
    n = args.steps
    header(f"orchestration overhead: a chain of {n} noop steps (cache: false), in process", args.repeat)

    from mlflowkit.plan.compile import compile_spec
    from mlflowkit.runtime.engine import run_spec
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

    # One-off start-up: import prefect, then the first flow (starts the ephemeral API server).
    start = time.perf_counter()
    import prefect  # noqa: F401 - timing the import is the point

    import_prefect = time.perf_counter() - start
    retries = RetryCounter()
    first = Timing("first flow")
    orchestrated(1, first, pause=0)

    quiet_1, quiet_n = Timing("Prefect, 1 step, quiet API"), Timing(f"Prefect, {n} steps, quiet API")
    busy_n = Timing(f"Prefect, {n} steps, back to back")
    nohb_1, nohb_n = Timing("  diagnostic: 1 step, heartbeat off"), Timing(f"  diagnostic: {n} steps, heartbeat off")
    inline_n, plain_n = Timing(f"Runner.run_inline, {n} steps"), Timing(f"{n} plain Python calls")
    spent = dict.fromkeys(("quiet", "busy", "nohb"), (0, 0.0))

    def counted(group: str, fn: Callable[[], None]) -> None:
        """Run ``fn`` and add the client back-offs it met to ``group``."""
        count, seconds = retries.count, retries.seconds
        fn()
        spent[group] = (spent[group][0] + retries.count - count, spent[group][1] + retries.seconds - seconds)

    inline(n, Timing("warm-up"))  # kinds loaded, store folders made
    loops = 2000
    for _ in range(args.repeat):  # interleaved, so a slow spell of the machine hits every measurement
        counted("quiet", lambda: orchestrated(1, quiet_1))
        counted("quiet", lambda: orchestrated(n, quiet_n))
        counted("busy", lambda: orchestrated(n, busy_n, pause=0))  # right after the previous flow
        with heartbeat_off():
            counted("nohb", lambda: orchestrated(1, nohb_1))
            counted("nohb", lambda: orchestrated(n, nohb_n))
        inline(n, inline_n)
        start = time.perf_counter()
        for _ in range(loops):
            plain_chain(n)
        plain_n.samples.append((time.perf_counter() - start) / loops)

    print_table(("one-off start-up (not in the per-step numbers)", "seconds"), [
        ["import prefect", f"{import_prefect:.2f}"],
        ["first flow (1 step): ephemeral API start + first flow run", f"{first.samples[0]:.2f}"],
        ["  of which API start-up (first flow - median quiet 1-step flow)", f"{first.samples[0] - quiet_1.median:.2f}"],
    ], title="start-up")

    rows = timing_rows([quiet_n, quiet_1, busy_n, nohb_n, nohb_1, inline_n, plain_n], plain_n)
    print_table(TIMING_HEADERS, rows, title=f"whole chain (baseline: {n} plain Python calls)")

    def fmt(group: str) -> str:
        return "n/a" if not retries.available else f"{spent[group][0]} ({spent[group][1]:.1f} s)"

    print(f"Prefect client back-offs (HTTP 503 'database is locked' and the like): quiet {fmt('quiet')}, "
          f"back to back {fmt('busy')}, heartbeat off {fmt('nohb')}; over {args.repeat} repetitions")

    plain_step = plain_n.median / n
    inline_step = inline_n.median / n
    per = [
        ("as shipped, quiet API, amortized: flow / n", quiet_n.median / n),
        ("as shipped, back to back, amortized", busy_n.median / n),
        ("heartbeat off, amortized", nohb_n.median / n),
        ("as shipped, marginal (whole seconds: see the heartbeat below)", (quiet_n.median - quiet_1.median) / (n - 1)),
        ("heartbeat off, marginal (the real cost of one more task)", (nohb_n.median - nohb_1.median) / (n - 1)),
        ("  of which mlflowkit's Runner (run_inline / n)", inline_step),
        ("  of which Prefect (marginal - Runner)", (nohb_n.median - nohb_1.median) / (n - 1) - inline_step),
        ("plain Python call", plain_step),
    ]
    print_table(("per step", "median", "vs plain call"), [[k, fmt_seconds(v), ratio(v, plain_step)] for k, v in per],
                title="per step")
    print_table(("fixed cost of one flow run", "median"), [
        ["as shipped (1-step flow - one inline step)", fmt_seconds(quiet_1.median - inline_step)],
        ["heartbeat off", fmt_seconds(nohb_1.median - inline_step)],
        ["heartbeat thread join at flow end (on - off)", fmt_seconds(quiet_1.median - nohb_1.median)],
    ], title="per flow run")
    print()
    print(f"Prefect / inline (whole chain, as shipped, quiet): {ratio(quiet_n.median, inline_n.median)}")
    for label, value in per[:3]:  # the marginal as-shipped number is rounded by the heartbeat: not a verdict
        ms = value * 1e3
        print(f"goal ≤ {GOAL_MS:.0f} ms/step, {label.split(':')[0]}: {'MET' if ms <= GOAL_MS else 'MISSED'} "
              f"({ms:.1f} ms/step, {ms / GOAL_MS:.2f}x the goal)")
    if args.profile:
        with heartbeat_off():
            time.sleep(args.pause)
            profile_flow(lambda: run_spec(specs[n], plans[n], orchestrate=True))


if __name__ == "__main__":
    main()
