"""Who is acting, and whether the policy lets them promote, roll back or approve.

The identity is ``MLFLOWKIT_USER`` when set, else the OS user: the same identity the registry writes
into its audit log, so that what was allowed and what was recorded are one name.
"""

from __future__ import annotations

import fnmatch
from typing import Any, Literal

from mlflowkit.errors import RegistryError
from mlflowkit.policy.model import Policy

__all__ = ["Action", "authorize", "current_actor", "governance", "may"]

Action = Literal["promote", "rollback", "approve"]


def current_actor() -> str:
    """The identity of whoever runs mlflowkit now (``MLFLOWKIT_USER``, else the OS user)."""
    from mlflowkit.store.registry import default_actor

    return default_actor()


def _listed(actor: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(actor, p) for p in patterns)


def allowed_for(policy: Policy, action: Action) -> tuple[list[str] | None, tuple[str | int, ...]]:
    """The identities the policy allows for ``action`` (None: anyone), and the rule's path in the policy."""
    rules = policy.promotion
    if action == "approve" and rules.approvers is not None:
        return rules.approvers, ("promotion", "approvers")
    return rules.promoters, ("promotion", "promoters")


def may(policy: Policy | None, action: Action, actor: str) -> bool:
    """Whether ``actor`` may do ``action`` under ``policy`` (anyone may when there is no policy or no list)."""
    if policy is None:
        return True
    allowed, _ = allowed_for(policy, action)
    return allowed is None or _listed(actor, allowed)


def authorize(policy: Policy | None, action: Action, actor: str, what: str) -> None:
    """Raise unless ``actor`` may do ``action``; the error names the rule's place in the policy.

    Raises:
        RegistryError: the policy does not list ``actor`` for ``action``.
    """
    if policy is None or may(policy, action, actor):
        return
    allowed, path = allowed_for(policy, action)
    raise RegistryError(
        f"{actor!r} may not {action} {what}: the policy allows {', '.join(allowed or [])} "
        f"(policy rule {'.'.join(map(str, path))} at {policy.where(path)})"
    )


def governance(policy: Policy | None, actor: str) -> dict[str, Any] | None:
    """What a version registered under ``policy`` records about its governance (kept in its lineage).

    A version carries its promotion rules with it, so that promoting it from anywhere (a folder with no
    policy file, the Python API) still asks for the approval its policy required.
    """
    if policy is None:
        return None
    rules = policy.promotion
    return {
        "policy": policy.file,
        "policy_sha256": policy.sha256,
        "require_approval": rules.require_approval,
        "require_approval_at": policy.where(("promotion", "require_approval")),
        "promoters": rules.promoters,
        "approvers": rules.approvers if rules.approvers is not None else rules.promoters,
        "distinct_approver": rules.distinct_approver,
        "registered_by": actor,
    }
