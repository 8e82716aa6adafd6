"""Where runs are logged: the spec's ``tracking:`` section, else ``$MLFLOWKIT_TRACKING_URI``; and which server
each model was last logged to, remembered in the store so that a promotion made later follows it there."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from mlflowkit.spec.models import SpecBase
    from mlflowkit.store import ArtifactStore

__all__ = ["TRACKING_URI_ENV", "TrackingTarget", "remember", "remembered", "target_for"]

TRACKING_URI_ENV = "MLFLOWKIT_TRACKING_URI"
"""Log every run to this MLflow server, as a ``tracking: {uri: ...}`` section would."""
_MODEL_KEY = "tracking/models/{model}.json"
_URI = re.compile(r"^https?://[^\s/]+")


class TrackingTarget(BaseModel):
    """One MLflow server and how a model is logged there (resolved from the spec and the environment)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    uri: str = Field(description="The tracking server, http(s)://host:port.")
    experiment: str = Field(description="The MLflow experiment runs go to.")
    registered_model: str = Field(description="The model's name in MLflow's registry.")
    registry: bool = Field(True, description="Whether versions (and their aliases) are registered in MLflow too.")
    timeout: float = Field(5.0, gt=0, description="Seconds to wait for one answer from the server.")

    @property
    def base(self) -> str:
        """The URI without a trailing slash."""
        return self.uri.rstrip("/")


def target_for(spec: SpecBase, model: str, env: os._Environ[str] | dict[str, str] | None = None) -> TrackingTarget | None:
    """Where a run of ``spec`` (registering ``model``) is logged, or None when it is not.

    The spec's ``tracking:`` wins; without a ``uri`` there, ``$MLFLOWKIT_TRACKING_URI``.
    """
    env = os.environ if env is None else env
    section = getattr(spec, "tracking", None)
    uri = (section.uri if section is not None else None) or env.get(TRACKING_URI_ENV) or None
    if not uri:
        return None
    if not _URI.match(uri):  # the section's pattern checks its own uri; this is the variable's
        raise ValueError(f"${TRACKING_URI_ENV}={uri!r} is not an http:// or https:// URL")
    return TrackingTarget(
        uri=uri,
        experiment=(section.experiment if section is not None else None) or spec.name,
        registered_model=(section.registered_model if section is not None else None) or model,
        registry=section.registry if section is not None else True,
        timeout=section.timeout if section is not None else 5.0,
    )


def remember(store: ArtifactStore, model: str, target: TrackingTarget) -> None:
    """Note that ``model`` is logged to ``target``, so that a later promotion in this store follows it there."""
    store.write_json(_MODEL_KEY.format(model=model), target.model_dump(mode="json"))


def remembered(store: ArtifactStore, model: str) -> TrackingTarget | None:
    """Where ``model`` was last logged from this store, or None."""
    try:
        return TrackingTarget.model_validate(store.read_json(_MODEL_KEY.format(model=model)))
    except (FileNotFoundError, ValueError):
        return None
