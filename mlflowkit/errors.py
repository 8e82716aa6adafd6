"""The exception family of mlflowkit: every error a user can meet, and how it crosses processes.

    MlflowkitError
    ├── SpecError          a spec (or recipe, or --set) is invalid; carries every SpecIssue at once
    ├── PluginError        a plug-in (kind, target, recipe) failed to load or failed its checks
    ├── RegistryError      a model, version or alias is missing, or the registry is inconsistent
    ├── IntegrityError     stored bytes no longer match the hash that vouches for them
    └── StepFailed         a step raised while running; names the step and the cause
        └── GateFailed     a promotion gate said "no"; carries the verdict

Every class pickles (``__reduce__``), because errors cross Ray and Prefect process boundaries.
The CLI maps SpecError to exit code 2 and every other MlflowkitError to exit code 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

__all__ = [
    "GateFailed",
    "IntegrityError",
    "MlflowkitError",
    "PluginError",
    "RegistryError",
    "SpecError",
    "SpecIssue",
    "StepFailed",
]


class MlflowkitError(Exception):
    """Base of every error mlflowkit raises on purpose."""

    exit_code: int = 1

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, self.args)


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a spec, located in the file it came from.

    Attributes:
        message: what is wrong, in words a user can act on.
        path: dotted path into the spec (``train.search.max_depth``); empty for the whole file.
        file: the file the problem is in (the spec, a recipe, or ``<--set>``).
        line: 1-based line, or 0 when unknown.
        col: 1-based column, or 0 when unknown.
        hint: an optional did-you-mean or install hint.
        snippet: the source line, shown with a caret under ``col``.
    """

    message: str
    path: str = ""
    file: str = ""
    line: int = 0
    col: int = 0
    hint: str = ""
    snippet: str = field(default="", compare=False)

    @property
    def where(self) -> str:
        """``file:line:col``, as far as it is known."""
        parts = [self.file or "<spec>"]
        if self.line:
            parts.append(str(self.line))
            if self.col:
                parts.append(str(self.col))
        return ":".join(parts)

    def render(self) -> str:
        """Multi-line text: location, path, message, source line with a caret, hint."""
        head = f"{self.where}: "
        if self.path:
            head += f"{self.path}: "
        lines = [head + self.message]
        if self.snippet:
            lines.append("    " + self.snippet.rstrip("\n").expandtabs(1))
            if self.col:
                lines.append("    " + " " * (self.col - 1) + "^")
        if self.hint:
            lines.append("    hint: " + self.hint)
        return "\n".join(lines)


class SpecError(MlflowkitError):
    """A spec is invalid. Holds every issue found, so a user fixes them all in one go."""

    exit_code = 2

    def __init__(self, issues: list[SpecIssue] | tuple[SpecIssue, ...], *, max_shown: int = 50) -> None:
        self.issues: tuple[SpecIssue, ...] = tuple(issues)
        self.max_shown = max_shown
        super().__init__(self._render())

    def _render(self) -> str:
        n = len(self.issues)
        head = f"spec validation failed: {n} error{'s' if n != 1 else ''}"
        body = [issue.render() for issue in self.issues[: self.max_shown]]
        if n > self.max_shown:
            body.append(f"... and {n - self.max_shown} more")
        return "\n".join([head, *body])

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (list(self.issues),), {"max_shown": self.max_shown})

    def __setstate__(self, state: dict[str, Any] | None) -> None:
        self.max_shown = (state or {}).get("max_shown", self.max_shown)
        self.args = (self._render(),)  # __init__ rendered with the default max_shown


class PluginError(MlflowkitError):
    """A plug-in could not be loaded or does not have the shape its group requires.

    Args:
        plugin: the plug-in's name (entry-point name or import path).
        group: the entry-point group (``mlflowkit.kinds``, ...).
        reason: what is wrong with it.
    """

    def __init__(self, plugin: str, group: str, reason: str) -> None:
        self.plugin, self.group, self.reason = plugin, group, reason
        super().__init__(f"plug-in {plugin!r} ({group}): {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.plugin, self.group, self.reason))


class RegistryError(MlflowkitError):
    """A model, version or alias does not exist, or a registry operation cannot be done."""


class IntegrityError(MlflowkitError):
    """Stored bytes no longer match the hash that vouches for them (damage, or someone rewrote them).

    Args:
        where: the file or object (a path or URI).
        expected: the SHA-256 that vouches for it.
        found: what its bytes hash to now, or ``"missing"``.
    """

    def __init__(self, where: str, expected: str, found: str) -> None:
        self.where, self.expected, self.found = where, expected, found
        super().__init__(f"{where} is damaged or was replaced: expected SHA-256 {expected}, found {found}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.where, self.expected, self.found))


class StepFailed(MlflowkitError):
    """A step raised while running.

    Args:
        step: the step's name in the plan.
        reason: the cause, in words; the original exception is kept on ``__cause__`` in-process.
    """

    def __init__(self, step: str, reason: str) -> None:
        self.step, self.reason = step, reason
        super().__init__(f"step {step!r} failed: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.step, self.reason))


class GateFailed(StepFailed):
    """A promotion gate said "no".

    Attributes:
        verdict: the full verdict (a :class:`mlflowkit.handoff.Verdict`; typed by its base here, since the
            hand-off types sit above the errors).
        ref: the store key the verdict was written to (always before this is raised).
    """

    def __init__(self, step: str, reason: str, verdict: BaseModel | None = None, ref: str | None = None) -> None:
        self.verdict, self.ref = verdict, ref
        super().__init__(step, reason)

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.step, self.reason, self.verdict, self.ref))
