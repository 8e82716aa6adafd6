"""The Triton target's settings: the fields of a ``deploy: [{target: triton, ...}]`` entry, checked when the spec loads."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mlflowkit.targets.base import DeployTarget
from mlflowkit.targets.onnxruntime import Signing

__all__ = ["DynamicBatching", "InstanceGroup", "TritonSettings"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DynamicBatching(_Frozen):
    """Triton's dynamic batcher: requests that arrive together run as one batch."""

    max_queue_delay_microseconds: int = Field(
        0,
        ge=0,
        description=(
            "How long a request may wait for others to batch with. 0 batches only the requests already queued, "
            "so a lone request never waits; raise it for throughput under many concurrent clients."
        ),
    )
    preferred_batch_size: list[int] = Field(default_factory=list, description="Batch sizes the batcher aims for.")


class InstanceGroup(_Frozen):
    """How many copies of the model run, and where."""

    count: int = Field(1, ge=1, le=64, description="Model instances.")
    kind: Literal["cpu", "gpu"] = Field("cpu", description="Where the instances run.")


class TritonSettings(DeployTarget):
    """The fields of the ``triton`` target (:class:`mlflowkit.targets.triton.TritonTarget` adds the deploy)."""

    target: Literal["triton"] = Field(description="The deploy target's type.")
    url: str = Field(pattern=r"^https?://[^/\s]+/?$", description="The server's HTTP endpoint, e.g. http://triton:8000.")
    grpc_url: str | None = Field(
        None, pattern=r"^[^/\s:]+:[0-9]+$", description="The server's gRPC endpoint (host:port); the smoke test also uses it."
    )
    model_repository: str = Field(description="The model repository the server reads (any fsspec URI: a folder, s3://...).")
    model_name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
        description="The model's name in Triton; defaults to the registered name.",
    )
    backend: Literal["onnxruntime", "python"] = Field(
        "onnxruntime",
        description="`onnxruntime`: platform onnxruntime_onnx (full Triton). `python`: a generated model.py runs ONNX Runtime.",
    )
    max_batch_size: int = Field(64, ge=0, description="Largest batch Triton forms; 0 turns batching off.")
    dynamic_batching: DynamicBatching | None = Field(
        default_factory=DynamicBatching, description="Dynamic batching settings; null turns it off."
    )
    instances: InstanceGroup = Field(default_factory=InstanceGroup, description="The model's instance group.")
    keep_versions: int = Field(2, ge=1, le=100, description="Version folders kept in the repository (the new one included).")
    ready_timeout: float = Field(120.0, gt=0, description="Seconds to wait for the new version to load and become ready.")
    smoke_rows: int = Field(
        16, ge=1, le=10_000, description="Held-out rows sent to the new version and compared with ONNX Runtime."
    )
    tolerance: float = Field(1e-5, gt=0, description="Largest difference allowed between Triton's and local probabilities.")
    candidate: bool = Field(
        True,
        description=(
            "Load and smoke-test the new version as `<model>__candidate` before it takes traffic, so that a version "
            "that fails never answers a client (costs a second load). false: swap, smoke-test, roll back on failure."
        ),
    )
    max_opset: int | None = Field(
        None, ge=1, description="Highest ONNX opset the server's ONNX Runtime supports; checked against the export's opset."
    )
    config_extra: str = Field("", description="Text appended to the generated config.pbtxt (e.g. optimization or parameters).")
    signing: Signing | None = Field(
        None,
        description=(
            "Sign each version with an ed25519 key (`{key_file: PATH}` or `{key_env: VAR}`): a manifest.json listing "
            "model.onnx, contract.json and lineage.json, and its manifest.sig. The deploy checks what it wrote; with "
            "`backend: python`, a server started with the public key (`mlflowkit triton up --trusted-key`) loads nothing else."
        ),
    )
