"""Loading a spec under the operations policy that governs its folder: the spec's own checks and the policy's, at once.

The spec wing knows nothing of policies; it checks a spec against whatever rules it is handed
(:class:`mlflowkit.spec.load.SpecRules`). This module finds the governing policy and hands it over: it is
what :func:`mlflowkit.load_spec`, the CLI and deployed flows call.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflowkit.policy.load import find_policy
from mlflowkit.policy.model import Policy
from mlflowkit.policy.rules import check_spec
from mlflowkit.spec import load as spec_load

if TYPE_CHECKING:
    from mlflowkit.errors import SpecIssue
    from mlflowkit.spec.models import SpecBase

__all__ = ["PolicyRules", "load_spec", "load_spec_text"]


@dataclass(frozen=True)
class PolicyRules:
    """A policy as the spec loader takes rules (:class:`mlflowkit.spec.load.SpecRules`); kinds read ``spec.rules.policy``."""

    policy: Policy

    def issues(self, spec: SpecBase) -> list[SpecIssue]:
        """Every way ``spec`` breaks the policy, located in the spec and naming the rule's place in the policy."""
        return list(check_spec(spec, self.policy))


def _governing(policy: bool | Policy, spec_dir: Path) -> PolicyRules | None:
    """The policy a spec in ``spec_dir`` is checked against: found (True), given, or none (False)."""
    found = None if policy is False else find_policy(spec_dir) if policy is True else policy
    return PolicyRules(found) if found is not None else None


def load_spec(
    path: str | os.PathLike[str],
    *,
    overrides: Iterable[str] | Mapping[str, Any] = (),
    env: Mapping[str, str] | None = None,
    policy: bool | Policy = True,
    read_data: bool = True,
) -> SpecBase:
    """:func:`mlflowkit.spec.load.load_spec` under the policy that governs the spec's folder (same arguments).

    ``policy``: check the spec against the operations policy that governs its folder (True, see
    :mod:`mlflowkit.policy`), against this one, or not at all (False). A run checks the governing policy
    again whatever this says. A SpecError carries the spec's issues and the policy's, all at once.
    """
    rules = _governing(policy, Path(path).resolve().parent)
    return spec_load.load_spec(path, overrides=overrides, env=env, rules=rules, read_data=read_data)


def load_spec_text(
    text: str,
    file: str = "<string>",
    *,
    spec_dir: str | os.PathLike[str] | None = None,
    overrides: Iterable[str] | Mapping[str, Any] = (),
    env: Mapping[str, str] | None = None,
    policy: bool | Policy = True,
    read_data: bool = True,
) -> SpecBase:
    """Like :func:`load_spec`, from text; relative paths resolve against ``spec_dir`` (default: cwd)."""
    folder = Path(spec_dir or os.getcwd()).resolve()
    rules = _governing(policy, folder)
    return spec_load.load_spec_text(
        text, file, spec_dir=folder, overrides=overrides, env=env, rules=rules, read_data=read_data
    )
