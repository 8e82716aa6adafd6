"""Cross-field checks on the fully defaulted, validated spec: small registered functions, one concern each.

A check yields SpecIssues; :func:`run_checks` runs every registered check and gathers them all.
Kinds add their own section checks through ``StepKind.check`` (called by :func:`kind_sections`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from mlflowkit.errors import SpecIssue

if TYPE_CHECKING:
    from mlflowkit.spec.models import SpecBase
    from mlflowkit.spec.schedule import Schedule
    from mlflowkit.spec.sources import Sources

__all__ = ["CHECKS", "check", "run_checks", "store_problem"]

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
            yield sources.issue(_in_section(kind.list_field, section_path, rel), message, hint=hint)


def _in_section(list_field: str | None, section_path: str, rel: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """A path a kind gives relative to its section, as a path into the spec (into the list of a bare-list section)."""
    where = (list_field, *rel) if list_field is not None and rel and isinstance(rel[0], int) else tuple(rel)
    return (*section_path.split("."), *where)


def _upstream(spec: SpecBase) -> dict[str, set[str]]:
    """Every stage -> the stages that run before it (transitively), by the recipe's ``needs``."""
    stages = spec.recipe_def.stages
    before: dict[str, set[str]] = {}
    for name, stage in stages.items():  # a recipe lists a stage after everything it needs
        before[name] = set(stage.needs).union(*(before.get(n, set()) for n in stage.needs))
    return before


@check
def data_columns(spec: SpecBase, sources: Sources) -> Iterator[SpecIssue]:
    """The columns sections name (target, features, slices, fairness, checks) are in the data's header.

    A stage is checked only where its columns are known: no step before it may have changed them
    (a custom step, or a kind that does not keep its tables' columns).
    """
    from mlflowkit.plugins import did_you_mean, kinds

    registry = kinds()
    sections = {stage: spec.section(spec.recipe_def.section_of(stage)) for stage in spec.stage_kinds}
    provider = next(
        (
            (stage, columns)
            for stage, kind_name in spec.stage_kinds.items()
            if sections[stage] is not None
            and (columns := registry.get(kind_name).columns_provided(sections[stage], spec)) is not None
        ),
        None,
    )
    if provider is None:
        return
    source_stage, header = provider
    before = _upstream(spec)
    after_custom = {step.after for step in spec.steps}
    changes = {s for s in spec.recipe_def.stages if s in after_custom or s not in spec.stage_kinds}
    changes |= {s for s, k in spec.stage_kinds.items() if not registry.get(k).keeps_columns and s != source_stage}
    for step in spec.steps:  # a custom step after a custom step follows, in the end, a stage
        seen = {step.name}
        after = step.after
        while after not in spec.recipe_def.stages and after not in seen:
            seen.add(after)
            after = next((s.after for s in spec.steps if s.name == after), after)
        changes.add(after)
    source_name = getattr(sections[source_stage], "source", "the data")
    for stage, kind_name in spec.stage_kinds.items():
        section = sections[stage]
        if section is None or (stage != source_stage and (source_stage not in before[stage] or before[stage] & changes)):
            continue
        kind = registry.get(kind_name)
        section_path = spec.recipe_def.section_of(stage)
        for rel, column in kind.columns_read(section, spec):
            if column not in header:
                hint = did_you_mean(column, header) or f"columns: {', '.join(header[:20])}{', ...' if len(header) > 20 else ''}"
                where = _in_section(kind.list_field, section_path, rel)
                yield sources.issue(where, f"column {column!r} is not in {source_name}", hint=hint)


# Folders that hold the system itself: never a place for a project's artifacts and registry.
_SYSTEM_ROOTS = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/sbin", "/sys", "/usr")


def store_problem(location: str, spec_dir: str) -> str | None:
    """What keeps a local store ``location`` from holding artifacts; None when nothing does.

    A path relative to ``spec_dir`` is read from there. A remote store (``s3://...``) is not checked here:
    reaching it needs credentials the run has. ``runtime.locations.store_root`` asks the same of
    ``--store`` and ``$MLFLOWKIT_STORE``.
    """
    if "://" in location and not location.startswith("file://"):
        return None
    raw = location.removeprefix("file://")
    path = os.path.realpath(os.path.join(spec_dir, os.path.expanduser(raw)))
    if path == os.sep or any(path == root or path.startswith(root + os.sep) for root in _SYSTEM_ROOTS):
        return f"{raw} is a system folder ({path}), not a place for artifacts"
    if os.path.exists(path) and not os.path.isdir(path):
        return f"{raw} is a file, not a folder"
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{raw} cannot be written by this user ({existing} is not writable)"
    return None


@check
def store_location(spec: SpecBase, sources: Sources) -> Iterator[SpecIssue]:
    """A local ``store:`` is a folder this user can write, not a file or a system folder."""
    if spec.store is not None and (problem := store_problem(spec.store, spec.spec_dir)) is not None:
        hint = "point store: at a folder of the project's (or leave it out: .mlflowkit/ next to the spec)"
        yield sources.issue(("store",), problem, hint=hint)


@check
def schedules(spec: SpecBase, sources: Sources) -> Iterator[SpecIssue]:
    """Schedules set only declared params, and no two schedules share a name."""
    from mlflowkit.plugins import did_you_mean
    from mlflowkit.spec.schedule import slugs

    schedules: tuple[Schedule, ...] = getattr(spec, "schedule", ())
    declared = sorted(spec.params)
    seen: dict[str, int] = {}
    for i, (entry, slug) in enumerate(zip(schedules, slugs(schedules), strict=True)):
        for name in entry.params:
            if name not in spec.params:
                hint = did_you_mean(name, declared) or f"params: {', '.join(declared) or 'none declared'}"
                message = f"schedule sets param {name!r}, which the spec does not declare"
                yield sources.issue(("schedule", i, "params", name), message, hint=hint, prefer_key=True)
        if slug in seen:
            yield sources.issue(("schedule", i, "name"), f"two schedules are named {slug!r} (first: schedule[{seen[slug]}])")
        seen.setdefault(slug, i)
