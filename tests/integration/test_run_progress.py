"""``mlflowkit run`` in a CI log (stdout not a terminal): one plain line per event, and the same progress in Prefect's logs.

A tiny project (load, split, a 3-trial search on Ray) run by the CLI in a subprocess on the session's local
Prefect server; the flow run's logs are read back from that server.
"""

from __future__ import annotations

import json
import os
import random
import re
import textwrap
import urllib.request
from pathlib import Path

import pytest
from cli_run import run_cli

from mlflowkit.runtime.localapi import running_server

pytestmark = [pytest.mark.ray, pytest.mark.prefect, pytest.mark.slow]

RECIPE = """\
recipe: tiny-search
stages:
  load: {kind: load, section: data}
  split: {kind: split, section: data.split, needs: [load]}
  train: {kind: sklearn, needs: [split]}
defaults: {}
"""

SPEC = """\
spec: mlflowkit/v1
name: tiny-search
recipe: tiny-search
data:
  source: t.csv
  target: y
  split: {test_size: 0.25, seed: 1}
train:
  estimator: sklearn.linear_model.LogisticRegression
  search: {space: {C: [0.1, 1.0, 10.0]}, cv: 2, metric: accuracy, seed: 1}
"""


def _project(folder: Path) -> Path:
    (folder / "recipes").mkdir(parents=True)
    (folder / "recipes" / "tiny-search.yaml").write_text(RECIPE)
    rng = random.Random(1)
    rows = []
    for _ in range(60):
        a, b = rng.random(), rng.random()
        rows.append(f"{a:.3f},{b:.3f},{'yes' if a + b + rng.random() * 0.3 > 1.1 else 'no'}")
    (folder / "t.csv").write_text("x1,x2,y\n" + "\n".join(rows) + "\n")
    (folder / "spec.yaml").write_text(textwrap.dedent(SPEC))
    return folder


def _flow_run_logs(flow_run_id: str) -> list[dict[str, object]]:
    info = running_server(Path(os.environ["MLFLOWKIT_HOME"]))
    assert info is not None, "the session's local Prefect server is not running"
    body = json.dumps({"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200}).encode()
    request = urllib.request.Request(
        f"{info.url}/logs/filter", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return list(json.load(response))


def test_a_ci_log_gets_plain_lines_for_start_up_steps_and_trials_and_prefect_gets_the_trials(tmp_path: Path) -> None:
    project = _project(tmp_path / "tiny")
    done = run_cli(project, "run", "spec.yaml", timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "\x1b" not in out and "\r" not in out  # no spinner, no control codes: a log reads line by line
    lines = [line.strip() for line in out.splitlines()]
    # Start-up: what happens before the first step, one line each, in order.
    startup = ["loading spec.yaml", "checking the cache", "finding the local Prefect server", "importing Prefect"]
    startup.append("starting the flow run")
    assert [line for line in lines if line in startup] == startup, out
    assert lines.index("starting the flow run") < lines.index("→ load (load)")
    # Each step: a line when it starts and one when it is done.
    for step, kind in (("load", "load"), ("split", "split"), ("train", "sklearn")):
        assert f"→ {step} ({kind})" in lines, out
        assert any(re.fullmatch(rf"✓ {step} +ran +\d+\.\d\ds", line) for line in lines), out
    # Trials: done/total, the trial's score and the best so far, in the one number format (4 significant digits).
    trials = [line for line in lines if line.startswith("train: trials ")]
    assert [line.split(":")[1].strip() for line in trials] == ["trials 1/3", "trials 2/3", "trials 3/3"], out
    for line in trials:
        assert re.search(r": accuracy [01](\.\d{1,4})? \(trial [123]: C=[0-9.]+\); best so far [01](\.\d{1,4})? \(trial [123]\)$", line), line
    # The same lines in the flow run's logs in Prefect, at INFO.
    record = json.loads(next((project / ".mlflowkit" / "runs").glob("*.json")).read_text())
    logged = {str(entry["message"]): entry["level"] for entry in _flow_run_logs(record["flow_run_id"])}
    for line in trials:
        assert logged.get(line.removeprefix("train: ")) == 20, sorted(logged)
