"""Where mlflowkit keeps things: a content-addressed artifact store and a versioned model registry."""

from __future__ import annotations

import os

from mlflowkit.store.artifacts import ArtifactStore, Ref
from mlflowkit.store.registry import AliasEvent, ModelRegistry, ModelVersion
from mlflowkit.store.trust import Trust

__all__ = ["AliasEvent", "ArtifactStore", "ModelRegistry", "ModelVersion", "Ref", "Trust", "registry_at"]


def registry_at(store_root: str, *, trust: Trust | None = None) -> ModelRegistry:
    """The model registry kept inside an artifact store root, at ``<root>/registry``.

    ``trust``: its keys; by default the environment's (`Trust.load`); `mlflowkit.policy.registry_trust`
    adds the governing policy's.
    """
    if "://" in store_root:
        return ModelRegistry(store_root.rstrip("/") + "/registry", trust=trust)
    return ModelRegistry(os.path.join(store_root, "registry"), trust=trust)
