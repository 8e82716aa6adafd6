"""What the operations policy says the model registry trusts: signed versions required, and by which public keys."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from mlflowkit.policy.model import Policy

if TYPE_CHECKING:  # the store package loads fsspec: not for validate, which reads the policy but no store
    from mlflowkit.store.trust import Trust

__all__ = ["registry_trust"]


def registry_trust(policy: Policy | None, *, environ: Mapping[str, str] | None = None) -> Trust:
    """The registry's keys: the environment's (`Trust.load`), plus the policy's ``registry:`` rules.

    ``registry.trusted_keys`` are PEM files relative to the policy file; ``registry.require_signing``
    makes a signing key mandatory for registering and a signature mandatory for reading.

    Raises:
        RegistryError: a key cannot be read (named with the policy rule's file:line:col).
    """
    from mlflowkit.store.trust import Trust

    if policy is None:
        return Trust.load(environ=environ)
    folder = Path(str(policy._meta.get("path", "."))).parent
    keys = []
    for i, name in enumerate(policy.registry.trusted_keys):
        path = Path(name).expanduser()
        keys.append((str(path if path.is_absolute() else folder / path), policy.where(("registry", "trusted_keys", i))))
    return Trust.load(required=policy.registry.require_signing, keys=keys, environ=environ)
