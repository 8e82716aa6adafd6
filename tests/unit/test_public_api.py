"""The public API stays small and deliberate."""

from __future__ import annotations

import mlflowkit


def test_exports_are_exactly_these() -> None:
    assert sorted(mlflowkit.__all__) == sorted(
        [
            "GateFailed",
            "Inputs",
            "MlflowkitError",
            "Params",
            "PluginError",
            "RegistryError",
            "Spec",
            "SpecError",
            "StepContext",
            "StepFailed",
            "StepKind",
            "__version__",
            "compile",
            "load_spec",
            "run",
        ]
    )
    for name in mlflowkit.__all__:
        assert hasattr(mlflowkit, name)


def test_version_matches_the_distribution() -> None:
    from importlib.metadata import version

    assert mlflowkit.__version__ == version("mlflowkit")
