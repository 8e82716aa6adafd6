"""What Prefect costs per step: a chain of 50 ``noop`` steps (no caching), through ``run_spec`` (goal: ≤ 25 ms/step).

Compared with 50 plain Python calls doing the same no-op work and with ``Runner.run_inline()`` (our own
machinery: cache keys, store writes, records; no Prefect). The one-off cost of ``import prefect`` and of
starting the ephemeral Prefect API is paid by a warm-up flow and reported on its own; a 1-step flow gives
the fixed cost of any flow run, so the per-step number is also shown as a marginal cost.

    python bench/orchestration_overhead.py --repeat 5
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402 - after the path insert, so the script runs from anywhere
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


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], default_repeat=5, extra=lambda p: p.add_argument(
        "--steps", type=int, default=50, help="length of the chain (default 50)"))
    tmp = scratch_dir(args.keep)
    # In-process run: Prefect reads these at import; its ephemeral API server (a subprocess) inherits them.
    os.environ.pop("PREFECT_API_URL", None)
    os.environ.update(PREFECT_HOME=str(tmp / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
                      PREFECT_LOGGING_LEVEL="WARNING")  # the CLI's default without --verbose
    n = args.steps
    header(f"orchestration overhead: a chain of {n} noop steps (cache: false), in process", args.repeat)

    from mlflowkit.plan.compile import compile_spec
    from mlflowkit.run.engine import Runner, run_spec, store_root
    from mlflowkit.spec.load import load_spec

    specs = {k: load_spec(write_chain(tmp / f"chain{k}", k)) for k in (1, n)}
    plans = {k: compile_spec(s) for k, s in specs.items()}

    def orchestrated(k: int) -> float:
        start = time.perf_counter()
        result = run_spec(specs[k], plans[k], orchestrate=True)
        elapsed = time.perf_counter() - start
        ran = sum(r.status == "ran" for r in result.steps)
        if not result.ok or not result.orchestrated or ran != k:
            raise RuntimeError(f"expected {k} steps to run in Prefect; got {result.status}, {ran} ran: {result.error}")
        return elapsed

    def inline(k: int) -> float:
        runner = Runner(specs[k], plans[k], store_root(specs[k]))  # construction (a git call) is not per step
        start = time.perf_counter()
        runner.run_inline()
        elapsed = time.perf_counter() - start
        if any(r.status != "ran" for r in runner.records.values()):
            raise RuntimeError("a step did not run inline")
        return elapsed

    # One-off start-up: import prefect, then the first flow (starts the ephemeral API server).
    start = time.perf_counter()
    import prefect  # noqa: F401 - timing the import is the point

    import_prefect = time.perf_counter() - start
    first_flow = orchestrated(1)

    flow_1, flow_n = Timing("run_spec, 1 step, Prefect"), Timing(f"run_spec, {n} steps, Prefect")
    inline_n, plain_n = Timing(f"Runner.run_inline, {n} steps"), Timing(f"{n} plain Python calls")
    inline(n)  # warm: kinds loaded, store folders made
    loops = 2000
    for _ in range(args.repeat):  # interleaved, so a slow spell of the machine hits every measurement
        flow_1.samples.append(orchestrated(1))
        flow_n.samples.append(orchestrated(n))
        inline_n.samples.append(inline(n))
        start = time.perf_counter()
        for _ in range(loops):
            plain_chain(n)
        plain_n.samples.append((time.perf_counter() - start) / loops)

    print_table(("one-off start-up (not in the per-step numbers)", "seconds"), [
        ["import prefect", f"{import_prefect:.2f}"],
        ["first flow (1 step): ephemeral API start + first flow run", f"{first_flow:.2f}"],
        ["  of which start-up (first flow - median 1-step flow)", f"{first_flow - flow_1.median:.2f}"],
    ], title="start-up")

    print_table(TIMING_HEADERS, timing_rows([flow_n, flow_1, inline_n, plain_n], plain_n),
                title=f"whole chain (baseline: {n} plain Python calls)")

    per = {
        "Prefect, amortized: flow / steps": flow_n.median / n,
        "Prefect, marginal: (flow_n - flow_1) / (n - 1)": (flow_n.median - flow_1.median) / (n - 1),
        "Prefect overhead over inline: (flow_n - inline_n) / n": (flow_n.median - inline_n.median) / n,
        "Runner.run_inline: inline_n / n": inline_n.median / n,
        "plain Python call": plain_n.median / n,
    }
    plain_step = plain_n.median / n
    print_table(("per step", "median", "vs plain call"), [[k, fmt_seconds(v), ratio(v, plain_step)] for k, v in per.items()],
                title="per step")
    print()
    print(f"fixed cost of one flow run (1-step flow - one inline step): {fmt_seconds(flow_1.median - inline_n.median / n)}")
    print(f"Prefect / inline (whole chain): {ratio(flow_n.median, inline_n.median)}")
    amortized_ms = per["Prefect, amortized: flow / steps"] * 1e3
    marginal_ms = per["Prefect, marginal: (flow_n - flow_1) / (n - 1)"] * 1e3
    for label, value in (("amortized", amortized_ms), ("marginal", marginal_ms)):
        verdict = "MET" if value <= GOAL_MS else "MISSED"
        print(f"goal ≤ {GOAL_MS:.0f} ms/step ({label}): {verdict} ({value:.1f} ms/step, {value / GOAL_MS:.2f}x the goal)")


if __name__ == "__main__":
    main()
