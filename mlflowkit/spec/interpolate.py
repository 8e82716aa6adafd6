"""``${env:NAME}``, ``${env:NAME:-default}`` and ``${params.NAME}`` in spec values.

A value that is exactly one reference keeps the referenced value's type (``${params.n}`` stays an
int); a reference inside a longer string is substituted as text. ``$${`` writes a literal ``${``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from mlflowkit.errors import SpecIssue

__all__ = ["SECRET_VARIABLES", "interpolate"]

# Variables that hold key material mlflowkit itself reads (the registry's signing key, `store.trust`). A
# spec may not copy them, nor any value holding a PEM private key: spec values land in run records, the
# report and registry lineage, which whoever reads the store can read.
SECRET_VARIABLES = frozenset({"MLFLOWKIT_SIGNING_KEY"})
_PRIVATE_PEM = "PRIVATE KEY-----"

_REF = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_ENV = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$", re.S)
_PARAM = re.compile(r"^params\.([A-Za-z_][A-Za-z0-9_]*)$")

Path = tuple[str | int, ...]


def _from_env(name: str, default: str | None, env: Mapping[str, str], report: Callable[[str, str], None]) -> str | None:
    """The value of ``${env:NAME}`` (or its default); None after reporting why there is none to give."""
    if name in SECRET_VARIABLES or _PRIVATE_PEM in env.get(name, ""):
        hint = "key material stays in the environment; a spec names where a key is (signing: {key_env: VAR})"
        report(f"${{env:{name}}} holds key material, which a spec may not copy", hint)
        return None
    if name in env:
        return env[name]
    if default is not None:
        return default
    report(f"environment variable {name!r} is not set", f"set it, or write ${{env:{name}:-default}}")
    return None


def interpolate(
    data: Any,
    params: Mapping[str, Any],
    env: Mapping[str, str],
    *,
    make_issue: Callable[..., SpecIssue],
    issues: list[SpecIssue],
    path: Path = (),
) -> Any:
    """Return ``data`` with every reference resolved; problems are appended to ``issues``."""
    if isinstance(data, dict):
        return {k: interpolate(v, params, env, make_issue=make_issue, issues=issues, path=(*path, k)) for k, v in data.items()}
    if isinstance(data, list):
        return [interpolate(v, params, env, make_issue=make_issue, issues=issues, path=(*path, i)) for i, v in enumerate(data)]
    if not isinstance(data, str) or "${" not in data:
        return data

    def report(message: str, hint: str) -> None:
        issues.append(make_issue(path, message, hint=hint))

    def resolve(expr: str) -> Any:
        if m := _ENV.match(expr):
            return _from_env(m.group(1), m.group(2), env, report)
        if m := _PARAM.match(expr):
            name = m.group(1)
            if name in params:
                return params[name]
            from mlflowkit.plugins import did_you_mean

            known = sorted(params)
            hint = did_you_mean(name, known) or f"params: {', '.join(known) or 'none declared'}"
            issues.append(make_issue(path, f"unknown param {name!r} in ${{params.{name}}}", hint=hint))
            return None
        issues.append(
            make_issue(path, f"cannot resolve ${{{expr}}}", hint="write ${env:NAME}, ${env:NAME:-default} or ${params.NAME}")
        )
        return None

    whole = _REF.fullmatch(data)
    if whole and whole.group(0) != "$${":
        return resolve(whole.group(1))

    def substitute(m: re.Match[str]) -> str:
        if m.group(0) == "$${":
            return "${"
        value = resolve(m.group(1))
        return "" if value is None else str(value)

    return _REF.sub(substitute, data)
