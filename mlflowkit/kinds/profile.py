"""The ``profile`` kind: the reference profile that monitoring compares live data with.

It summarises every feature of the training split and the exported model's outputs on the held-out
split (scored with ONNX Runtime, as live data will be), and hands the profile to ``register``, which
stores it with the version as ``profile.json``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from pydantic import Field

from mlflowkit.handoff import PROFILE
from mlflowkit.kinds.base import Inputs, Params, StepContext, StepKind

if TYPE_CHECKING:
    from mlflowkit.store import Ref

__all__ = ["Profile"]


class ProfileParams(Params):
    """How the reference sample is drawn."""

    seed: int = Field(0, description="Seed of the reference sample kept for the KS test.")


class Profile(StepKind):
    """Profile the training data and the model's held-out outputs for drift monitoring.

    Example (the recipe places it; nothing to configure but the seed):

    ```yaml
    profile:
      seed: 7
    ```
    """

    Params = ProfileParams
    summary = "profile the training data and the model's outputs (the monitoring reference)"
    keeps_columns = True

    def run(self, ctx: StepContext, params: ProfileParams, inputs: Inputs) -> dict[str, Ref]:
        from mlflowkit.kinds._frames import load_frame
        from mlflowkit.monitor.profile import build_profile, predictions_for
        from mlflowkit.targets.contract import Contract

        train = load_frame(ctx.store, inputs["train"])
        target = inputs["train"].meta.get("target")
        predictions = None
        if "contract" in inputs and "onnx" in inputs:
            contract = Contract.model_validate_json(ctx.store.get_bytes(inputs["contract"]))
            features = list(contract.features)
            predictions = predictions_for(contract, ctx.store.get_bytes(inputs["onnx"]), load_frame(ctx.store, inputs["test"]))
        else:
            features = [c for c in train.columns if c != target]
        profile = build_profile(train, features, predictions=predictions, seed=params.seed)
        drifting = ", ".join(f"{name} ({s['type']})" for name, s in profile["features"].items())
        ctx.logger.info("profiled %d rows: %s", len(train), drifting)
        body = json.dumps(profile, sort_keys=True).encode()
        return {"profile": ctx.store.put_bytes(body, PROFILE, {"rows": len(train), "features": len(features)})}
