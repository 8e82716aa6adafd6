"""How long ``mlflowkit validate examples/churn/spec.yaml`` takes as a fresh process (goal: < 0.5 s).

Baselines: a bare ``python -c "import yaml, pydantic"`` process (the start-up floor of any tool built
on those two) and an in-process ``load_spec`` call (the validation work itself, everything warm).
A breakdown run in a fresh process shows where the validate time goes.

    python bench/validate_latency.py --repeat 5
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
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
    time_call,
    time_processes,
    timing_rows,
)

GOAL = 0.5
SPEC = "examples/churn/spec.yaml"
HEAVY = ("prefect", "pandas", "sklearn", "numpy", "ray", "great_expectations", "onnxruntime", "fsspec", "pyarrow")

# Runs in a fresh process: the phases of `mlflowkit validate`, timed from inside, in import order.
BREAKDOWN = r"""
import json, sys, time
t = [time.perf_counter()]
import yaml, pydantic
t.append(time.perf_counter())
from pydantic import BaseModel
t.append(time.perf_counter())
import mlflowkit
t.append(time.perf_counter())
import mlflowkit.cli
t.append(time.perf_counter())
from mlflowkit.spec.load import load_spec
load_spec(sys.argv[1])
t.append(time.perf_counter())
load_spec(sys.argv[1])
t.append(time.perf_counter())
names = ["import yaml, pydantic (pydantic itself loads lazily)", "from pydantic import BaseModel (pydantic's real import)",
         "import mlflowkit (its models, spec.load, errors, kinds.base)", "import mlflowkit.cli (typer, rich)",
         "first load_spec (entry points, recipe, models, checks)", "second load_spec (all warm)"]
heavy = sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in sys.argv[2].split(",")})
print(json.dumps({"phases": dict(zip(names, [b - a for a, b in zip(t, t[1:])])), "heavy": heavy}))
"""


def yaml_of_200_lines() -> str:
    """A 200-line spec-like YAML text: mappings, flow collections, comments (what the parser sees in large specs)."""
    lines = ["spec: mlflowkit/v1", "name: churn", "recipe: tabular-classification"]
    i = 0
    while len(lines) < 200:
        lines += [f"step_{i}:", "  kind: sklearn  # a comment", f"  params: {{n_estimators: {i}, max_depth: [8, 16], on: raw}}",
                  "  checks:", f"    - {{column: c{i}, min: 0.5}}"]
        i += 1
    return "\n".join(lines[:200]) + "\n"


def breakdown(env: dict[str, str], repeat: int) -> tuple[list[Timing], list[str]]:
    phases: dict[str, Timing] = {}
    heavy: list[str] = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", BREAKDOWN, SPEC, ",".join(HEAVY)], env=env, cwd=REPO,
                             capture_output=True, text=True, check=True).stdout
        data = json.loads(out)
        heavy = data["heavy"]
        for name, seconds in data["phases"].items():
            phases.setdefault(name, Timing(name)).samples.append(seconds)
    return list(phases.values()), heavy


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], default_repeat=15)
    tmp = scratch_dir(args.keep)
    env = bench_env(tmp)  # bytecode cached (in the scratch dir), as in a user's install
    raw_env = bench_env(tmp, bytecode=False)  # PYTHONDONTWRITEBYTECODE=1, as this machine's shell sets it
    header("validate latency: `mlflowkit validate examples/churn/spec.yaml` as a fresh process", args.repeat)

    cmd = [*MLFLOWKIT, "validate", SPEC]
    bare, floor, floor_real, validate, validate_raw = time_processes([
        ("python -c pass", [sys.executable, "-c", "pass"], env, REPO),
        ('python -c "import yaml, pydantic"', [sys.executable, "-c", "import yaml, pydantic"], env, REPO),
        # `import pydantic` is lazy: BaseModel pulls in the real thing, which any validate must load.
        ("python -c ... from pydantic import BaseModel",
         [sys.executable, "-c", "import yaml; from pydantic import BaseModel"], env, REPO),
        ("mlflowkit validate (bytecode cached)", cmd, env, REPO),
        ("mlflowkit validate (no bytecode cache)", cmd, raw_env, REPO),
    ], args.repeat)

    from mlflowkit.spec.load import load_spec

    spec_path = REPO / SPEC
    in_process = time_call("load_spec in process (warm)", lambda: load_spec(spec_path), max(args.repeat, 20))
    from mlflowkit.spec._yaml import load_yaml_text

    text = yaml_of_200_lines()
    yaml_200 = time_call("load_yaml_text, a 200-line spec (goal < 5 ms)", lambda: load_yaml_text(text), max(args.repeat, 20))

    print_table(TIMING_HEADERS, timing_rows([bare, floor, floor_real, validate, validate_raw, in_process, yaml_200], floor),
                title='wall time (baseline: a python -c "import yaml, pydantic" process)')
    print()
    print(f"validate / start-up floor      : {ratio(validate.median, floor.median)}")
    print(f"validate / in-process load_spec: {ratio(validate.median, in_process.median)}")
    print(f"validate / floor with BaseModel: {ratio(validate.median, floor_real.median)}")
    print(f"validate - start-up floor      : {fmt_seconds(validate.median - floor.median)} (what mlflowkit adds)")
    print(f"no bytecode cache costs        : {fmt_seconds(validate_raw.median - validate.median)} more")
    for timing in (validate, validate_raw):
        met = timing.median < GOAL
        print(f"goal < {GOAL:.1f} s {timing.label[len('mlflowkit validate '):]:<20}: {'MET' if met else 'MISSED'} "
              f"(median {timing.median:.3f} s, {'margin' if met else 'over by'} {fmt_seconds(abs(GOAL - timing.median))})")

    phases, heavy = breakdown(env, args.repeat)
    first = [t for t in phases if not t.label.startswith("second")]
    total = sum(t.median for t in first)
    rows = [[t.label, fmt_seconds(t.median), f"{100 * t.median / total:.0f}%" if t in first else "-"] for t in phases]
    rows.append(["sum of the phases above (one fresh process)", fmt_seconds(total), "100%"])
    print_table(("phase (fresh process, bytecode cached, timed inside)", "median", "share"), rows,
                title="where the validate time goes after the interpreter starts; the rest is start-up, "
                      "typer dispatch, output and exit")
    print(f"heavy modules loaded by validate: {', '.join(heavy) or 'none'}")


if __name__ == "__main__":
    main()
