"""Promotion and rollback: who holds ``champion``, who was before it, and why each move happened.

``promote`` gives a version the ``champion`` alias and the old champion the ``previous`` alias.
``rollback`` returns ``champion`` to the version it replaced, walking back one promotion at a time.
Every move lands in the registry's append-only event log with the actor and the reason.
"""

from __future__ import annotations

from mlflowkit.errors import RegistryError
from mlflowkit.store.registry import ModelRegistry, ModelVersion

__all__ = ["CHAMPION", "PREVIOUS", "REJECTED", "promote", "rollback"]

CHAMPION, PREVIOUS, REJECTED = "champion", "previous", "rejected"


def _passed(version: ModelVersion) -> bool | None:
    verdict = version.lineage.get("verdict")
    return None if not isinstance(verdict, dict) else bool(verdict.get("passed"))


def promote(
    registry: ModelRegistry, model: str, version: int, *, reason: str, actor: str | None = None, force: bool = False
) -> ModelVersion:
    """Make ``version`` the champion; the old champion becomes ``previous``.

    Raises:
        RegistryError: the version does not exist, already is the champion, or failed its gates
            (unless ``force``).
    """
    target = registry.get(model, version)
    current = registry.aliases(model).get(CHAMPION)
    if current == target.version:
        raise RegistryError(f"{model} v{target.version} already is the champion")
    if _passed(target) is False and not force:
        raise RegistryError(f"{model} v{target.version} failed its gates; promote it with --force if you mean it")
    if current is not None:
        registry.set_alias(model, PREVIOUS, current, reason=f"replaced by v{target.version}: {reason}", actor=actor)
    registry.set_alias(model, CHAMPION, target.version, reason=reason, actor=actor)
    return registry.get(model, target.version)


def rollback(
    registry: ModelRegistry, model: str, *, reason: str, to: int | None = None, actor: str | None = None
) -> ModelVersion:
    """Return ``champion`` to the version it replaced (or to ``to``); ``previous`` steps back too.

    Raises:
        RegistryError: there is no champion, or nothing to roll back to.
    """
    aliases = registry.aliases(model)
    current = aliases.get(CHAMPION)
    if current is None:
        raise RegistryError(f"model {model!r} has no champion to roll back")
    target = to if to is not None else aliases.get(PREVIOUS)
    if target is None:
        raise RegistryError(f"{model} v{current} has no previous version to roll back to; name one with --to")
    if target == current:
        raise RegistryError(f"{model} v{target} already is the champion")
    registry.get(model, target)  # exists?
    registry.set_alias(model, CHAMPION, target, reason=f"rollback from v{current}: {reason}", actor=actor)
    before = _replaced_by(registry, model, target)
    if before is not None and before != target:
        registry.set_alias(model, PREVIOUS, before, reason=f"rollback to v{target}: {reason}", actor=actor)
    elif PREVIOUS in registry.aliases(model):
        registry.remove_alias(model, PREVIOUS, reason=f"rollback to v{target}: nothing before it", actor=actor)
    return registry.get(model, target)


def _replaced_by(registry: ModelRegistry, model: str, version: int) -> int | None:
    """The version that was champion right before ``version`` was first promoted, from the event log."""
    for event in registry.history(model):
        if event.alias == CHAMPION and event.version == version and not event.reason.startswith("rollback"):
            return event.previous
    return None
