"""The spec's ``tracking:`` section: which MLflow tracking server a run is logged to, and how.

Light on purpose (pydantic only): it is validated with the rest of the spec, and ``validate`` loads no
MLflow. The logging itself is :mod:`mlflowkit.tracking`. Not part of the spec hash: where a run is
logged does not change what it trains.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["TrackingSpec"]


class TrackingSpec(BaseModel):
    """Log every run to an MLflow tracking server (``pip install 'mlflowkit[tracking]'``).

    Example::

        tracking:
          uri: http://127.0.0.1:5000
          experiment: churn
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    uri: str | None = Field(
        None,
        pattern=r"^https?://[^\s/]+",
        description="The tracking server (http:// or https://); default $MLFLOWKIT_TRACKING_URI. "
        "Without either, nothing is logged.",
    )
    experiment: str | None = Field(
        None, min_length=1, max_length=256, description="The MLflow experiment; default the spec's name."
    )
    registry: bool = Field(
        True,
        description="Register each version mlflowkit registers in MLflow's model registry too, with the aliases "
        "(champion, previous, ...) kept in step with mlflowkit's.",
    )
    registered_model: str | None = Field(
        None, min_length=1, max_length=256, description="The model's name in MLflow's registry; default mlflowkit's."
    )
    timeout: float = Field(
        5.0,
        gt=0,
        le=120,
        description="Seconds to wait for the server to answer one request; a server that does not is skipped "
        "for this run (the run never fails for it) and logged on the next run.",
    )
