"""run_spec: in process when asked, and a fully cached rerun with no orchestrator and no heavy import."""

from __future__ import annotations

import json
import subprocess
import sys

from runtime_project import Project

from mlflowkit.runtime.engine import run_spec

RERUN = """
import json, sys
from mlflowkit.plan.compile import compile_spec
from mlflowkit.runtime.engine import run_spec
from mlflowkit.spec.load import load_spec

spec = load_spec("spec.yaml")
result = run_spec(spec, compile_spec(spec))
heavy = sorted(m for m in ("prefect", "pandas", "matplotlib", "sklearn") if m in sys.modules)
print(json.dumps({"ok": result.ok, "orchestrated": result.orchestrated, "statuses": [s.status for s in result.steps], "heavy": heavy}))
"""


def test_a_fully_cached_rerun_starts_no_orchestrator_and_imports_nothing_heavy(project: Project) -> None:
    spec, plan = project()
    first = run_spec(spec, plan, orchestrate=False)
    assert first.ok and not first.orchestrated and [s.status for s in first.steps] == ["ran"] * 4
    out = subprocess.run([sys.executable, "-c", RERUN], cwd=spec.spec_dir, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    rerun = json.loads(out.stdout.strip().splitlines()[-1])
    assert rerun == {"ok": True, "orchestrated": False, "statuses": ["cached"] * 4, "heavy": []}


def test_the_runtime_modules_import_no_prefect() -> None:
    code = (
        "import sys, mlflowkit.runtime.engine, mlflowkit.runtime.runner, mlflowkit.runtime.record, mlflowkit.runtime.flow;"
        "print(sorted(m for m in ('prefect', 'pandas', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
