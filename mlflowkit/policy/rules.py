"""The policy's rules, checked against a resolved spec: small registered functions, one rule kind each.

Each rule reads the spec as plain data (every section as validated and defaulted), so that kinds and
deploy targets it has never heard of (a torch trainer, an edge target) are checked by the shape of
their fields. A violation is a :class:`PolicyIssue`: located in the spec, naming the policy rule's place.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from mlflowkit.errors import SpecIssue
from mlflowkit.policy.model import NormalRule, Policy, normal_rule

if TYPE_CHECKING:
    from mlflowkit.spec.models import SpecBase

__all__ = ["RULES", "PolicyIssue", "Subject", "check_spec", "check_subject", "rule", "subject_of"]

YamlPath = tuple[str | int, ...]


@dataclass(frozen=True)
class PolicyIssue(SpecIssue):
    """A spec that breaks a policy rule: located in the spec, with the rule's path and place in the policy.

    Attributes:
        rule: dotted path of the rule in the policy (``deploy.targets``).
        rule_where: ``file:line:col`` of the rule.
    """

    rule: str = ""
    rule_where: str = ""


@dataclass(frozen=True)
class Subject:
    """What the rules read: the resolved spec as plain data, which kind runs each section, and how to locate.

    Attributes:
        data: the spec as JSON (``model_dump(mode="json", by_alias=True)``).
        kinds: section path (``"data.split"``) -> kind name.
        issue: ``(spec path, message, hint, prefer_key) -> SpecIssue`` located in the spec.
        spec_dir: the spec's folder; relative locations resolve against it.
    """

    data: dict[str, Any]
    kinds: dict[str, str]
    issue: Callable[[YamlPath, str, str, bool], SpecIssue]
    spec_dir: str

    def section(self, dotted_path: str) -> Any:
        value: Any = self.data
        for part in dotted_path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value

    def sections_of(self, kind: str) -> list[tuple[YamlPath, Any]]:
        return [(tuple(p.split(".")), self.section(p)) for p, k in sorted(self.kinds.items()) if k == kind]

    def walk(self) -> Iterator[tuple[YamlPath, Any]]:
        """Every (path, value) under the sections and custom steps (not ``params``: those are plain values)."""

        def visit(path: YamlPath, value: Any) -> Iterator[tuple[YamlPath, Any]]:
            yield path, value
            if isinstance(value, dict):
                for key, item in value.items():
                    yield from visit((*path, key), item)
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    yield from visit((*path, i), item)

        for key, value in self.data.items():
            if key not in {"spec", "name", "description", "recipe", "params", "store"}:
                yield from visit((key,), value)

    def deploy_targets(self) -> list[tuple[YamlPath, dict[str, Any]]]:
        """Every deploy target entry (a mapping with a ``target:`` name inside a section's ``targets`` list)."""
        found = []
        for dotted_path in sorted(self.kinds):
            section = self.section(dotted_path)
            targets = section.get("targets") if isinstance(section, dict) else None
            for i, entry in enumerate(targets if isinstance(targets, list) else []):
                if isinstance(entry, dict) and isinstance(entry.get("target"), str):
                    where: YamlPath = (*dotted_path.split("."), "targets", i)
                    found.append((where, entry))
        return found


Rule = Callable[[Subject, Policy], Iterator[PolicyIssue]]
RULES: list[Rule] = []


def rule(fn: Rule) -> Rule:
    """Register a policy rule."""
    RULES.append(fn)
    return fn


def _violation(
    subject: Subject, policy: Policy, path: YamlPath, message: str, rule_path: YamlPath, *, hint: str = "", at_key: bool = False
) -> PolicyIssue:
    from mlflowkit.spec._yaml import dotted

    where = policy.where(rule_path)
    rule_name = dotted(rule_path)
    found = subject.issue(path, f"{message} (policy rule {rule_name} at {where})", hint, at_key)
    return PolicyIssue(
        message=found.message,
        path=found.path,
        file=found.file,
        line=found.line,
        col=found.col,
        hint=found.hint,
        snippet=found.snippet,
        rule=rule_name,
        rule_where=where,
    )


def check_subject(subject: Subject, policy: Policy) -> list[PolicyIssue]:
    """Every violation of every registered rule."""
    return [issue for fn in RULES for issue in fn(subject, policy)]


def subject_of(spec: SpecBase) -> Subject:
    """The plain-data view of a loaded spec that the rules read."""
    sources = spec.sources

    def issue(path: YamlPath, message: str, hint: str, prefer_key: bool) -> SpecIssue:
        yaml_path = sources.yaml_path(path)
        if any(yaml_path[:n] in sources.overrides for n in range(len(yaml_path), 0, -1)):
            return sources.issue(path, message, hint=hint, prefer_key=prefer_key)
        # Always the spec, even for a value the recipe supplied: that is where the user acts.
        return sources.spec.issue(yaml_path, message, hint=hint, prefer_key=prefer_key)

    kinds = {spec.recipe_def.section_of(stage): kind for stage, kind in spec.stage_kinds.items()}
    return Subject(spec.model_dump(mode="json", by_alias=True), kinds, issue, spec.spec_dir)


def check_spec(spec: SpecBase, policy: Policy) -> list[PolicyIssue]:
    """Every way ``spec`` breaks ``policy``, each located in the spec and naming the rule's place in the policy."""
    return check_subject(subject_of(spec), policy)


# ---------------------------------------------------------------------------------------------- modules

# Fields that name a class to import, whatever kind holds them; `model` counts only in `module:attr` form
# (register's `model:` is a plain name).
_IMPORT_KEYS = frozenset({"estimator", "model_class", "network", "module", "class_path"})
_IMPORT_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*(:[A-Za-z_][A-Za-z0-9_.]*)?$")


def module_allowed(module: str, prefixes: Sequence[str]) -> bool:
    """Whether ``module`` (``a.b.C`` or ``a.b``) lies in one of ``prefixes``, compared by whole dotted components.

    ``a.`` and ``a`` both mean package ``a``: it allows ``a.b.C`` but neither ``ab.C`` nor ``a_b.C``.
    """
    parts = module.split(".")
    for prefix in prefixes:
        want = [p for p in prefix.split(".") if p]
        if want and parts[: len(want)] == want:
            return True
    return False


def _shown(prefixes: list[str]) -> str:
    return ", ".join(p.rstrip(".") for p in prefixes) or "none"


@rule
def allowed_modules(subject: Subject, policy: Policy) -> Iterator[PolicyIssue]:
    """Estimators and custom steps come from the modules the policy allows."""
    estimators, steps = policy.modules.estimators, policy.modules.steps
    for path, value in subject.walk():
        if not path or not isinstance(path[-1], str) or not isinstance(value, str) or not _IMPORT_PATH.match(value):
            continue
        key = path[-1]
        if key == "uses" and steps is not None:
            module = value.partition(":")[0]
            if not module_allowed(module, steps):
                message = f"custom step module {module!r} is outside the modules the policy allows"
                yield _violation(subject, policy, path, message, ("modules", "steps"), hint=f"allowed: {_shown(steps)}")
        elif (
            (key in _IMPORT_KEYS or (key == "model" and ":" in value))
            and estimators is not None
            and ("." in value or ":" in value)
            and not module_allowed(value.partition(":")[0], estimators)
        ):
            message = f"{key} {value!r} is outside the modules the policy allows"
            yield _violation(subject, policy, path, message, ("modules", "estimators"), hint=f"allowed: {_shown(estimators)}")


# ---------------------------------------------------------------------------------------------- deploy

# Target fields that name where a model goes, even as a plain folder; any other string that is a URL or
# host:port counts too. `signing` names key material, not a destination.
_DESTINATION_KEYS = frozenset(
    {"url", "grpc_url", "model_repository", "location", "publish", "endpoint", "uri", "repository", "destination", "address"}
)
_HOST_PORT = re.compile(r"^[A-Za-z0-9.-]+:[0-9]+$")
_GLOB = re.compile(r"[*?\[]")


def _destinations(entry: dict[str, Any], path: YamlPath) -> Iterator[tuple[YamlPath, str]]:
    for key, value in entry.items():
        if key in {"target", "signing"}:
            continue
        if isinstance(value, dict):
            yield from _destinations(value, (*path, key))
        elif (
            isinstance(value, str)
            and value
            and not any(c.isspace() for c in value)
            and (key in _DESTINATION_KEYS or "://" in value or _HOST_PORT.match(value))
        ):
            yield (*path, key), value


def _under(value: str, pattern: str) -> bool:
    """``value`` lies at or under the URL ``pattern`` (``s3://models/`` holds ``s3://models/x``).

    Compared part by part, never as one string, so that a glob cannot reach across them: the scheme
    exactly, the host by glob (``triton-*.internal``), the port when the pattern has one, and the
    normalised path as a prefix or glob (``..`` cannot climb out of it).
    """
    v, p = urlparse(value), urlparse(pattern)
    if v.scheme.lower() != p.scheme.lower() or v.query or v.fragment:
        return False
    if not fnmatch.fnmatchcase((v.hostname or "").lower(), (p.hostname or "").lower()):
        return False
    try:
        want_port, port = p.port, v.port
    except ValueError:
        return False
    if want_port is not None and port != want_port:
        return False
    v_path = posixpath.normpath(unquote(v.path) or "/")
    p_path = posixpath.normpath(unquote(p.path) or "/")
    if _GLOB.search(p_path):
        return fnmatch.fnmatchcase(v_path, p_path) or fnmatch.fnmatchcase(v_path, p_path.rstrip("/") + "/*")
    return p_path in {"/", v_path} or v_path.startswith(p_path.rstrip("/") + "/")


def _host_port(value: str) -> tuple[str | None, int | None]:
    if "://" in value:
        parsed = urlparse(value)
        try:
            port = parsed.port
        except ValueError:
            port = None
        return parsed.hostname, port
    if _HOST_PORT.match(value):
        host, _, port_text = value.rpartition(":")
        return host, int(port_text)
    return None, None


def destination_allowed(value: str, patterns: list[str], *, spec_dir: str, policy_dir: str) -> bool:
    """Whether a target's URL, host:port or location matches one of the policy's destination patterns."""
    local = "://" not in value and not _HOST_PORT.match(value)
    if local:
        normal = Path(spec_dir, value).expanduser().resolve().as_uri()
    elif value.lower().startswith("file://"):  # resolved like a plain path: `..` cannot climb out
        normal = Path(unquote(urlparse(value).path)).resolve().as_uri()
    else:
        normal = value
    host, port = _host_port(value)
    for pattern in patterns:
        if "://" in pattern:
            if _under(normal, pattern):
                return True
        elif pattern.startswith(("/", ".", "~")):
            if _under(normal, Path(policy_dir, pattern).expanduser().resolve().as_uri()):
                return True
        elif host is not None and (
            fnmatch.fnmatchcase(host, pattern) or (port is not None and fnmatch.fnmatchcase(f"{host}:{port}", pattern))
        ):
            return True
    return False


@rule
def deploy_targets(subject: Subject, policy: Policy) -> Iterator[PolicyIssue]:
    """Deploy targets are of an allowed type, go to allowed destinations, and are signed where required."""
    allowed, patterns, signed = policy.deploy.targets, policy.deploy.destinations, policy.deploy.require_signing
    policy_dir = str(Path(str(policy._meta.get("path", "."))).parent)
    for path, entry in subject.deploy_targets():
        name = entry["target"]
        if allowed is not None and name not in allowed:
            message = f"deploy target {name!r} is not one the policy allows"
            yield _violation(
                subject, policy, (*path, "target"), message, ("deploy", "targets"), hint=f"allowed: {', '.join(allowed)}"
            )
        if patterns is not None:
            for where, value in _destinations(entry, path):
                if not destination_allowed(value, patterns, spec_dir=subject.spec_dir, policy_dir=policy_dir):
                    message = f"{where[-1]} {value!r} is not a destination the policy allows"
                    hint = f"allowed: {', '.join(patterns) or 'none'}"
                    yield _violation(subject, policy, where, message, ("deploy", "destinations"), hint=hint)
        if name in signed and not entry.get("signing"):
            message = f"a {name!r} deploy must be signed, and this one has no signing:"
            hint = "add signing: {key_file: PATH} or signing: {key_env: VAR}"
            index = signed.index(name)
            yield _violation(subject, policy, (*path, "target"), message, ("deploy", "require_signing", index), hint=hint)


# ---------------------------------------------------------------------------------------------- gates

_Interval = tuple[float, bool, float, bool]  # low, low included, high, high included
_INF = float("inf")


def _interval(r: NormalRule) -> _Interval | None:
    return {
        ">=": (r.value, True, _INF, False),
        ">": (r.value, False, _INF, False),
        "<=": (-_INF, False, r.value, True),
        "<": (-_INF, False, r.value, False),
        "==": (r.value, True, r.value, True),
    }.get(r.op)


def at_least_as_strict(have: NormalRule, required: NormalRule) -> bool:
    """Whether every value ``have`` lets pass, ``required`` lets pass too (same metric, same kind of baseline)."""
    if have.metric != required.metric or have.champion != required.champion:
        return False
    a, b = _interval(have), _interval(required)
    if a is None or b is None:
        return False
    low_ok = a[0] > b[0] or (a[0] == b[0] and (b[1] or not a[1]))
    high_ok = a[2] < b[2] or (a[2] == b[2] and (b[3] or not a[3]))
    return low_ok and high_ok


def _spec_rules(subject: Subject) -> list[tuple[YamlPath, NormalRule | None]]:
    from mlflowkit.gate_rules import GateRule, GateSyntaxError, rule_text

    found: list[tuple[YamlPath, NormalRule | None]] = []
    for path, section in subject.sections_of("gates"):
        rules = section.get("rules") if isinstance(section, dict) else None
        for i, raw in enumerate(rules if isinstance(rules, list) else []):
            try:
                text = rule_text(raw if isinstance(raw, str) else GateRule.model_validate(raw))
                found.append(((*path, "rules", i), normal_rule(text)))
            except (GateSyntaxError, ValueError):
                found.append(((*path, "rules", i), None))
    return found


@rule
def required_gates(subject: Subject, policy: Policy) -> Iterator[PolicyIssue]:
    """Specs have the gates the policy requires, with the same or a stricter threshold."""
    deploys_to = {entry["target"] for _, entry in subject.deploy_targets()}
    gates_sections = subject.sections_of("gates")
    spec_rules = _spec_rules(subject)
    for j, required in enumerate(policy.gates.require):
        if required.when is not None and required.when.deploys_to is not None and not deploys_to & set(required.when.deploys_to):
            continue
        want = normal_rule(required.rule)
        assert want is not None  # the policy model refuses rules without a normal form
        if any(have is not None and at_least_as_strict(have, want) for _, have in spec_rules):
            continue
        why = f" ({required.description})" if required.description else ""
        scope = f" for a spec that deploys to {', '.join(sorted(deploys_to))}" if required.when is not None else ""
        weaker = [(p, h) for p, h in spec_rules if h is not None and h.metric == want.metric and h.champion == want.champion]
        rule_path: YamlPath = ("gates", "require", j)
        if weaker:
            path = weaker[0][0]
            message = f"gate on {want.metric} is weaker than the policy requires{scope}: {required.rule!r}{why}"
            yield _violation(subject, policy, path, message, rule_path, hint=f"tighten it to {required.rule}")
        else:
            where: YamlPath = gates_sections[0][0] if gates_sections else ("gates",)
            message = f"the policy requires the gate {required.rule!r}{scope}{why}, and the spec has no such gate"
            yield _violation(subject, policy, where, message, rule_path, hint=f"add `- {required.rule}` to gates", at_key=True)


# ---------------------------------------------------------------------------------------------- checks

_CHECK_BLOCKS = frozenset({"schema", "rows", "target", "unique", "leakage", "suite"})


def _has_check(entries: list[Any], name: str) -> bool:
    """Whether ``entries`` hold the check ``name`` in a form that can stop a run.

    A check at ``severity: warn`` (or with ``mostly`` below 1) never stops one, so it does not count.
    """
    bare = name.removeprefix("expect_")
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        if entry.get("severity", "error") != "error":
            continue
        mostly = entry.get("mostly")
        if isinstance(mostly, int | float) and not isinstance(mostly, bool) and mostly < 1:
            continue
        if name in _CHECK_BLOCKS and entry.get(name) not in (None, "", [], {}):
            return True
        expect = entry.get("expect")
        if isinstance(expect, str) and expect.removeprefix("expect_") == bare:
            return True
    return False


@rule
def required_checks(subject: Subject, policy: Policy) -> Iterator[PolicyIssue]:
    """Specs run the data checks the policy requires."""
    sections = subject.sections_of("checks")
    entries: list[Any] = []
    for _, section in sections:
        found = section.get("expectations") if isinstance(section, dict) else None
        entries += found if isinstance(found, list) else []
    where: YamlPath = sections[0][0] if sections else ("checks",)
    for j, name in enumerate(policy.checks.require):
        if not _has_check(entries, name):
            message = f"the policy requires a {name!r} check that stops the run on failure, and checks has none"
            hint = f"add a `{name}:` block to checks" if name in _CHECK_BLOCKS else f"add `- expect: {name}` to checks"
            yield _violation(subject, policy, where, message, ("checks", "require", j), hint=hint, at_key=True)


# ---------------------------------------------------------------------------------------------- resources

_PER_TRIAL = {"num_cpus_per_trial": "cpus", "cpus_per_trial": "cpus", "num_gpus_per_trial": "gpus", "gpus_per_trial": "gpus"}
_PER_WORKER = {"num_cpus_per_worker": "cpus", "cpus_per_worker": "cpus", "num_gpus_per_worker": "gpus", "gpus_per_worker": "gpus"}
_RESOURCE_KEYS = {"cpu": "cpus", "cpus": "cpus", "num_cpus": "cpus", "gpu": "gpus", "gpus": "gpus", "num_gpus": "gpus"}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _resources(subject: Subject) -> Iterator[tuple[YamlPath, str, str, float]]:
    """(path, per trial|worker, cpus|gpus|workers, amount) for every resource request in the spec."""
    for path, value in subject.walk():
        key = path[-1] if path and isinstance(path[-1], str) else None
        if key is None:
            continue
        amount = _number(value)
        if amount is not None and key in _PER_TRIAL:
            yield path, "trial", _PER_TRIAL[key], amount
        elif amount is not None and key in _PER_WORKER:
            yield path, "worker", _PER_WORKER[key], amount
        elif amount is not None and key == "num_workers":
            yield path, "step", "workers", amount
        elif key == "use_gpu" and value is True:
            yield path, "worker", "gpus", 1.0
        elif key in {"resources_per_worker", "resources_per_trial", "resources"} and isinstance(value, dict):
            scope = "worker" if key == "resources_per_worker" else "trial"
            for name, raw in value.items():
                kind = _RESOURCE_KEYS.get(str(name).lower())
                number = _number(raw)
                if kind is not None and number is not None:
                    yield (*path, name), scope, kind, number


@rule
def resource_limits(subject: Subject, policy: Policy) -> Iterator[PolicyIssue]:
    """No trial or worker asks for more CPUs or GPUs, and no step for more workers, than the policy allows."""
    limits = policy.resources
    table: dict[tuple[str, str], tuple[float | None, str]] = {
        ("trial", "cpus"): (limits.max_cpus_per_trial, "max_cpus_per_trial"),
        ("trial", "gpus"): (limits.max_gpus_per_trial, "max_gpus_per_trial"),
        ("worker", "cpus"): (limits.max_cpus_per_worker, "max_cpus_per_worker"),
        ("worker", "gpus"): (limits.max_gpus_per_worker, "max_gpus_per_worker"),
        ("step", "workers"): (None if limits.max_workers is None else float(limits.max_workers), "max_workers"),
    }
    for path, scope, kind, amount in _resources(subject):
        limit, field = table[(scope, kind)]
        if limit is not None and amount > limit:
            per = "" if scope == "step" else f" per {scope}"
            message = f"asks for {amount:g} {kind}{per}; the policy allows at most {limit:g}"
            yield _violation(subject, policy, path, message, ("resources", field))


# ---------------------------------------------------------------------------------------------- registry


@rule
def signed_registry(subject: Subject, policy: Policy) -> Iterator[PolicyIssue]:
    """Under ``registry.require_signing``, a spec that registers versions runs only where a signing key is set."""
    import os

    from mlflowkit.store.trust import SIGNING_KEY_ENV

    if not policy.registry.require_signing or os.environ.get(SIGNING_KEY_ENV, "").strip():
        return
    for path, _ in subject.sections_of("register"):
        message = f"the policy requires signed model versions, and {SIGNING_KEY_ENV} is not set here"
        hint = f"set {SIGNING_KEY_ENV} to the registry's private key (a PEM file or its text); see docs/threat-model.md"
        yield _violation(subject, policy, path, message, ("registry", "require_signing"), hint=hint, at_key=True)
