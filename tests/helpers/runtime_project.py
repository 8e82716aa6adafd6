"""Small projects (a recipe of their own, a spec, data, user steps) that the runner executes without Prefect,
and a Progress that records what it is told."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

from mlflowkit.handoff import StepRecord
from mlflowkit.kinds.base import Advance, Report
from mlflowkit.plan.compile import compile_spec
from mlflowkit.plan.model import Plan, PlanStep
from mlflowkit.runtime.runner import Progress
from mlflowkit.spec.load import load_spec
from mlflowkit.spec.models import SpecBase

__all__ = ["CHAIN", "STEPS", "Project", "Recorder", "make_project"]

CHAIN = """\
recipe: chain
stages:
  load: {kind: load, section: data}
  first: {kind: python, needs: [load]}
  second: {kind: python, needs: [first]}
  last: {kind: noop, needs: [second]}
defaults:
  first: {uses: "chain_steps:first"}
  second: {uses: "chain_steps:second"}
  last: {}
"""
"""Four steps: load a table, two user functions (``chain_steps.py``), a noop."""

STEPS = """\
def first(df):
    df = df.copy()
    df["z"] = df["x"] * 2
    return df


def second(df):
    return df
"""

Project = Callable[..., tuple[SpecBase, Plan]]


def make_project(
    folder: Path,
    recipe: str = CHAIN,
    *,
    name: str = "chain",
    spec_extra: str = "",
    steps: str = STEPS,
    data: str = "",
    target: str = "y",
) -> tuple[SpecBase, Plan]:
    """Write a project into ``folder`` (its recipe under ``recipes/``) and return its loaded spec and plan."""
    (folder / "recipes").mkdir(parents=True, exist_ok=True)
    recipe_name = recipe.split("\n", 1)[0].split(":", 1)[1].strip()
    (folder / "recipes" / f"{recipe_name}.yaml").write_text(recipe)
    (folder / "chain_steps.py").write_text(steps)
    (folder / "t.csv").write_text(data or "x,y\n1,a\n2,b\n3,a\n4,b\n")
    spec = f"spec: mlflowkit/v1\nname: {name}\nrecipe: {recipe_name}\ndata: {{source: t.csv, target: {target}}}\n"
    (folder / "spec.yaml").write_text(spec + textwrap.dedent(spec_extra))
    loaded = load_spec(folder / "spec.yaml")
    return loaded, compile_spec(loaded)


class Recorder(Progress):
    """A Progress that keeps every event."""

    def __init__(self) -> None:
        self.startup: list[str] = []
        self.advances: list[Advance] = []
        self.started: list[str] = []
        self.finished: list[StepRecord] = []
        self.reports: list[Report] = []

    def step_started(self, step: PlanStep) -> None:
        self.started.append(step.name)

    def starting(self, what: str) -> None:
        self.startup.append(what)

    def step_progress(self, advance: Advance) -> None:
        self.advances.append(advance)

    def step_finished(self, record: StepRecord) -> None:
        self.finished.append(record)

    def report(self, report: Report) -> None:
        self.reports.append(report)
