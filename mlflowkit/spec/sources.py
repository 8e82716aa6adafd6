"""Where each value of a resolved spec came from (the spec, the recipe's defaults, a ``--set``), to locate issues."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlflowkit.errors import SpecIssue
from mlflowkit.spec._yaml import LoadedYaml, dotted

__all__ = ["Sources", "YamlPath"]

YamlPath = tuple[str | int, ...]


@dataclass
class Sources:
    """Where each value of a resolved spec came from, so an issue can point at the right file."""

    spec: LoadedYaml
    recipe: LoadedYaml | None = None
    overrides: dict[YamlPath, str] = field(default_factory=dict)
    wrapped: dict[YamlPath, str] = field(default_factory=dict)
    """Sections written as a bare list (``gates: [...]``) -> the field the list became (``rules``)."""
    singletons: set[YamlPath] = field(default_factory=set)
    """Lists written as one mapping (``schedule: {cron: ...}``): item 0 is the mapping itself."""

    def yaml_path(self, path: YamlPath) -> YamlPath:
        """A path into the validated spec as written in the YAML: a bare-list section has no list field."""
        for prefix, list_field in self.wrapped.items():
            n = len(prefix)
            if path[:n] == prefix and len(path) > n and path[n] == list_field:
                return (*prefix, *path[n + 1 :])
        for prefix in self.singletons:
            n = len(prefix)
            if path[:n] == prefix and len(path) > n and path[n] == 0:
                return (*prefix, *path[n + 1 :])
        return path

    def issue(self, path: YamlPath, message: str, *, hint: str = "", prefer_key: bool = False) -> SpecIssue:
        """A located issue: an override's ``--set``, else the spec, else the recipe's defaults."""
        path = self.yaml_path(tuple(path))
        for length in range(len(path), 0, -1):
            if path[:length] in self.overrides:
                return SpecIssue(message, dotted(path), "<--set>", 0, 0, hint, self.overrides[path[:length]])
        in_spec = path in self.spec.values or path in self.spec.keys
        recipe_path = ("defaults", *path)
        if not in_spec and self.recipe is not None and (recipe_path in self.recipe.values or recipe_path in self.recipe.keys):
            found = self.recipe.issue(recipe_path, message, hint=hint, prefer_key=prefer_key)
            return SpecIssue(found.message, dotted(path), found.file, found.line, found.col, found.hint, found.snippet)
        return self.spec.issue(path, message, hint=hint, prefer_key=prefer_key)
