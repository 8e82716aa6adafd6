"""A cold ``mlflowkit run`` of the churn example against a cached rerun of it (goal: cached / cold ≤ 0.20).

Cold: a copy of ``examples/churn/`` with no store and a fresh PREFECT_HOME, so the run starts the
embedded Prefect API and every step does its work. Cached: the same spec again on that store, so
every step is taken from the cache (and no flow run is needed). Both are fresh ``mlflowkit run``
processes, which is what a user feels. ``mlflowkit validate`` on the same spec is shown as the floor
of any command. The run records in the store split the cold time into steps and everything else.

    python bench/cold_vs_cached.py --repeat 5
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402 - after the path insert, so the script runs from anywhere
    MLFLOWKIT,
    REPO,
    TIMING_HEADERS,
    Timing,
    bench_env,
    fmt_seconds,
    header,
    parse_args,
    print_table,
    ratio,
    scratch_dir,
    timing_rows,
)

GOAL = 0.20
EXAMPLE = REPO / "examples" / "churn"
# Lines on stderr that a user would take for trouble (Prefect's own shutdown noise, say).
TROUBLE = re.compile(r"\b(ERROR|CRITICAL|Traceback)\b")


def run(cmd: list[str], env: dict[str, str], cwd: Path, expect: str) -> tuple[float, list[str]]:
    """Wall time of one ``mlflowkit`` process, checked by a phrase in its output; and its trouble lines."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0 or expect not in proc.stdout:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode} without {expect!r}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return elapsed, [line for line in proc.stderr.splitlines() if TROUBLE.search(line)]


def last_record(store: Path) -> dict:
    """The newest run record in the store."""
    records = [json.loads(p.read_text()) for p in (store / "runs").glob("*.json")]
    return max(records, key=lambda r: r["started_at"])


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], default_repeat=3,
                      extra=lambda p: p.add_argument("--cached-per-cold", type=int, default=3,
                                                     help="cached reruns after each cold run (default 3)"))
    tmp = scratch_dir(args.keep)
    work = tmp / "churn"
    shutil.copytree(EXAMPLE, work, ignore=shutil.ignore_patterns(".mlflowkit", "__pycache__"))
    store = work / ".mlflowkit"
    header("cold vs cached: `mlflowkit run spec.yaml` on a copy of examples/churn, fresh processes", args.repeat)

    cmd_run, cmd_validate = [*MLFLOWKIT, "run", "spec.yaml"], [*MLFLOWKIT, "validate", "spec.yaml"]
    cold, cached, validate = Timing("cold run (no store, fresh PREFECT_HOME)"), Timing("cached rerun"), Timing("validate (floor)")
    run_seconds, step_seconds, steps = Timing("run_spec"), Timing("steps"), {}
    trouble: dict[str, list[str]] = {"cold": [], "cached": []}
    for i in range(args.repeat + 1):  # the first round warms the OS file cache and the bytecode cache; not timed
        shutil.rmtree(store, ignore_errors=True)
        env = bench_env(tmp, prefect_home=tmp / f"prefect-{i}")
        elapsed, lines = run(cmd_run, env, work, expect="Prefect flow run")
        record = last_record(store)
        if any(s["status"] != "ran" for s in record["steps"]):
            raise RuntimeError(f"cold run did not run every step: {[(s['name'], s['status']) for s in record['steps']]}")
        if i == 0:
            continue
        cold.samples.append(elapsed)
        trouble["cold"] += lines
        run_seconds.samples.append(record["seconds"])
        step_seconds.samples.append(sum(s["seconds"] for s in record["steps"]))
        for s in record["steps"]:
            steps.setdefault(s["name"], Timing(s["name"])).samples.append(s["seconds"])
        for _ in range(args.cached_per_cold):
            elapsed, lines = run(cmd_run, env, work, expect="all steps cached; no flow run needed")
            cached.samples.append(elapsed)
            trouble["cached"] += lines
        validate.samples.append(run(cmd_validate, env, work, expect="valid")[0])

    print_table(TIMING_HEADERS, timing_rows([cold, cached, validate], cold), title="wall time (baseline: the cold run)")
    share = cached.median / cold.median
    print()
    print(f"cached / cold: {share:.3f} ({ratio(cold.median, cached.median)} faster)")
    print(f"goal cached / cold ≤ {GOAL:.2f}: {'MET' if share <= GOAL else 'MISSED'}")
    print(f"cached - validate: {fmt_seconds(cached.median - validate.median)} (what a cached run adds to loading the spec)")

    rows = [["whole process (wall)", fmt_seconds(cold.median), "100%"],
            ["  before and after run_spec: interpreter, imports, load, compile, exit",
             fmt_seconds(cold.median - run_seconds.median), f"{100 * (cold.median - run_seconds.median) / cold.median:.0f}%"],
            ["  run_spec, outside the steps: Prefect import, API start, flow and task runs",
             fmt_seconds(run_seconds.median - step_seconds.median),
             f"{100 * (run_seconds.median - step_seconds.median) / cold.median:.0f}%"],
            ["  the steps themselves (sum)", fmt_seconds(step_seconds.median), f"{100 * step_seconds.median / cold.median:.0f}%"]]
    rows += [[f"    {t.label}", fmt_seconds(t.median), f"{100 * t.median / cold.median:.0f}%"] for t in steps.values()]
    print_table(("where the cold time goes (medians, from the run records)", "median", "share"), rows, title="cold run")
    for kind, lines in trouble.items():
        if lines:
            print(f"\n{kind} runs printed {len(lines)} trouble line(s) on stderr, e.g.: {lines[0][:160]}")


if __name__ == "__main__":
    main()
