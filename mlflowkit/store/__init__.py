"""Where mlflowkit keeps things: a content-addressed artifact store and a versioned model registry."""

from __future__ import annotations

import os

from mlflowkit.store.artifacts import ArtifactStore, Ref
from mlflowkit.store.registry import AliasEvent, ModelRegistry, ModelVersion

__all__ = ["AliasEvent", "ArtifactStore", "ModelRegistry", "ModelVersion", "Ref", "registry_at"]


def registry_at(store_root: str) -> ModelRegistry:
    """The model registry kept inside an artifact store root, at ``<root>/registry``."""
    if "://" in store_root:
        return ModelRegistry(store_root.rstrip("/") + "/registry")
    return ModelRegistry(os.path.join(store_root, "registry"))
