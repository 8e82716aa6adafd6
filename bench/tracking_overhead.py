"""What logging to MLflow adds to the run a user waits for, with the server up, refused, and silent.

A scaffolded classification project (no data checks), one copy per case so that each has its own store
and outbox, run cold once (untimed), then timed as whole cached ``mlflowkit run`` processes, interleaved:

0. no tracking (the baseline);
1. ``MLFLOWKIT_TRACKING_URI`` at a real ``mlflow server`` (SQLite, on loopback; built in its own venv on
   first use): each run is logged (params, metrics, tags, report, ONNX model), its version looked up;
2. at a port nobody listens on: refused at once, the run queued in the outbox;
3. at a socket that accepts connections and never answers: one health check that times out (the
   default 5 s), the run queued.

    python bench/tracking_overhead.py --repeat 5
"""

from __future__ import annotations

import re
import shutil
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    MLFLOWKIT,
    TIMING_HEADERS,
    bench_env,
    header,
    load_average,
    parse_args,
    print_table,
    run_process,
    time_processes,
    timing_rows,
)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], default_repeat=5)
    header("tracking overhead: a cached `mlflowkit run` with and without logging to MLflow", args.repeat)
    from _common import scratch_dir

    from mlflowkit.scaffold import scaffold
    from mlflowkit.targets.triton_local import free_port
    from mlflowkit.tracking import local_server

    scratch = scratch_dir(args.keep)
    template = scratch / "template"
    scaffold("tabular-classification", template, name="churn")
    spec = template / "spec.yaml"
    spec.write_text(re.sub(r"(?ms)^checks:.*?(?=^train:)", "", spec.read_text()))
    server = local_server.up(scratch / "mlflow", port=free_port())
    silent = socket.create_server(("127.0.0.1", 0), backlog=64)  # accepts (the kernel does), never answers
    try:
        uris = {
            "0. no tracking": None,
            "1. MLflow server up": server.url,
            "2. server refused (nobody listens)": f"http://127.0.0.1:{free_port()}",
            "3. server silent (accepts, never answers)": f"http://127.0.0.1:{silent.getsockname()[1]}",
        }
        commands = []
        for i, (label, uri) in enumerate(uris.items()):
            folder = scratch / f"case{i}"
            shutil.copytree(template, folder)
            env = bench_env(scratch, prefect_home=folder / "prefect", **({"MLFLOWKIT_TRACKING_URI": uri} if uri else {}))
            run_process([*MLFLOWKIT, "run", "spec.yaml"], env=env, cwd=folder)  # cold, untimed
            commands.append((label, [*MLFLOWKIT, "run", "spec.yaml"], env, folder))
        print(f"load average before: {load_average()}")
        timings = time_processes(commands, args.repeat)
        print(f"load average after: {load_average()}")
        print_table(TIMING_HEADERS, timing_rows(timings, timings[0]), "cached `mlflowkit run` of a scaffolded project")
    finally:
        silent.close()
        local_server.down(scratch / "mlflow")


if __name__ == "__main__":
    main()
