"""The edge side of the ``onnxruntime`` target: signed bundles, the device (pull, rollback), the runner and its server.

Everything here runs on a small device with the ``edge`` extra only (ONNX Runtime, numpy, cryptography and
mlflowkit's core): it never imports Prefect, Ray, Great Expectations, pandas or scikit-learn (an
import-linter contract and a test hold that). See ``docs/edge.md``.
"""

from __future__ import annotations

from mlflowkit.edge.errors import BundleRefused, EdgeError, InputError

__all__ = ["BundleRefused", "EdgeError", "InputError"]
