"""Cross-field checks on the fully defaulted, validated spec: small registered functions, one concern each.

A check yields SpecIssues; :func:`run_checks` runs every registered check and gathers them all.
Kinds add their own section checks through ``StepKind.check`` (called by :func:`kind_sections`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from mlflowkit.errors import SpecIssue

if TYPE_CHECKING:
    from mlflowkit.spec.load import Sources
    from mlflowkit.spec.models import SpecBase

__all__ = ["CHECKS", "check", "run_checks"]

Check = Callable[["SpecBase", "Sources"], Iterator[SpecIssue]]
CHECKS: list[Check] = []


def check(fn: Check) -> Check:
    """Register a cross-field check."""
    CHECKS.append(fn)
    return fn


def run_checks(spec: SpecBase, sources: Sources) -> list[SpecIssue]:
    """Every issue from every registered check."""
    return [issue for fn in CHECKS for issue in fn(spec, sources)]


@check
def custom_step_names(spec: SpecBase, sources: Sources) -> Iterator[SpecIssue]:
    """Custom step names are unique and do not reuse a stage's name."""
    seen: dict[str, int] = {}
    for i, step in enumerate(spec.steps):
        if step.name in spec.recipe_def.stages:
            yield sources.issue(("steps", i, "name"), f"step name {step.name!r} is already a stage of recipe {spec.recipe!r}")
        elif step.name in seen:
            message = f"duplicate step name {step.name!r} (first used by steps[{seen[step.name]}])"
            yield sources.issue(("steps", i, "name"), message)
        seen.setdefault(step.name, i)


@check
def custom_step_references(spec: SpecBase, sources: Sources) -> Iterator[SpecIssue]:
    """Every ``after:`` names a stage or another custom step."""
    from mlflowkit.plugins import did_you_mean

    known = [*spec.recipe_def.stages, *(s.name for s in spec.steps)]
    for i, step in enumerate(spec.steps):
        if step.after not in known or step.after == step.name:
            what = "itself" if step.after == step.name else f"{step.after!r}, which is not a step"
            others = [k for k in known if k != step.name]
            hint = did_you_mean(step.after, others) or f"steps: {', '.join(others)}"
            yield sources.issue(("steps", i, "after"), f"step {step.name!r} is placed after {what}", hint=hint)


@check
def custom_step_cycles(spec: SpecBase, sources: Sources) -> Iterator[SpecIssue]:
    """Custom steps placed after each other do not form a cycle."""
    after = {s.name: s.after for s in spec.steps}
    reported: set[str] = set()
    for i, step in enumerate(spec.steps):
        chain = [step.name]
        current = step.after
        while current in after and current not in chain:
            chain.append(current)
            current = after[current]
        if current == step.name and step.name not in reported and step.after != step.name:
            reported.update(chain)
            cycle = " -> ".join([*chain, step.name])
            yield sources.issue(("steps", i, "after"), f"dependency cycle: {cycle}")


@check
def kind_sections(spec: SpecBase, sources: Sources) -> Iterator[SpecIssue]:
    """Each kind's own checks of its section (``StepKind.check``), located under the section.

    A check's path is relative to the validated section. For a kind with a ``list_field``, a path
    that starts with an index is into that list (``(2,)`` is ``rules[2]`` of ``gates``); either way
    it is reported as the YAML has it (``gates[2]`` for a bare list, ``gates.rules[2]`` for a mapping).
    """
    from mlflowkit.plugins import kinds

    for stage, kind_name in spec.stage_kinds.items():
        section_path = spec.recipe_def.section_of(stage)
        section = spec.section(section_path)
        if section is None:
            continue
        kind = kinds().get(kind_name)
        for rel, message, hint in kind.check(section, spec):
            into_list = kind.list_field is not None and bool(rel) and isinstance(rel[0], int)
            where = (kind.list_field, *rel) if into_list else tuple(rel)
            yield sources.issue((*section_path.split("."), *where), message, hint=hint)
