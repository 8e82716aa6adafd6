"""The ``triton`` deploy target: a Triton model repository on any fsspec location, loaded and verified live.

The target is a spec section (its fields in :mod:`.settings`) whose ``deploy`` runs :func:`.rollout.deploy`:
write the version and its ``config.pbtxt`` (:mod:`.config`), load it, check it against ONNX Runtime, and put
everything back if that fails, so the previous version keeps serving.

``backend: onnxruntime`` serves ``model.onnx`` with Triton's ONNX Runtime backend
(``platform: "onnxruntime_onnx"``, the full Triton container). ``backend: python`` adds a ``model.py``
(:mod:`.backend`) that runs ONNX Runtime inside Triton's Python backend, for CPU builds without the ORT
backend, such as the one in the ``nvidia-pytriton`` wheel (``mlflowkit triton up``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from mlflowkit.targets.base import Release
from mlflowkit.targets.triton.backend import model_py
from mlflowkit.targets.triton.config import render_config
from mlflowkit.targets.triton.rollout import TritonDeployError, candidate_name, deploy, infer
from mlflowkit.targets.triton.settings import DynamicBatching, InstanceGroup, TritonSettings

__all__ = [
    "DynamicBatching",
    "InstanceGroup",
    "TritonDeployError",
    "TritonTarget",
    "candidate_name",
    "deploy",
    "infer",
    "model_py",
    "render_config",
]


class TritonTarget(TritonSettings):
    """Deploy to a Triton Inference Server through its model repository (explicit model control).

    Example:

    ```yaml
    deploy:
      - target: triton
        url: http://triton:8000
        grpc_url: triton:8001
        model_repository: s3://models/triton
        backend: onnxruntime
        max_batch_size: 64
        dynamic_batching: {max_queue_delay_microseconds: 0}
        instances: {count: 2, kind: cpu}
        keep_versions: 2
    ```
    """

    summary: ClassVar[str] = "Triton Inference Server: model repository + explicit model control, verified live"

    @property
    def destination(self) -> str:
        return self.url

    def deploy(self, release: Release, *, name: str, log: Callable[[str], None]) -> dict[str, Any]:
        lineage = {"model": release.model, "version": release.version, **release.lineage}
        return deploy(
            self, name=name, version=release.version, model=release.onnx, contract=release.contract, smoke=release.smoke,
            log=log, lineage=lineage,
        )  # fmt: skip
