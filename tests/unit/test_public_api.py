"""The public API stays small and deliberate."""

from __future__ import annotations

import mlflowkit


def test_exports_are_exactly_these() -> None:
    assert sorted(mlflowkit.__all__) == sorted(
        [
            "DeployError",
            "DeployTarget",
            "GateFailed",
            "Inputs",
            "MlflowkitError",
            "Params",
            "PluginError",
            "RegistryError",
            "Release",
            "Spec",
            "SpecError",
            "StepContext",
            "StepFailed",
            "StepKind",
            "__version__",
            "compile",
            "load_model",
            "load_spec",
            "metric",
            "models",
            "run",
            "runs",
            "step",
        ]
    )
    for name in mlflowkit.__all__:
        assert hasattr(mlflowkit, name)


def test_version_matches_the_distribution() -> None:
    from importlib.metadata import version

    assert mlflowkit.__version__ == version("mlflowkit")



def test_run_stays_the_function_after_the_engine_is_imported() -> None:
    """The engine package once was ``mlflowkit.run``: importing it rebound ``mlflowkit.run`` to the module."""
    import subprocess
    import sys

    code = "import mlflowkit, mlflowkit.runtime.engine, mlflowkit.runtime.monitor; print(callable(mlflowkit.run))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "True"
