"""Data kinds: ``load`` reads a table from any fsspec URI; ``split`` holds out a test set."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from mlflowkit.errors import StepFailed
from mlflowkit.kinds._frames import load_frame, save_frame
from mlflowkit.kinds.base import Inputs, Params, StepContext, StepKind

if TYPE_CHECKING:
    from mlflowkit.store import Ref

__all__ = ["Load", "Split"]


def _resolve(ctx: StepContext, source: str) -> str:
    if "://" in source or source.startswith("/"):
        return source
    import os

    return os.path.join(ctx.spec_dir, source)


class LoadParams(Params):
    """Where the table is and which column is the target."""

    source: str = Field(description="Path (relative to the spec) or fsspec URI of a CSV or Parquet file.")
    target: str = Field(description="The column to predict.")
    format: Literal["auto", "csv", "parquet"] = Field("auto", description="File format; `auto` goes by the extension.")
    columns: list[str] | None = Field(None, description="Keep only these columns (the target is always kept).")
    read_options: dict[str, Any] = Field(default_factory=dict, description="Extra keyword arguments for the pandas reader.")


class Load(StepKind):
    """Read a table and record its fingerprint (rows, schema hash, content hash).

    Example:

    ```yaml
    data:
      source: data/churn.csv
      target: churned
    ```
    """

    Params = LoadParams
    summary = "read a CSV/Parquet table from any fsspec URI"

    def fingerprint(self, ctx: StepContext, params: LoadParams) -> str | None:
        import fsspec

        digest = hashlib.sha256()
        try:
            with fsspec.open(_resolve(ctx, params.source), "rb") as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
        except FileNotFoundError:
            raise StepFailed(
                ctx.step, f"data source not found: {params.source} (looked at {_resolve(ctx, params.source)})"
            ) from None
        return digest.hexdigest()

    def run(self, ctx: StepContext, params: LoadParams, inputs: Inputs) -> dict[str, Ref]:
        import fsspec
        import pandas as pd

        from mlflowkit.plugins import did_you_mean

        uri = _resolve(ctx, params.source)
        fmt = params.format
        if fmt == "auto":
            fmt = "parquet" if uri.endswith((".parquet", ".pq")) else "csv"
        try:
            with fsspec.open(uri, "rb") as fh:
                frame = pd.read_parquet(fh, **params.read_options) if fmt == "parquet" else pd.read_csv(fh, **params.read_options)
        except FileNotFoundError:
            raise StepFailed(ctx.step, f"data source not found: {params.source} (looked at {uri})") from None
        except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise StepFailed(ctx.step, f"cannot read {params.source} as {fmt}: {exc}") from exc
        if params.target not in frame.columns:
            hint = did_you_mean(params.target, [str(c) for c in frame.columns])
            raise StepFailed(
                ctx.step,
                f"target column {params.target!r} is not in {params.source}{' (' + hint + ')' if hint else ''}; "
                f"columns: {', '.join(map(str, frame.columns))}",
            )
        if params.columns is not None:
            missing = [c for c in params.columns if c not in frame.columns]
            if missing:
                raise StepFailed(ctx.step, f"columns {missing} are not in {params.source}")
            frame = frame[[*dict.fromkeys([*params.columns, params.target])]]
        if frame.empty:
            raise StepFailed(ctx.step, f"{params.source} has no rows")
        schema = ",".join(f"{c}:{t}" for c, t in frame.dtypes.astype(str).items())
        fingerprint = {
            "rows": len(frame),
            "schema_hash": hashlib.sha256(schema.encode()).hexdigest(),
            "content_hash": self.fingerprint(ctx, params),
            "source": params.source,
        }
        ctx.logger.info("loaded %s rows x %s columns from %s", len(frame), frame.shape[1], params.source)
        return {"dataset": save_frame(ctx.store, frame, target=params.target, data_fingerprint=fingerprint)}


class SplitParams(Params):
    """How the held-out test set is drawn."""

    test_size: float = Field(0.2, gt=0, lt=1, description="Fraction of rows held out for evaluation.")
    stratify: bool = Field(True, description="Keep the target's class balance in both parts.")
    seed: int = Field(42, description="Random seed, so the same data always splits the same way.")


class Split(StepKind):
    """Hold out a test set, stratified by the target by default.

    Example:

    ```yaml
    data:
      split: {test_size: 0.25, stratify: true, seed: 7}
    ```
    """

    Params = SplitParams
    summary = "hold out a test set"

    def run(self, ctx: StepContext, params: SplitParams, inputs: Inputs) -> dict[str, Ref]:
        from sklearn.model_selection import train_test_split

        ref = inputs["dataset"]
        frame = load_frame(ctx.store, ref)
        target = ref.meta["target"]
        try:
            train, test = train_test_split(
                frame,
                test_size=params.test_size,
                random_state=params.seed,
                stratify=frame[target] if params.stratify else None,
            )
        except ValueError as exc:
            raise StepFailed(ctx.step, f"cannot split {len(frame)} rows (stratify={params.stratify}): {exc}") from exc
        carry = {k: ref.meta[k] for k in ("target", "data_fingerprint") if k in ref.meta}
        return {
            "train": save_frame(ctx.store, train.reset_index(drop=True), part="train", **carry),
            "test": save_frame(ctx.store, test.reset_index(drop=True), part="test", **carry),
        }
