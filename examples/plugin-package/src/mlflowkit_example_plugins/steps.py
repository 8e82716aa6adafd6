"""A custom step made with ``@mlflowkit.step``: usable as ``uses: mlflowkit_example_plugins.steps:drop_columns``
in a spec's ``steps:``, and registered as the kind ``drop-columns`` too (``drop_columns.kind``)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

import mlflowkit


class DropParams(mlflowkit.Params):
    """Columns to drop from the tables."""

    columns: list[str] = Field(min_length=1, description="Columns to drop; a missing one is an error.")


@mlflowkit.step(params=DropParams, inputs=["train", "test"], outputs=["train", "test"])
def drop_columns(train: Any, test: Any, params: DropParams) -> dict[str, Any]:
    """Drop columns (say, free text the model should not see) from the train and test tables."""
    return {"train": train.drop(columns=params.columns), "test": test.drop(columns=params.columns)}
