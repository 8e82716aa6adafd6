"""Deploy targets: where an exported ONNX model goes (a Triton server; signed ONNX Runtime bundles for edge devices).

Each target is a frozen pydantic model with a ``target:`` tag, so that the spec's ``deploy:`` list is a
discriminated union (see :data:`mlflowkit.kinds.deploy.TargetSpec`). Target modules import only
pydantic at import time; their client libraries are imported inside the functions that deploy.
"""

from __future__ import annotations

__all__: list[str] = []
