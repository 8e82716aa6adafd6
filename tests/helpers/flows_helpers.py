"""Shared by the monitoring and scheduling tests: the churn generator, and a `mlflowkit flows serve` process.

Imported after putting tests/helpers on sys.path.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[2]


def churn_rows(rows: int, seed: int) -> pd.DataFrame:
    """Rows from the reference example's generator (examples/churn/make_data.py), without the id column."""
    spec = importlib.util.spec_from_file_location("churn_make_data", REPO / "examples" / "churn" / "make_data.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    frame: pd.DataFrame = module.make(rows, seed=seed).drop(columns=["customer_id"])
    return frame


@contextlib.contextmanager
def flows_serve(folder: Path, api: str) -> Iterator[subprocess.Popen[str]]:
    """`mlflowkit flows serve FOLDER` against ``api`` in its own process group (log in FOLDER/serve.log); stopped after."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_HOME"} | {"PREFECT_API_URL": api}
    log = open(folder / "serve.log", "w")  # closed below
    proc = subprocess.Popen(
        [sys.executable, "-c", "from mlflowkit.cli import main; main()", "flows", "serve", str(folder)],
        cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
