"""The ``ratio-features`` step kind: add ratio columns to the train and test tables, drop id columns."""

from __future__ import annotations

from typing import Any

from pydantic import Field

import mlflowkit
from mlflowkit.kinds.base import SectionIssues
from mlflowkit.steps import read_table, write_table


class RatioParams(mlflowkit.Params):
    """Which ratio columns to add, and which columns to drop."""

    ratios: dict[str, tuple[str, str]] = Field(
        description="New column -> [numerator, denominator]; the denominator gets +1 so that zero is safe."
    )
    cap: float | None = Field(None, gt=0, description="Upper bound of every ratio (none: no bound).")
    drop: list[str] = Field(default_factory=list, description="Columns to drop, such as ids.")


class RatioFeatures(mlflowkit.StepKind):
    """Add ratio columns to every table from the step before (the train and test splits).

    Example:

    ```yaml
    features:
      ratios: {charges_per_tenure: [monthly_charges, tenure_months]}
      cap: 100
      drop: [customer_id]
    ```
    """

    Params = RatioParams
    summary = "add ratio columns (numerator / (denominator + 1)) and drop id columns"

    @classmethod
    def check(cls, section: Any, spec: Any) -> SectionIssues:
        # Runs at validate time: cheap checks of the section against the rest of the spec.
        target = getattr(spec.section("data"), "target", None)
        for name, (numerator, denominator) in section.ratios.items():
            if target in (numerator, denominator):
                yield ("ratios", name), f"ratio {name!r} reads the target column {target!r}", "that would leak the label"
        if target in section.drop:
            yield ("drop",), f"drop removes the target column {target!r}", f"remove {target!r} from drop"

    def run(self, ctx: mlflowkit.StepContext, params: RatioParams, inputs: mlflowkit.Inputs) -> dict[str, Any]:
        # pandas is imported by read_table, inside run(): `mlflowkit validate` does not load it.
        outputs = {}
        for part in ("train", "test"):
            frame = read_table(ctx, inputs[part]).drop(columns=params.drop, errors="ignore")
            for name, (numerator, denominator) in params.ratios.items():
                ratio = frame[numerator] / (frame[denominator] + 1)
                frame[name] = ratio.clip(upper=params.cap) if params.cap is not None else ratio
            # like=: the new table keeps what later steps read from the old one (target column, lineage).
            outputs[part] = write_table(ctx, frame, like=inputs[part])
        ctx.logger.info("added %s to train and test", ", ".join(params.ratios))
        return outputs
