"""Load a spec: safe YAML, recipe defaults, interpolation, per-kind validation, cross-field checks.

Every problem of a file is collected and raised together as one :class:`SpecError`, each issue at
the file, line and column it comes from (the spec, the recipe, or a ``--set`` override).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from mlflowkit.errors import PluginError, SpecError, SpecIssue
from mlflowkit.spec._validate import issues_from_validation
from mlflowkit.spec._yaml import LoadedYaml, load_yaml_file, load_yaml_text
from mlflowkit.spec.interpolate import interpolate
from mlflowkit.spec.models import SpecBase, spec_model
from mlflowkit.spec.recipe import find_recipe, load_recipe
from mlflowkit.spec.sources import Sources, YamlPath

__all__ = ["Sources", "SpecRules", "load_spec", "load_spec_text", "parse_overrides"]



class SpecRules(Protocol):
    """Rules from above the spec wing that a loaded spec is checked against with its own (the operations policy)."""

    def issues(self, spec: SpecBase) -> list[SpecIssue]:
        """Every way ``spec`` breaks the rules, each located in the spec."""
        ...


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["params.n=3", "params.name=x"]`` -> ``{"n": 3, "name": "x"}``; values are YAML scalars."""
    out: dict[str, Any] = {}
    issues = []
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.startswith("params.") or len(key) <= len("params."):
            issues.append(SpecIssue(f"cannot parse {item!r}: expected params.NAME=VALUE", "", "<--set>"))
            continue
        try:
            value = load_yaml_text(f"v: {raw}" if raw.strip() else "v: ''", "<--set>").data["v"]
        except SpecError:
            value = raw  # not valid YAML as a scalar: take the text as it is
        out[key.removeprefix("params.")] = value
    if issues:
        raise SpecError(issues)
    return out


def _get(data: Any, dotted_path: str) -> Any:
    for part in dotted_path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _drop_unfollowed(defaults: dict[str, Any], data: dict[str, Any], section: str, follow: Mapping[str, tuple[str, ...]]) -> None:
    """Drop the recipe's defaults that belong with a default the spec replaced (see ``StepKind.defaults_follow``)."""
    recipe_section, spec_section = _get(defaults, section), _get(data, section)
    if not isinstance(recipe_section, dict) or not isinstance(spec_section, dict):
        return
    for anchor, followers in follow.items():
        if anchor in spec_section and spec_section[anchor] != recipe_section.get(anchor):
            for name in followers:
                recipe_section.pop(name, None)


def _merge(defaults: Any, override: Any) -> Any:
    """Deep-merge mappings into a new structure; anything else in the spec replaces the default whole.

    Nothing is shared with either input, so later in-place edits never reach the recipe or the YAML.
    """
    if isinstance(defaults, dict) and isinstance(override, dict):
        merged = copy.deepcopy(defaults)
        for key, value in override.items():
            merged[key] = _merge(defaults[key], value) if key in defaults else copy.deepcopy(value)
        return merged
    return copy.deepcopy(override)


def load_spec(
    path: str | os.PathLike[str],
    *,
    overrides: Iterable[str] | Mapping[str, Any] = (),
    env: Mapping[str, str] | None = None,
    rules: SpecRules | None = None,
    read_data: bool = True,
) -> SpecBase:
    """Load, resolve and validate the spec file at ``path``.

    Args:
        path: the YAML file.
        overrides: ``params.NAME=VALUE`` strings (as from ``--set``) or a mapping of param values.
        env: the environment for ``${env:NAME}``; defaults to ``os.environ``.
        rules: rules from outside the spec wing to check the spec against with its own checks, every issue
            reported at once (the operations policy: :func:`mlflowkit.load_spec` finds the one that governs
            the spec's folder and passes it here). Kinds read them as ``spec.rules``.
        read_data: check the data source (it exists, is a file) and the columns the spec names against its
            header, reading the header only; False skips that (data that exists only where the run happens).

    Returns:
        A frozen spec model; sections are attributes (``spec.train.estimator``).

    Raises:
        SpecError: with every issue found, each located in its file.
    """
    file = Path(path)
    display = os.path.relpath(file) if not file.is_absolute() or str(file).startswith(os.getcwd()) else str(file)
    loaded = load_yaml_file(file, display=display)
    return _resolve(loaded, file.resolve().parent, overrides=overrides, env=env, rules=rules, read_data=read_data)


def load_spec_text(
    text: str,
    file: str = "<string>",
    *,
    spec_dir: str | os.PathLike[str] | None = None,
    overrides: Iterable[str] | Mapping[str, Any] = (),
    env: Mapping[str, str] | None = None,
    rules: SpecRules | None = None,
    read_data: bool = True,
) -> SpecBase:
    """Like :func:`load_spec`, from text; relative paths resolve against ``spec_dir`` (default: cwd)."""
    folder = Path(spec_dir or os.getcwd()).resolve()
    return _resolve(load_yaml_text(text, file), folder, overrides=overrides, env=env, rules=rules, read_data=read_data)


def _resolve(
    source: LoadedYaml,
    spec_dir: Path,
    *,
    overrides: Iterable[str] | Mapping[str, Any],
    env: Mapping[str, str] | None,
    rules: SpecRules | None = None,
    read_data: bool = True,
) -> SpecBase:
    from mlflowkit.plugins import did_you_mean, kinds

    data: dict[str, Any] = source.data
    sources = Sources(source)
    issues: list[SpecIssue] = []

    # 1. The recipe fixes the stage graph; without it nothing else can be typed.
    recipe_name = data.get("recipe")
    if not isinstance(recipe_name, str):
        from mlflowkit.plugins import recipes

        message = "missing required key 'recipe'" if "recipe" not in data else f"recipe must be a name (got {recipe_name!r})"
        raise SpecError([sources.issue(("recipe",), message, hint=f"recipes: {', '.join(sorted(recipes().ok))}")])
    try:
        recipe, recipe_source = load_recipe(find_recipe(recipe_name, spec_dir))
    except KeyError as exc:
        message, hint = (*exc.args, "")[:2]
        raise SpecError([sources.issue(("recipe",), str(message), hint=str(hint))]) from None
    sources.recipe = recipe_source

    # 2. Which kind runs each stage: the section's `kind:`, else the recipe's default.
    registry = kinds()
    stage_kinds: dict[str, str] = {}
    failed: list[YamlPath] = []  # sections whose kind is unknown or broken: nothing can check them
    for stage_name, stage in recipe.stages.items():
        section = recipe.section_of(stage_name)
        raw = _get(data, section)
        kind = raw.get("kind", stage.kind) if isinstance(raw, dict) else stage.kind
        kind_path = (*section.split("."), "kind")
        if not isinstance(kind, str):
            issues.append(sources.issue(kind_path, f"kind must be a string (got {kind!r})"))
            failed.append(tuple(section.split(".")))
            continue
        try:
            registry.get(kind)
        except PluginError as exc:
            unknown = kind not in registry.names
            issues.append(
                sources.issue(
                    kind_path,
                    f"unknown kind {kind!r} for section {section!r}" if unknown else f"kind {kind!r} {exc.reason}",
                    hint=did_you_mean(kind, registry.names) or f"installed kinds: {', '.join(registry.names)}",
                )
            )
            failed.append(tuple(section.split(".")))
            continue
        stage_kinds[stage_name] = kind

    # 3. Defaults under the spec, bare lists into their list field, params and interpolation.
    defaults = copy.deepcopy(recipe.defaults)
    for stage_name, kind in stage_kinds.items():
        _drop_unfollowed(defaults, data, recipe.section_of(stage_name), registry.get(kind).defaults_follow)
    merged: dict[str, Any] = _merge(defaults, data)
    wrapped = sources.wrapped
    for stage_name, kind in stage_kinds.items():
        section_path = recipe.section_of(stage_name).split(".")
        parent = merged
        for part in section_path[:-1]:
            parent = parent.setdefault(part, {}) if isinstance(parent.get(part, {}), dict) else {}
        value = parent.get(section_path[-1])
        list_field = registry.get(kind).list_field
        if value is None:
            parent[section_path[-1]] = {}
        elif list_field and isinstance(value, list):
            parent[section_path[-1]] = {list_field: value}
            wrapped[tuple(section_path)] = list_field

    if isinstance(merged.get("schedule"), dict):  # one schedule written as a mapping: a list of one
        merged["schedule"] = [merged["schedule"]]
        sources.singletons.add(("schedule",))

    env = os.environ if env is None else env
    params = dict(merged.get("params") or {}) if isinstance(merged.get("params"), dict) else {}
    params = interpolate(params, {}, env, make_issue=sources.issue, issues=issues, path=("params",))
    override_values = dict(overrides) if isinstance(overrides, Mapping) else parse_overrides(overrides)
    for name, value in override_values.items():
        sources.overrides[("params", name)] = f"params.{name}={value}"
        if name not in params:
            known = sorted(params)
            hint = did_you_mean(name, known) or f"params: {', '.join(known) or 'none declared'}"
            message = f"--set names param {name!r}, which the spec does not declare"
            issues.append(sources.issue(("params", name), message, hint=hint))
        params[name] = value
    if "params" in merged:
        merged["params"] = params
    merged = {
        k: v if k == "params" else interpolate(v, params, env, make_issue=sources.issue, issues=issues, path=(k,))
        for k, v in merged.items()
    }

    # 4. Validate everything at once with the model assembled for this recipe and these kinds.
    sections = tuple(sorted((recipe.section_of(s), k) for s, k in stage_kinds.items()))
    model = spec_model(sections)
    for bad in failed:
        # The model has no type for a section of an unknown kind; validating it would only add a
        # misleading "unknown key" on top of the "unknown kind" already reported.
        _prune(merged, bad, [tuple(path.split(".")) for path, _ in sections])

    spec: SpecBase | None = None
    # Where the spec already has errors; with them left out, what remains is still checked below.
    broken: set[YamlPath] = set(failed)
    try:
        spec = model.model_validate(merged)
    except ValidationError as exc:
        found = issues_from_validation(exc, sources.issue, model, data=merged, loc_to_path=sources.yaml_path)
        # A reference that did not resolve left "" or None behind; what validation says about that is noise.
        unresolved = {(i.file, i.path) for i in issues}
        list_fields = {path: registry.get(kind).list_field for path, kind in sections}
        issues += [_list_section_hint(issue, list_fields) for issue in found if not _follows_from(issue, unresolved)]
        broken |= {_owner(tuple(err["loc"]), sections) for err in exc.errors(include_url=False)}
    if spec is None or issues:
        # 4b. Every error at once: validate again without the parts that failed, so that the cross-field
        # checks and the policy still look at everything else (a misspelt gate metric beside a bad split).
        broken |= {_owner(_model_loc(sources, issue.path), sections) for issue in issues}
        spec = _without(model, merged, broken, recipe_name)
    if spec is None:
        raise SpecError(_sorted(issues))

    spec._meta.update(
        path=source.file,
        spec_dir=str(spec_dir),
        recipe=recipe,
        stage_kinds=stage_kinds,
        sources=sources,
        hash=_hash(spec),
        read_data=read_data,
        rules=rules,
    )

    # 5. Cross-field checks run on the fully defaulted, validated spec; so do the rules from outside (the
    # operations policy), whose violations are reported with the other issues. Kinds read them as spec.rules.
    from mlflowkit.spec.checks import run_checks

    later = run_checks(spec, sources)
    if rules is not None:
        later += rules.issues(spec)
    issues += [issue for issue in later if not _under_any(issue.path, broken)]
    if issues or len(stage_kinds) < len(recipe.stages):
        raise SpecError(_sorted(issues))
    return spec


def _owner(loc: tuple[str | int, ...], sections: tuple[tuple[str, str], ...]) -> YamlPath:
    """The part of the spec an error at ``loc`` belongs to: the deepest section holding it, else its top-level key."""
    parts = tuple(str(p) for p in loc)
    owners = [tuple(path.split(".")) for path, _ in sections if parts[: len(path.split("."))] == tuple(path.split("."))]
    return max(owners, key=len) if owners else parts[:1]


def _model_loc(sources: Sources, dotted_path: str) -> tuple[str | int, ...]:
    """A reported issue's dotted path as a location in the model (a bare-list section has a list field there)."""
    parts: list[str | int] = [p for p in re.split(r"\.|\[|\]", dotted_path) if p]
    for prefix, list_field in sources.wrapped.items():
        if tuple(parts[: len(prefix)]) == prefix:
            return (*prefix, list_field, *parts[len(prefix) :])
    return tuple(parts)


# Top-level keys a spec cannot do without: replaced by a neutral value when they are wrong, so that the rest is checked.
_STAND_INS = {"spec": "mlflowkit/v1", "name": "invalid"}


def _without(model: type[SpecBase], merged: dict[str, Any], broken: set[YamlPath], recipe_name: str) -> SpecBase | None:
    """The spec validated without the ``broken`` parts (sections left out, top-level keys at neutral values), or None."""
    data = copy.deepcopy(merged)
    for path in sorted(broken, key=len):
        if not path or (len(path) == 1 and path[0] == "recipe"):
            continue
        if len(path) == 1 and path[0] in _STAND_INS:
            data[path[0]] = _STAND_INS[path[0]]
            continue
        parent: Any = data
        for part in path[:-1]:
            parent = parent.get(part) if isinstance(parent, dict) else None
        if isinstance(parent, dict):
            parent.pop(path[-1], None)
    data["recipe"] = recipe_name
    try:
        return model.model_validate(data)
    except ValidationError:
        return None  # what is left still fails: the errors already reported are all there is to say


def _under_any(dotted_path: str, places: set[YamlPath]) -> bool:
    """Whether ``dotted_path`` lies at or under one of ``places``."""
    for place in places:
        text = ".".join(map(str, place))
        if dotted_path == text or dotted_path.startswith((text + ".", text + "[")):
            return True
    return False


def _prune(data: dict[str, Any], path: YamlPath, keep: list[YamlPath]) -> None:
    """Remove the section at ``path`` from ``data``, keeping the sections nested in it that are in ``keep``."""
    parent: Any = data
    for part in path[:-1]:
        parent = parent.get(part) if isinstance(parent, dict) else None
    if not isinstance(parent, dict) or path[-1] not in parent:
        return
    value = parent[path[-1]]
    n = len(path)
    children = {p[n] for p in keep if len(p) > n and p[:n] == path}
    if isinstance(value, dict) and children:
        parent[path[-1]] = {k: v for k, v in value.items() if k in children}
    else:
        del parent[path[-1]]


def _follows_from(issue: SpecIssue, earlier: set[tuple[str, str]]) -> bool:
    """Whether ``issue`` is at or under the place of an issue already reported."""
    return any(
        issue.file == file and (issue.path == path or issue.path.startswith((path + ".", path + "["))) for file, path in earlier
    )


def _list_section_hint(issue: SpecIssue, list_fields: dict[str, str | None]) -> SpecIssue:
    """Tell how to write a section that may be a bare list (``gates: [...]``) when it was neither list nor mapping."""
    list_field = list_fields.get(issue.path)
    if not list_field or issue.hint or not issue.message.startswith("Input should be a mapping"):
        return issue
    name = issue.path.rsplit(".", 1)[-1]
    hint = f"write a list ({name}: [...]) or a mapping ({name}: {{{list_field}: [...]}})"
    return replace(issue, hint=hint)


def _hash(spec: SpecBase) -> str:
    # When it runs (how it is watched, where it is logged) is not what it is: a schedule, monitor or tracking
    # change keeps the hash (lineage, caches) as it was.
    exclude = {"schedule", "monitor", "tracking"}
    canonical = json.dumps(spec.model_dump(mode="json", exclude=exclude), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _sorted(issues: list[SpecIssue]) -> list[SpecIssue]:
    """Issues in reading order (``--set`` first, then by file and position), each once."""
    unique = list(dict.fromkeys(issues))  # a check may find the same problem twice (champion.x and x)
    return sorted(unique, key=lambda i: (i.file != "<--set>", i.file, i.line, i.col))
