"""The Plan: a frozen, deterministic DAG of steps, and ways to look at it (tree, Mermaid, JSON)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Plan", "PlanStep"]


class PlanStep(BaseModel):
    """One node of the plan: which kind runs, with which params, after which steps."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Unique step name; also the Prefect task name.")
    kind: str = Field(description="The registered step kind that runs it.")
    params: dict[str, Any] = Field(description="The kind's validated params, as JSON.")
    needs: tuple[str, ...] = Field(description="Steps whose outputs this one reads.")
    section: str = Field(description="The spec section it comes from (`steps[i]` for custom steps).")
    retries: int = Field(0, description="Retries after a failure.")
    retry_delay: float = Field(0.0, description="Seconds between retries.")
    timeout: float | None = Field(None, description="Seconds before the step is failed.")
    cache: bool = Field(True, description="Whether stored outputs may be reused.")
    key: str = Field(description="Static cache key: kind, code version, params and the keys of the steps it needs.")


class Plan(BaseModel):
    """A compiled spec. Steps are in a deterministic topological order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    spec_hash: str
    recipe: str
    model: str = Field(description="The registered model this plan produces.")
    params: dict[str, Any] = Field(default_factory=dict, description="The run's params (Prefect flow parameters).")
    steps: tuple[PlanStep, ...]

    def step(self, name: str) -> PlanStep:
        """The step called ``name``."""
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"no step {name!r} in plan {self.name!r} (steps: {', '.join(s.name for s in self.steps)})")

    def downstream(self, name: str) -> list[str]:
        """``name`` and every step that depends on it, directly or not, in plan order."""
        self.step(name)
        found = {name}
        for step in self.steps:
            if found.intersection(step.needs):
                found.add(step.name)
        return [s.name for s in self.steps if s.name in found]

    def to_json(self) -> str:
        """The plan as canonical JSON (sorted keys), fit for golden-file tests."""
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True)

    def to_mermaid(self) -> str:
        """A Mermaid flowchart of the steps, labelled with their kinds."""
        ids = {s.name: f"s{i}" for i, s in enumerate(self.steps)}
        lines = ["flowchart TD"]
        for step in self.steps:
            lines.append(f'    {ids[step.name]}["{step.name}<br/><small>{step.kind}</small>"]')
        for step in self.steps:
            for need in step.needs:
                lines.append(f"    {ids[need]} --> {ids[step.name]}")
        return "\n".join(lines)

    def to_tree(self) -> str:
        """An indented text tree: each step under the first step it needs; other needs noted."""
        children: dict[str, list[str]] = {s.name: [] for s in self.steps}
        roots = []
        for step in self.steps:
            if step.needs:
                children[step.needs[-1]].append(step.name)
            else:
                roots.append(step.name)
        lines = [f"{self.name}  (recipe {self.recipe}, model {self.model}, spec {self.spec_hash[:12]})"]

        def walk(name: str, prefix: str, last: bool) -> None:
            step = self.step(name)
            also = list(step.needs[:-1])
            extra = f"  (also needs {', '.join(also)})" if also else ""
            lines.append(f"{prefix}{'└── ' if last else '├── '}{name} [{step.kind}] key {step.key[:12]}{extra}")
            kids = children[name]
            for i, kid in enumerate(kids):
                walk(kid, prefix + ("    " if last else "│   "), i == len(kids) - 1)

        for i, root in enumerate(roots):
            walk(root, "", i == len(roots) - 1)
        return "\n".join(lines)
