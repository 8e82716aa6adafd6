"""The built-in recipes, exposed as entry-point targets (paths to their YAML files).

The YAML files live in the repository's top-level ``recipes/`` folder; wheels carry them inside the
package as ``mlflowkit/_recipes``. An editable checkout reads them from the repository directly.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["builtin_recipe", "tabular_classification"]

_PACKAGED = Path(__file__).parent / "_recipes"
_CHECKOUT = Path(__file__).parent.parent / "recipes"


def builtin_recipe(name: str) -> str:
    """The path of the built-in recipe ``name`` (whether installed from a wheel or a checkout)."""
    folder = _PACKAGED if _PACKAGED.is_dir() else _CHECKOUT
    return str(folder / f"{name}.yaml")


tabular_classification = builtin_recipe("tabular-classification")
