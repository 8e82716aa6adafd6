"""mlflowkit: one YAML spec for the whole ML lifecycle, compiled to a Prefect flow."""

from __future__ import annotations

__version__ = "0.1.0"
