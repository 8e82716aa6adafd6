"""Run a step kind directly, without a runner or Prefect: a StepContext on a real store and registry in a temp folder.

Also a small generated churn-like table, so that kinds can be chained (load -> split -> sklearn -> ...)
in unit tests in about a second.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflowkit.handoff import Ref, Trigger
from mlflowkit.kinds.base import Inputs, Report, StepContext, StepKind
from mlflowkit.store import ArtifactStore, ModelRegistry

__all__ = ["Harness", "Trained", "write_table"]


def write_table(path: Path, rows: int = 400, seed: int = 0) -> Path:
    """A CSV with numbers (some missing), categories and a yes/no target that depends on them."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, rows)
    charges = rng.normal(70, 20, rows).round(2)
    contract = rng.choice(["month-to-month", "one-year", "two-year"], rows)
    gender = rng.choice(["female", "male"], rows)
    score = (charges - 70) / 20 - tenure / 24 + (contract == "month-to-month") * 1.0 + rng.normal(0, 0.7, rows)
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(rows),
            "tenure_months": tenure,
            "monthly_charges": np.where(rng.random(rows) < 0.03, np.nan, charges),
            "contract": contract,
            "gender": gender,
            "churned": np.where(score > 0.3, "yes", "no"),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


@dataclass(frozen=True)
class Trained:
    """What load -> split -> sklearn left in a shared store: the refs, where the store and the data are."""

    store: Path
    folder: Path
    dataset: Ref
    train: Ref
    test: Ref
    model: Ref


class Harness:
    """A StepContext factory over a store, a registry and a spec folder; runs kinds and keeps what they report.

    Args:
        root: a temp folder: the store is ``root/store``, the registry ``root/store/registry``.
        spec_dir: the spec's folder (data paths and user modules resolve against it); ``root`` by default.
        model: the registered model's name.
    """

    def __init__(self, root: Path, spec_dir: Path | None = None, *, model: str = "churn") -> None:
        self.root = root
        self.spec_dir = spec_dir or root
        self.store = ArtifactStore(root / "store")
        self.registry = ModelRegistry(root / "store" / "registry")
        self.model = model
        self.reports: list[Report] = []
        self.trigger: Trigger | None = None
        self.params: dict[str, Any] = {}

    def context(self, step: str = "step", run_id: str = "run-1") -> StepContext:
        """The context a step named ``step`` of run ``run_id`` gets."""
        return StepContext(
            step=step,
            run_id=run_id,
            spec_name="test-spec",
            spec_hash="0" * 64,
            spec_dir=str(self.spec_dir),
            store=self.store,
            registry=self.registry,
            logger=logging.getLogger(f"test.{step}"),
            model_name=self.model,
            params=self.params,
            trigger=self.trigger,
            publish=self.reports.append,
        )

    def run(
        self,
        kind: type[StepKind],
        params: Mapping[str, Any] | None = None,
        inputs: Mapping[str, Ref] | None = None,
        *,
        step: str = "step",
        run_id: str = "run-1",
    ) -> dict[str, Ref]:
        """Validate ``params`` as the kind's Params and run it on ``inputs`` (as if one upstream step made them)."""
        instance = kind()
        validated = instance.Params.model_validate(dict(params or {}))
        return instance.run(self.context(step, run_id), validated, Inputs({"upstream": dict(inputs or {})}, ("upstream",)))

    def report(self, key: str) -> Report:
        """The last report published under ``key``."""
        return [r for r in self.reports if r.key == key][-1]
