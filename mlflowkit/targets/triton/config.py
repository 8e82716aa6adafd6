"""The ``config.pbtxt`` of a Triton model: its tensors from the model's contract, its serving settings from the spec."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflowkit.targets.contract import Contract
    from mlflowkit.targets.triton.settings import TritonSettings

__all__ = ["render_config"]

_CONFIG_TYPES = {
    "float32": "TYPE_FP32",
    "float64": "TYPE_FP64",
    "int64": "TYPE_INT64",
    "int32": "TYPE_INT32",
    "string": "TYPE_STRING",
}


def _dims(shape: tuple[int, ...], batched: bool) -> tuple[str, str]:
    """``dims`` and an optional ``reshape`` for one tensor (Triton forbids empty dims)."""
    inner = shape[1:] if batched else shape
    if not inner:
        return "[ 1 ]", " reshape: { shape: [ ] }"
    return "[ " + ", ".join(str(d) for d in inner) + " ]", ""


def render_config(name: str, version: int, contract: Contract, settings: TritonSettings) -> str:
    """The ``config.pbtxt`` for ``version`` of ``name``: tensors from the contract, serving settings from the spec.

    The version policy names the one version that serves, so that a rollback is a config change.
    """
    batched = settings.max_batch_size > 0
    lines = [f'name: "{name}"']
    lines.append('backend: "python"' if settings.backend == "python" else 'platform: "onnxruntime_onnx"')
    lines.append(f"max_batch_size: {settings.max_batch_size}")
    lines.append(f"version_policy: {{ specific: {{ versions: [ {version} ] }} }}")
    for section, tensors in (("input", contract.inputs), ("output", contract.outputs)):
        entries = []
        for t in tensors:
            dims, reshape = _dims(t.shape, batched)
            entries.append(f'  {{ name: "{t.name}" data_type: {_CONFIG_TYPES[t.dtype]} dims: {dims}{reshape} }}')
        lines.append(f"{section} [\n" + ",\n".join(entries) + "\n]")
    if batched and settings.dynamic_batching is not None:
        batching = settings.dynamic_batching
        preferred = (
            f" preferred_batch_size: [ {', '.join(map(str, batching.preferred_batch_size))} ]"
            if batching.preferred_batch_size
            else ""
        )
        lines.append(f"dynamic_batching {{ max_queue_delay_microseconds: {batching.max_queue_delay_microseconds}{preferred} }}")
    kind = "KIND_GPU" if settings.instances.kind == "gpu" else "KIND_CPU"
    lines.append(f"instance_group [ {{ count: {settings.instances.count} kind: {kind} }} ]")
    lines.append(f'parameters {{ key: "mlflowkit_version" value: {{ string_value: "{version}" }} }}')
    if settings.config_extra:
        lines.append(settings.config_extra.rstrip("\n"))
    return "\n".join(lines) + "\n"
