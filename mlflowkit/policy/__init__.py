"""The operations policy (``policy.yaml``): what specs may use and where they may deploy, checked before anything runs.

    policy = find_policy(spec_dir)            # MLFLOWKIT_POLICY, else the nearest policy.yaml up to the project root
    issues = check_spec(spec, policy)         # every violation, located in the spec and in the policy
    enforce(spec)                             # raise SpecError (exit code 2) when there is any

The loader (:func:`mlflowkit.load_spec`) checks a spec against the policy that governs its folder; the runner
calls :func:`enforce` once when a run starts and hands that policy to every step (``StepContext.policy``,
read through :func:`mlflowkit.kinds._policy.governing_policy`), so that one policy governs the whole run.
See ``docs/policy.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlflowkit.errors import SpecError, SpecIssue
from mlflowkit.policy.access import authorize, current_actor, governance, may
from mlflowkit.policy.governed import PolicyRules, load_spec, load_spec_text
from mlflowkit.policy.load import POLICY_ENV, POLICY_FILE, find_policy, load_policy, policy_path
from mlflowkit.policy.model import Policy
from mlflowkit.policy.registry import registry_trust
from mlflowkit.policy.rules import RULES, PolicyIssue, check_spec, module_allowed

if TYPE_CHECKING:
    from mlflowkit.spec.models import SpecBase

__all__ = [
    "POLICY_ENV",
    "POLICY_FILE",
    "RULES",
    "Policy",
    "PolicyIssue",
    "PolicyRules",
    "authorize",
    "check_spec",
    "current_actor",
    "enforce",
    "find_policy",
    "governance",
    "import_refusal",
    "load_policy",
    "load_spec",
    "load_spec_text",
    "may",
    "module_allowed",
    "policy_of",
    "policy_path",
    "registry_trust",
]


def policy_of(spec: SpecBase) -> Policy | None:
    """The policy ``spec`` was loaded under (None: no policy applied)."""
    rules = spec.rules
    return rules.policy if isinstance(rules, PolicyRules) else None


def enforce(spec: SpecBase) -> Policy | None:
    """Check ``spec`` against the policy that governs its folder now; raise when it breaks any rule.

    The runner calls it once, when a run starts: the policy may have changed since the spec was loaded,
    or the spec was loaded without it. A policy file unchanged since loading (the same cached policy) is
    not checked again.

    Returns:
        The policy, or None when none applies.

    Raises:
        SpecError: the policy is invalid, or the spec breaks it (every violation at once).
    """
    policy = find_policy(spec.spec_dir)
    if policy is not None and policy is not policy_of(spec):
        issues = check_spec(spec, policy)
        if issues:
            raise SpecError(list[SpecIssue](issues))
    return policy


def import_refusal(policy: Policy | None, module: str, *, what: str) -> str | None:
    """Why ``policy`` refuses to let a run import ``module``, or None when it may.

    Called right before a kind imports user-named code (a custom step's module, an estimator), so that
    a spec that reached the runner some other way than :func:`mlflowkit.load_spec` is refused as well.
    ``what`` is ``"steps"`` or ``"estimators"``.
    """
    if policy is None:
        return None
    prefixes = policy.modules.steps if what == "steps" else policy.modules.estimators
    if prefixes is None or module_allowed(module, prefixes):
        return None
    path = ("modules", what)
    return (
        f"refused to import {module!r}: it is outside the modules the policy allows "
        f"({', '.join(p.rstrip('.') for p in prefixes) or 'none'}; policy rule modules.{what} at {policy.where(path)})"
    )
