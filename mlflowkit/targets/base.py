"""What every deploy target is: a frozen spec section with a ``target:`` tag and a ``deploy`` method.

The deploy step hands each target one :class:`Release` (a registered version's ONNX model, contract,
lineage and held-out rows for a smoke test) and gets back a JSON-able record of what was done. A
target that fails raises :class:`DeployError` after putting its previous state back, so that the
previous version keeps serving there. Rolling a model back is deploying the older release again,
so a target needs no separate rollback method.

Subclasses set ``target: Literal["name"]`` (and may have a ``max_opset`` field, which export checks
the model's opset against) and import their client libraries inside ``deploy``, so
that loading a spec stays light.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from mlflowkit.errors import MlflowkitError

if TYPE_CHECKING:
    import pandas as pd

    from mlflowkit.targets.contract import Contract

__all__ = ["DeployError", "DeployTarget", "Release"]


class DeployError(MlflowkitError):
    """A deploy failed; the target's previous state was restored (the message says what serves)."""


@dataclass(frozen=True)
class Release:
    """One registered version, ready to go to a target.

    Attributes:
        model: the registered model's name.
        version: the registry's version number (targets use it as their own version).
        onnx: the ONNX model's bytes.
        contract: the model's contract (tensors, classes).
        smoke: held-out rows for a smoke comparison (the test split), or None when none is at hand
            (a rollback from the CLI); targets then compare on rows they keep themselves or skip it.
        lineage: the version's lineage (spec hash, metrics, verdict, run id, ...).
    """

    model: str
    version: int
    onnx: bytes
    contract: Contract
    smoke: pd.DataFrame | None = None
    lineage: dict[str, Any] = field(default_factory=dict)


class DeployTarget(BaseModel):
    """Base of every deploy target's spec section (``deploy: [{target: NAME, ...}]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str = Field(description="The deploy target's type.")
    model_name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="The model's name at the target; defaults to the registered model's name.",
    )

    summary: ClassVar[str] = ""
    """One line for listings (`mlflowkit plugins list`)."""

    @property
    def destination(self) -> str:
        """Where this target deploys to (a URL or URI), for messages, records and duplicate checks."""
        raise NotImplementedError

    def deploy(self, release: Release, *, name: str, log: Callable[[str], None]) -> dict[str, Any]:
        """Deploy ``release`` under ``name`` and verify it serves; on failure restore and raise.

        Returns:
            A JSON-able record with at least ``target``, ``destination``, ``model``, ``version`` and
            ``previous`` (the version that served before, or None).

        Raises:
            DeployError: the release does not serve; what served before serves still.
        """
        raise NotImplementedError
