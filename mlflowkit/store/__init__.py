"""Where mlflowkit keeps things: a content-addressed artifact store and a versioned model registry."""

from __future__ import annotations

from mlflowkit.store.artifacts import ArtifactStore, Ref
from mlflowkit.store.registry import AliasEvent, ModelRegistry, ModelVersion

__all__ = ["AliasEvent", "ArtifactStore", "ModelRegistry", "ModelVersion", "Ref"]
