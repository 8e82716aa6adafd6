"""Promotion and rollback: who holds ``champion``, who was before it, and why each move happened.

``promote`` gives a version the ``champion`` alias and the old champion the ``previous`` alias.
``rollback`` returns ``champion`` to the version it replaced, walking back one promotion at a time.
Every move lands in the registry's append-only event log with the actor and the reason.

A version registered under an operations policy carries its promotion rules in its lineage
(``governance``: who may promote, whether an approval must come first), so that those rules hold
wherever it is promoted from. :func:`approve` records an approval in the registry's audit trail.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from mlflowkit.errors import RegistryError
from mlflowkit.store.registry import ApprovalEvent, ModelRegistry, ModelVersion, default_actor

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "PREVIOUS",
    "REJECTED",
    "approval_of",
    "approve",
    "check_promotion",
    "promote",
    "require_served",
    "rollback",
]

CHAMPION, PREVIOUS, REJECTED, CHALLENGER = "champion", "previous", "rejected", "challenger"


def _governance(version: ModelVersion) -> dict[str, Any]:
    gov = version.lineage.get("governance")
    return gov if isinstance(gov, dict) else {}


def _listed(actor: str, patterns: Any) -> bool:
    return patterns is None or any(fnmatch.fnmatchcase(actor, str(p)) for p in patterns)


def _check_actor(version: ModelVersion, actor: str, action: str, key: str = "promoters") -> None:
    gov = _governance(version)
    if not _listed(actor, gov.get(key)):
        raise RegistryError(
            f"{actor!r} may not {action} {version.model} v{version.version}: its policy ({gov.get('policy')}) "
            f"allows {', '.join(map(str, gov.get(key) or []))} (promotion.{key})"
        )


def approval_of(registry: ModelRegistry, version: ModelVersion) -> ApprovalEvent | None:
    """The first recorded approval of ``version`` that its governance accepts, or None."""
    gov = _governance(version)
    for event in registry.approvals(version.model, version.version):
        if not _listed(event.actor, gov.get("approvers")):
            continue
        if gov.get("distinct_approver") and event.actor == gov.get("registered_by"):
            continue
        return event
    return None


def approve(registry: ModelRegistry, model: str, version: int, *, reason: str, actor: str | None = None) -> ApprovalEvent:
    """Record that ``actor`` approves ``version`` for promotion (who, when, why go in the audit trail).

    Raises:
        RegistryError: the version does not exist, the reason is empty, or the version's policy does not
            let ``actor`` approve it (not an approver, or the one who registered it when approvers must differ).
    """
    target = registry.get(model, version)
    who = actor or default_actor()
    _check_actor(target, who, "approve", "approvers")
    gov = _governance(target)
    if gov.get("distinct_approver") and who == gov.get("registered_by"):
        raise RegistryError(f"{who!r} registered {model} v{version}; its policy wants someone else to approve it")
    return registry.record_approval(model, target.version, reason=reason, actor=who)


def _passed(version: ModelVersion) -> bool | None:
    verdict = version.lineage.get("verdict")
    return None if not isinstance(verdict, dict) else bool(verdict.get("passed"))


def promote(
    registry: ModelRegistry,
    model: str,
    version: int,
    *,
    reason: str,
    actor: str | None = None,
    force: bool = False,
    require_approval: bool = False,
) -> ModelVersion:
    """Make ``version`` the champion; the old champion becomes ``previous`` (a ``challenger`` alias on it goes).

    An approval is needed when ``require_approval`` (the policy in force now) or the version's own
    governance says so; ``force`` never stands in for one.

    Raises:
        RegistryError: the version does not exist, already is the champion, failed its gates (unless
            ``force``), has no accepted approval when one is required, or its policy does not let ``actor``
            promote.
    """
    target = check_promotion(registry, model, version, actor=actor, force=force, require_approval=require_approval)
    who = actor or default_actor()
    current = registry.aliases(model).get(CHAMPION)
    if current is not None:
        registry.set_alias(model, PREVIOUS, current, reason=f"replaced by v{target.version}: {reason}", actor=who)
    registry.set_alias(model, CHAMPION, target.version, reason=reason, actor=who)
    if registry.aliases(model).get(CHALLENGER) == target.version:
        registry.remove_alias(model, CHALLENGER, reason=f"promoted to champion: {reason}", actor=who)
    return registry.get(model, target.version)


def check_promotion(
    registry: ModelRegistry,
    model: str,
    version: int,
    *,
    actor: str | None = None,
    force: bool = False,
    require_approval: bool = False,
) -> ModelVersion:
    """Everything :func:`promote` checks, without moving anything: the version, if it may be promoted.

    Raises:
        RegistryError: as :func:`promote`.
    """
    target = registry.get(model, version)
    who = actor or default_actor()
    _check_actor(target, who, "promote")
    current = registry.aliases(model).get(CHAMPION)
    if current == target.version:
        raise RegistryError(f"{model} v{target.version} already is the champion")
    if _passed(target) is False and not force:
        raise RegistryError(f"{model} v{target.version} failed its gates; promote it with --force if you mean it")
    gov = _governance(target)
    if (require_approval or gov.get("require_approval")) and approval_of(registry, target) is None:
        where = ""
        if gov.get("require_approval"):
            where = f" (policy rule promotion.require_approval at {gov.get('require_approval_at')})"
        raise RegistryError(
            f"{model} v{target.version} has no recorded approval, and the policy requires one before champion{where}; "
            f"approve it first: mlflowkit models approve {model} {target.version} --reason '...'"
        )
    return target


def rollback(
    registry: ModelRegistry, model: str, *, reason: str, to: int | None = None, actor: str | None = None
) -> ModelVersion:
    """Return ``champion`` to the version it replaced (or to ``to``); ``previous`` steps back too.

    A rollback returns to a version that served: one that was champion before. Any other version must
    be promoted (:func:`promote`), which checks its gates and, under a policy, its approval.

    Raises:
        RegistryError: there is no champion, nothing to roll back to, or the version never was champion.
    """
    aliases = registry.aliases(model)
    current = aliases.get(CHAMPION)
    if current is None:
        raise RegistryError(f"model {model!r} has no champion to roll back")
    _check_actor(registry.get(model, current), actor or default_actor(), "roll back")
    target = to if to is not None else aliases.get(PREVIOUS)
    if target is None:
        raise RegistryError(f"{model} v{current} has no previous version to roll back to; name one with --to")
    if target == current:
        raise RegistryError(f"{model} v{target} already is the champion")
    registry.get(model, target)  # exists?
    require_served(registry, model, target)
    registry.set_alias(model, CHAMPION, target, reason=f"rollback from v{current}: {reason}", actor=actor)
    before = _replaced_by(registry, model, target)
    if before is not None and before != target:
        registry.set_alias(model, PREVIOUS, before, reason=f"rollback to v{target}: {reason}", actor=actor)
    elif PREVIOUS in registry.aliases(model):
        registry.remove_alias(model, PREVIOUS, reason=f"rollback to v{target}: nothing before it", actor=actor)
    return registry.get(model, target)


def require_served(registry: ModelRegistry, model: str, version: int) -> None:
    """A rollback's target must have been champion before: anything else is a promotion.

    Raises:
        RegistryError: ``version`` never held ``champion``.
    """
    if not any(e.alias == CHAMPION and e.version == version for e in registry.history(model)):
        raise RegistryError(
            f"{model} v{version} never was champion, so there is nothing to roll back to; promote it instead "
            f"(mlflowkit models promote {model} {version}), which checks its gates and approval"
        )


def _replaced_by(registry: ModelRegistry, model: str, version: int) -> int | None:
    """The version that was champion right before ``version`` was first promoted, from the event log."""
    for event in registry.history(model):
        if event.alias == CHAMPION and event.version == version and not event.reason.startswith("rollback"):
            return event.previous
    return None
