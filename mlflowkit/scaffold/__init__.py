"""``mlflowkit init``: a ready-to-run project from a recipe (spec, sample data, README, a test, editor set-up).

The sample data is generated here, deterministically and without a download, so that a scaffolded
project validates and runs as it is. Templates live in ``templates/<recipe>/`` (``{{name}}`` is
replaced by the project's name); the README and the test are shared by every recipe. The spec's
JSON Schema is written beside it and named by a ``yaml-language-server`` modeline and the VS Code
settings, so an editor checks and completes the spec as it is typed (docs/editor.md).
"""

from __future__ import annotations

import csv
import json
import math
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflowkit.spec.recipe import Recipe

__all__ = ["SCHEMA_FILE", "TEMPLATES", "scaffold", "scaffoldable"]

TEMPLATES = Path(__file__).parent / "templates"
DATA_FILE = "data/sample.csv"
SCHEMA_FILE = "mlflowkit.schema.json"
# The YAML language server (VS Code's YAML extension, neovim's yamlls, ...) reads this first line; the
# path is relative to the spec.
MODELINE = f"# yaml-language-server: $schema=./{SCHEMA_FILE}\n"


def scaffoldable() -> list[str]:
    """The recipes ``mlflowkit init`` can scaffold."""
    return sorted(p.name for p in TEMPLATES.iterdir() if (p / "spec.yaml.tmpl").is_file())


def _classification(rows: int, seed: int) -> list[dict[str, Any]]:
    """A small telecom churn table with a learnable signal (the target is yes/no)."""
    rng = random.Random(seed)  # noqa: S311 - sample data, not secrets
    out = []
    for _ in range(rows):
        tenure = rng.randint(0, 72)
        contract = rng.choices(["month-to-month", "one-year", "two-year"], weights=[55, 25, 20])[0]
        monthly = round(min(max(rng.gauss(70, 25), 18), 130), 2)
        calls = min(int(rng.expovariate(0.7)), 9)
        uplift = {"month-to-month": 1.4, "one-year": 0.0}.get(contract, -1.2)
        logit = -0.8 - 0.05 * tenure + 0.025 * (monthly - 70) + 0.5 * calls + uplift
        churned = rng.random() < 1 / (1 + math.exp(-logit))
        out.append(
            {
                "tenure_months": tenure,
                "contract": contract,
                "monthly_charges": monthly,
                "support_calls": calls,
                "churned": "yes" if churned else "no",
            }
        )
    return out


def _regression(rows: int, seed: int) -> list[dict[str, Any]]:
    """A small house-price table: price depends on area, rooms, age, district and distance, plus noise."""
    rng = random.Random(seed)  # noqa: S311 - sample data, not secrets
    uplift = {"centre": 1.35, "north": 1.0, "south": 0.9, "east": 1.1}
    out = []
    for _ in range(rows):
        area = round(rng.uniform(35, 220), 1)
        rooms = max(1, min(8, round(area / 30 + rng.gauss(0, 0.8))))
        age = rng.randint(0, 90)
        district = rng.choice(sorted(uplift))
        distance = round(rng.uniform(0.5, 25), 2)
        price = (2800 * area + 9000 * rooms - 900 * age - 3500 * distance + 40000) * uplift[district] + rng.gauss(0, 15000)
        out.append(
            {
                "area_sqm": area,
                "rooms": rooms,
                "age_years": age,
                "district": district,
                "distance_km": distance,
                "price": round(max(price, 20000.0), 0),
            }
        )
    return out


_DATA: dict[str, Callable[[int, int], list[dict[str, Any]]]] = {
    "tabular-classification": _classification,
    "tabular-regression": _regression,
    "torch-tabular-classification": _classification,
}


def _fields_table(recipe: Recipe) -> str:
    lines = ["| field | required | default | description |", "|---|---|---|---|"]
    ordered = sorted(recipe.fields.items(), key=lambda item: not item[1].required)
    for path, field in ordered:
        default = recipe.default_of(path)
        shown = "" if default is None else json.dumps(default)
        lines.append(f"| `{path}` | {'yes' if field.required else 'no'} | {shown} | {field.description} |")
    return "\n".join(lines)


def scaffold(recipe_name: str, dest: Path, *, name: str | None = None, rows: int = 800, seed: int = 7) -> list[Path]:
    """Write a project for ``recipe_name`` into ``dest`` (which must be empty or missing).

    Returns:
        The files written, relative to ``dest``.

    Raises:
        ValueError: the recipe has no template, the name is not a valid spec name, or ``dest`` has files.
    """
    from mlflowkit.plugins import did_you_mean, recipes
    from mlflowkit.spec.recipe import load_recipe
    from mlflowkit.spec.schema import json_schema

    if recipe_name not in scaffoldable():
        hint = did_you_mean(recipe_name, scaffoldable())
        raise ValueError(
            f"no project template for recipe {recipe_name!r}{' (' + hint + ')' if hint else ''}; "
            f"templates: {', '.join(scaffoldable())}"
        )
    project = name or re.sub(r"[^a-z0-9._-]+", "-", dest.resolve().name.lower()).strip("-._") or "project"
    if not re.match(r"^[a-z0-9][a-z0-9._-]{0,63}$", project):
        raise ValueError(f"project name {project!r} must be lowercase letters, digits, '.', '_' or '-' (use --name)")
    if dest.exists() and any(dest.iterdir()):
        raise ValueError(f"{dest} is not empty; scaffold into a new folder")
    recipe, _ = load_recipe(Path(recipes().get(recipe_name)))
    folder = TEMPLATES / recipe_name
    module = project.replace("-", "_").replace(".", "_")
    values = {"name": project, "recipe": recipe_name, "module": module, "description": recipe.description, "data": DATA_FILE}
    values["fields"] = _fields_table(recipe)

    def fill(text: str) -> str:
        return re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], text)

    written: dict[str, str] = {
        "spec.yaml": MODELINE + fill((folder / "spec.yaml.tmpl").read_text()),
        SCHEMA_FILE: json.dumps(json_schema(), indent=2, sort_keys=True) + "\n",
        ".vscode/settings.json": json.dumps({"yaml.schemas": {f"./{SCHEMA_FILE}": ["spec.yaml"]}}, indent=2) + "\n",
        "README.md": fill((TEMPLATES / "README.md.tmpl").read_text()),
        f"tests/test_{module}.py": fill((TEMPLATES / "test_spec.py.tmpl").read_text()),
        ".gitignore": ".mlflowkit/\n__pycache__/\n",
    }
    dest.mkdir(parents=True, exist_ok=True)
    for rel, text in written.items():
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    table = _DATA[recipe_name](rows, seed)
    data = dest / DATA_FILE
    data.parent.mkdir(parents=True, exist_ok=True)
    with data.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    return sorted(Path(p) for p in [*written, DATA_FILE])
