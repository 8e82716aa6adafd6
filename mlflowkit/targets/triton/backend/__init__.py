"""The Python-backend ``model.py`` Triton runs for ``backend: python``, shipped as package data.

:mod:`mlflowkit.targets.triton.backend.model` is never imported by mlflowkit (it needs Triton's own
``triton_python_backend_utils``); the deploy copies its source into each version folder.
"""

from __future__ import annotations

from importlib.resources import files

__all__ = ["model_py"]


def model_py() -> str:
    """The source of the ``model.py`` a ``backend: python`` deploy writes beside ``model.onnx``."""
    return files(__name__).joinpath("model.py").read_text(encoding="utf-8")
