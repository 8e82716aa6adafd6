"""Find and load the operations policy: ``MLFLOWKIT_POLICY``, else the nearest ``policy.yaml`` up to the project root.

A policy is parsed by the spec's own safe, positioned YAML loader, so that a bad policy is an error at its
file:line:col and every rule keeps its place for the violations that cite it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from pydantic import ValidationError

from mlflowkit.errors import SpecError, SpecIssue
from mlflowkit.policy.model import Policy
from mlflowkit.spec._validate import issues_from_validation
from mlflowkit.spec._yaml import load_yaml_text

__all__ = ["POLICY_ENV", "POLICY_FILE", "find_policy", "load_policy", "policy_path"]

POLICY_ENV = "MLFLOWKIT_POLICY"
POLICY_FILE = "policy.yaml"
_PROJECT_MARKERS = ("pyproject.toml", ".git")

_cache: dict[tuple[str, int, int], Policy] = {}


def policy_path(start: str | os.PathLike[str]) -> Path | None:
    """The policy file that governs specs in folder ``start``, or None.

    ``MLFLOWKIT_POLICY`` wins when set (operations set it where runs happen, so a spec's folder cannot
    override it). Otherwise the first ``policy.yaml`` in ``start`` or its parents, up to and including
    the project root: the nearest folder holding ``pyproject.toml`` or ``.git``. Without a project root
    only ``start`` itself is looked at, so a stray file in a parent folder (``/tmp``) never applies.

    Raises:
        SpecError: ``MLFLOWKIT_POLICY`` names a file that does not exist (fail closed).
    """
    env = os.environ.get(POLICY_ENV, "").strip()
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            message = f"{POLICY_ENV} names {env!r}, which is not a file"
            raise SpecError([SpecIssue(message, file=env, hint=f"point {POLICY_ENV} at a policy.yaml, or unset it")])
        return path
    folder = Path(start).resolve()
    chain = [folder, *folder.parents]
    root = next((i for i, d in enumerate(chain) if any((d / m).exists() for m in _PROJECT_MARKERS)), 0)
    for directory in chain[: root + 1]:
        candidate = directory / POLICY_FILE
        if candidate.is_file():
            return candidate
    return None


def find_policy(start: str | os.PathLike[str]) -> Policy | None:
    """The policy that governs specs in folder ``start`` (see :func:`policy_path`), loaded; None when there is none.

    Raises:
        SpecError: the policy file is invalid (every issue at its file:line:col).
    """
    path = policy_path(start)
    return None if path is None else load_policy(path)


def _display(path: Path) -> str:
    try:
        shown = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)
    return shown if not shown.startswith("../..") else str(path)


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Load and validate a policy file; cached by path, size and mtime.

    Raises:
        SpecError: the file cannot be read, is not YAML, or breaks the policy format; each issue is located.
    """
    file = Path(path).resolve()
    shown = _display(file)
    try:
        stat = file.stat()
        cache_key = (str(file), stat.st_size, stat.st_mtime_ns)
        if cache_key in _cache:
            return _cache[cache_key]
        raw = file.read_bytes()
        text = raw.decode("utf-8")
    except OSError as exc:
        raise SpecError([SpecIssue(f"cannot read the policy: {exc.strerror or exc}", file=shown)]) from exc
    except UnicodeDecodeError as exc:
        raise SpecError([SpecIssue(f"the policy is not valid UTF-8 ({exc.reason})", file=shown)]) from exc
    if not text.strip() or all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines()):
        hint = "a policy starts like:  policy: mlflowkit/v1"
        raise SpecError([SpecIssue("the policy is empty", file=shown, line=1, col=1, hint=hint)])
    try:
        source = load_yaml_text(text, shown)
    except SpecError as exc:  # the loader speaks of "a spec"; this is a policy
        raise SpecError([_reword(i) for i in exc.issues]) from exc
    if not isinstance(source.data, dict):
        raise SpecError([source.issue((), "a policy is a mapping of rules", hint="a policy starts like:  policy: mlflowkit/v1")])
    try:
        policy = Policy.model_validate(source.data)
    except ValidationError as exc:
        issues = issues_from_validation(exc, source.issue, Policy, data=source.data)
        raise SpecError(sorted(issues, key=lambda i: (i.line, i.col))) from exc
    policy._meta.update(file=shown, source=source, path=str(file), sha256=hashlib.sha256(raw).hexdigest())
    _cache[cache_key] = policy
    return policy


def _reword(issue: SpecIssue) -> SpecIssue:
    from dataclasses import replace

    return replace(issue, message=issue.message.replace("a spec ", "a policy ").replace("spec file", "policy file"))
