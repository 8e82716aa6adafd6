"""Logging runs to an MLflow tracking server, and keeping MLflow's model registry in step with mlflowkit's.

``target`` says where (the spec's ``tracking:`` or ``$MLFLOWKIT_TRACKING_URI``), ``outbox`` keeps what is
still to be sent in the store, ``sync`` sends it within a bounded time, ``mlflow_log`` is the only module
that talks to MLflow (imported only when something is sent), ``local_server`` runs a real ``mlflow server``
for development and tests. Nothing here imports MLflow at import time.
"""

from __future__ import annotations

from mlflowkit.tracking.target import TRACKING_URI_ENV, TrackingTarget, target_for

__all__ = ["TRACKING_URI_ENV", "TrackingTarget", "target_for"]
