"""The built-in recipes, exposed as entry-point targets (paths to their YAML files); a recipe is a YAML file.

The YAML files live in the repository's top-level ``recipes/`` folder; wheels carry them inside the
package as ``mlflowkit/_recipes``. An editable checkout reads them from the repository directly.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["builtin_recipe", "recipe_path", "tabular_classification", "tabular_regression", "torch_tabular_classification"]

_PACKAGED = Path(__file__).parent / "_recipes"
_CHECKOUT = Path(__file__).parent.parent / "recipes"


def builtin_recipe(name: str) -> str:
    """The path of the built-in recipe ``name`` (whether installed from a wheel or a checkout)."""
    folder = _PACKAGED if _PACKAGED.is_dir() else _CHECKOUT
    return str(folder / f"{name}.yaml")


def recipe_path(package: str, filename: str) -> str:
    """The path of a recipe YAML file shipped inside ``package``, for a plug-in's ``mlflowkit.recipes`` entry point.

    A recipe is a YAML file (see ``recipes/`` for the format); a plug-in exposes it with a module-level
    string, e.g. ``my_recipe = recipe_path(__name__, "my-recipe.yaml")`` and
    ``my-recipe = "my_plugins:my_recipe"`` under ``[project.entry-points."mlflowkit.recipes"]``.
    """
    from importlib.resources import files

    return str(files(package).joinpath(filename))


tabular_classification = builtin_recipe("tabular-classification")
tabular_regression = builtin_recipe("tabular-regression")
torch_tabular_classification = builtin_recipe("torch-tabular-classification")
