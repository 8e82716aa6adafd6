"""Compile a validated spec into a Plan: recipe stages, custom steps placed, static cache keys.

Pure and deterministic: the same spec gives the same Plan, byte for byte. Imports no engine.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from mlflowkit._version import __version__
from mlflowkit.plan.model import Plan, PlanStep
from mlflowkit.spec.models import CONTROL_KEYS, SpecBase

__all__ = ["compile_spec"]


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def compile_spec(spec: SpecBase) -> Plan:
    """Turn a loaded spec into its Plan.

    Each recipe stage becomes a step with its kind's params (the section minus step controls and
    minus nested sections that other stages read). Each custom step is placed after the step it
    names, and the steps that followed that one now follow it.
    """
    from mlflowkit.plugins import kinds

    recipe = spec.recipe_def
    sections = {recipe.section_of(s) for s in recipe.stages}
    nodes: dict[str, dict[str, Any]] = {}
    for name, stage in recipe.stages.items():
        path = recipe.section_of(name)
        section = spec.section(path)
        dumped = section.model_dump(mode="json") if section is not None else {}
        nested = {p.rsplit(".", 1)[-1] for p in sections if p.startswith(path + ".") and "." not in p[len(path) + 1 :]}
        params = {k: v for k, v in dumped.items() if k not in CONTROL_KEYS and k not in nested}
        controls = dumped if section is not None else {}
        nodes[name] = {
            "kind": spec.stage_kinds[name],
            "params": params,
            "needs": list(stage.needs),
            "section": path,
            "retries": controls.get("retries") if controls.get("retries") is not None else stage.retries,
            "retry_delay": controls.get("retry_delay", 0.0),
            "timeout": controls.get("timeout") if controls.get("timeout") is not None else stage.timeout,
            "cache": controls.get("cache", True),
        }

    # Place custom steps: each goes after its anchor (after any custom step already placed there).
    tail = {name: name for name in nodes}
    pending = list(enumerate(spec.steps))
    while pending:
        progressed = False
        for item in list(pending):
            i, step = item
            if step.after not in tail:
                continue  # its anchor is a custom step not placed yet
            anchor = tail[step.after]
            for other in nodes.values():
                other["needs"] = [step.name if n == anchor else n for n in other["needs"]]
            nodes[step.name] = {
                "kind": "python",
                "params": {"uses": step.uses, "params": dict(step.params)},
                "needs": [anchor],
                "section": f"steps[{i}]",
                "retries": step.retries or 0,
                "retry_delay": 0.0,
                "timeout": step.timeout,
                "cache": step.cache,
            }
            tail[step.after] = step.name
            tail[step.name] = step.name
            pending.remove(item)
            progressed = True
        if not progressed:  # cycles and dangling references were refused at validate time
            raise AssertionError(f"unplaceable custom steps: {[s.name for _, s in pending]}")

    order = _topological(nodes, [*recipe.stages, *(s.name for s in spec.steps)])
    registry = kinds()
    keys: dict[str, str] = {}
    steps = []
    for name in order:
        node = nodes[name]
        kind = registry.get(node["kind"])
        keys[name] = _key(node["kind"], kind.code_version(), __version__, node["params"], [keys[n] for n in node["needs"]])
        steps.append(PlanStep(name=name, key=keys[name], **{**node, "needs": tuple(node["needs"])}))

    register = spec.section("register")
    model = getattr(register, "model", None) or spec.name
    return Plan(
        name=spec.name, spec_hash=spec.spec_hash, recipe=spec.recipe, model=model, params=dict(spec.params), steps=tuple(steps)
    )


def _topological(nodes: dict[str, dict[str, Any]], preference: list[str]) -> list[str]:
    """Kahn's algorithm; ties broken by declaration order, so the order is deterministic."""
    rank = {name: i for i, name in enumerate(preference)}
    done: list[str] = []
    remaining = set(nodes)
    while remaining:
        ready = sorted((n for n in remaining if all(d in done for d in nodes[n]["needs"])), key=rank.__getitem__)
        if not ready:
            raise AssertionError(f"cycle among {sorted(remaining)}")  # refused at validate time
        done.append(ready[0])
        remaining.remove(ready[0])
    return done
