"""Example mlflowkit plug-ins: each module is one extension, registered in this package's pyproject."""

from __future__ import annotations

from mlflowkit.recipes import recipe_path

# A recipe is a YAML file; its entry point names the file's path.
tabular_classification_features = recipe_path(__name__, "recipes/tabular-classification-features.yaml")
