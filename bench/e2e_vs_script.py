"""A cold ``mlflowkit run`` of examples/churn against the same work hand-written (bench/churn_script.py).

Goals (an idle 2-core machine): time ratio <= 1.3 and peak-memory ratio <= 1.3 after the first run on the
machine; process start -> first step <= 1.5 s; last step -> exit <= 0.3 s; a fully cached rerun <= 1.0 s.

Each round, interleaved: ``mlflowkit run`` on a fresh copy of the example (no store: every step works;
the user's local Prefect server already runs, as after any first run), then the script on the same
data. Both are whole processes, timed from outside, with their peak RSS (``ru_maxrss`` of a wrapper's
child). The script's metrics must equal mlflowkit's (accuracy, F1, ROC AUC, log loss, demographic
parity difference), or the benchmark fails. The run's report is written by a process of its own after
the run: the bench waits for it before the next command and shows its time apart. Then a cached rerun.
The first run on a new machine (a fresh MLFLOWKIT_HOME: the server starts and migrates its database)
is measured once, on its own.

    python bench/e2e_vs_script.py --repeat 5
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, Timing, bench_env, fmt_seconds, header, load_average, parse_args, print_table, scratch_dir

EXAMPLE = REPO / "examples" / "churn"
SCRIPT = Path(__file__).resolve().parent / "churn_script.py"
MLFLOWKIT = [sys.executable, "-c", "from mlflowkit.cli import main; main()"]
COMPARED = ("accuracy", "f1", "roc_auc", "log_loss", "demographic_parity_difference")
# Runs a command, prints (on stderr's last line) its children's peak RSS in kB; its own output passes through.
WRAP = "import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); " \
       "print('maxrss', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(rc)"  # fmt: skip


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, list[tuple[float, str]]]:
    """Wall seconds, peak RSS (MB) and the stdout lines with their arrival times (seconds after start)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", WRAP, *cmd], env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    assert proc.stderr is not None
    lines = [(time.perf_counter() - start, line.rstrip()) for line in proc.stdout]
    err = proc.stderr.read()
    proc.wait()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{cmd} failed ({proc.returncode}):\n" + "\n".join(t for _, t in lines[-20:]) + err[-2000:])
    rss = next(int(line.split()[1]) for line in reversed(err.splitlines()) if line.startswith("maxrss"))
    return wall, rss / 1024, lines


def mlflowkit_metrics(project: Path) -> tuple[dict[str, float], dict[str, object]]:
    """The evaluate step's metrics and the run record of the newest run in the project's store."""
    record = json.loads(sorted((project / ".mlflowkit" / "runs").glob("*.json"))[-1].read_text())
    evaluate = next(s for s in record["steps"] if s["name"] == "evaluate")
    return evaluate["outputs"]["metrics"]["meta"]["metrics"], record


def wait_report(project: Path, record: dict[str, object], timeout: float = 300) -> float:
    """Seconds until the run's report (written by a process of its own) is there."""
    start = time.perf_counter()
    path = project / ".mlflowkit" / str(record["report"])
    while not path.exists():
        if time.perf_counter() - start > timeout:
            raise SystemExit(f"no report at {path} after {timeout:.0f}s")
        time.sleep(0.05)
    return time.perf_counter() - start


def first_and_last(lines: list[tuple[float, str]], wall: float) -> tuple[float, float]:
    """Process start -> the first step starting; the last step finishing -> exit."""
    steps = [t for t, line in lines if line.lstrip().startswith(("→", "✓", "↺", "✗"))]
    done = [t for t, line in lines if line.lstrip().startswith("✓")]
    return steps[0], wall - done[-1]


def fresh_copy(tmp: Path, name: str) -> Path:
    dest = tmp / name
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns(".mlflowkit", "__pycache__"))
    return dest


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], default_repeat=5)
    tmp = scratch_dir(args.keep)
    env = bench_env(tmp, COLUMNS="200")  # MLFLOWKIT_HOME under tmp: the bench's own local server
    env.pop("PREFECT_HOME", None)  # the local server's, under MLFLOWKIT_HOME
    header("cold `mlflowkit run` of examples/churn against the same work hand-written", args.repeat)
    from mlflowkit.runtime.localapi import stop_server

    try:
        # The first run on a new machine: no server, no database yet.
        project = fresh_copy(tmp, "first")
        first_wall, first_rss, first_lines = timed([*MLFLOWKIT, "run", "spec.yaml"], env, project)
        first_step, _ = first_and_last(first_lines, first_wall)
        wait_report(project, mlflowkit_metrics(project)[1])

        rows: dict[str, Timing] = {k: Timing(k) for k in (
            "mlflowkit run, cold store", "hand-written script", "mlflowkit: start -> first step",
            "mlflowkit: last step -> exit", "report, written after the run (not waited for)", "cached rerun")}  # fmt: skip
        rss: dict[str, list[float]] = {"mlflowkit run, cold store": [], "hand-written script": []}
        for i in range(args.repeat):
            project = fresh_copy(tmp, f"run{i}")
            wall, peak, lines = timed([*MLFLOWKIT, "run", "spec.yaml"], env, project)
            metrics, record = mlflowkit_metrics(project)
            rows["report, written after the run (not waited for)"].samples.append(wait_report(project, record))
            to_first, to_exit = first_and_last(lines, wall)
            rows["mlflowkit run, cold store"].samples.append(wall)
            rows["mlflowkit: start -> first step"].samples.append(to_first)
            rows["mlflowkit: last step -> exit"].samples.append(to_exit)
            rss["mlflowkit run, cold store"].append(peak)

            wall, peak, lines = timed([sys.executable, str(SCRIPT), str(project), str(tmp / f"script{i}")], env, tmp)
            rows["hand-written script"].samples.append(wall)
            rss["hand-written script"].append(peak)
            theirs = json.loads(lines[-1][1])
            diff = {m: (metrics[m], theirs[m]) for m in COMPARED if abs(metrics[m] - theirs[m]) > 1e-9}
            if diff:
                raise SystemExit(f"the script's metrics differ from mlflowkit's: {diff}")

            wall, _, _ = timed([*MLFLOWKIT, "run", "spec.yaml"], env, project)
            rows["cached rerun"].samples.append(wall)
            print(f"round {i + 1}/{args.repeat} done (load {load_average()})", flush=True)
    finally:
        stop_server(tmp / "home")

    table = [[t.label, fmt_seconds(t.median), fmt_seconds(min(t.samples)), fmt_seconds(max(t.samples))] for t in rows.values()]
    print_table(("measurement", "median", "min", "max"), table, title="wall time, whole processes (interleaved)")
    mk, sc = rows["mlflowkit run, cold store"], rows["hand-written script"]
    med = {k: sorted(v)[len(v) // 2] for k, v in rss.items()}
    print(f"time ratio mlflowkit / script (medians): {mk.median / sc.median:.2f}x (goal <= 1.3)")
    print(f"peak RSS: mlflowkit {med['mlflowkit run, cold store']:.0f} MB, script {med['hand-written script']:.0f} MB, "
          f"ratio {med['mlflowkit run, cold store'] / med['hand-written script']:.2f}x (goal <= 1.3)")  # fmt: skip
    print(f"metrics equal in every round: {', '.join(COMPARED)}")
    print(f"first run on a new machine (server start and database migration included): {fmt_seconds(first_wall)}, "
          f"first step after {fmt_seconds(first_step)}, peak RSS {first_rss:.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
