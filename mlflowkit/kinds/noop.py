"""The ``noop`` kind: does nothing but pass its inputs on; for wiring tests and orchestration benchmarks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from mlflowkit.kinds.base import Inputs, Params, StepContext, StepKind

if TYPE_CHECKING:
    from mlflowkit.store import Ref

__all__ = ["Noop"]


class NoopParams(Params):
    """Nothing to configure but a label."""

    label: str = Field("", description="Free text, shown in the plan.")


class Noop(StepKind):
    """Pass every input through unchanged.

    Example:

    ```yaml
    warmup:
      kind: noop
      label: placeholder for a later step
    ```
    """

    Params = NoopParams
    summary = "do nothing; pass inputs through"
    keeps_columns = True

    def run(self, ctx: StepContext, params: NoopParams, inputs: Inputs) -> dict[str, Ref]:
        return dict(inputs)
