"""Data kinds: ``load`` reads a table from any fsspec URI; ``split`` holds out a test set.

What can be known about the source before a run (it exists, it is a file, its header holds the columns
the spec names) is checked at validate time by :mod:`._source`, which reads the header only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from mlflowkit.errors import StepFailed
from mlflowkit.kinds._frames import load_frame, save_frame
from mlflowkit.kinds._source import SKIP_HINT, SourceProblem, header_of, resolve_source, source_problem
from mlflowkit.kinds.base import Inputs, Params, SectionIssues, StepContext, StepKind

if TYPE_CHECKING:
    from mlflowkit.store import Ref

__all__ = ["Load", "Split"]

# What travels from the loaded table to the splits, the model and the evaluation.
CARRIED = ("target", "positive", "data_fingerprint")


def _resolve(ctx: StepContext, source: str) -> str:
    return resolve_source(ctx.spec_dir, source)


def _fail_on_source(step: str, source: str, uri: str) -> None:
    """Raise StepFailed (one line: what and what to do) when the source is missing, a folder, a device or empty."""
    problem = source_problem(uri)
    if problem is not None:
        raise StepFailed(step, f"data.source {source}: {problem.message} ({problem.hint})" if problem.hint else problem.message)


class LoadParams(Params):
    """Where the table is and which column is the target."""

    source: str = Field(description="Path (relative to the spec) or fsspec URI of a CSV or Parquet file.")
    target: str = Field(description="The column to predict.")
    format: Literal["auto", "csv", "parquet"] = Field("auto", description="File format; `auto` goes by the extension.")
    columns: list[str] | None = Field(None, description="Keep only these columns (the target is always kept).")
    positive: str | int | bool | None = Field(
        None,
        description=(
            "The positive class of a binary target: what precision, recall, f1, roc_auc and fairness are about."
            " Default: the greater of the two labels (sorted), e.g. `yes` over `no`, 1 over 0."
        ),
    )
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
    keeps_columns = True

    @classmethod
    def check(cls, section: Any, spec: Any) -> SectionIssues:
        if section.columns is not None and section.target in section.columns:
            message = f"the target {section.target!r} is always kept; columns lists the others"
            yield ("columns",), message, "remove it from columns"
        if not spec.read_data:
            return
        uri = resolve_source(spec.spec_dir, section.source)
        problem = source_problem(uri)
        if problem is None:
            try:
                header_of(uri, section.format, section.read_options)
            except SourceProblem as exc:
                problem = exc
        if problem is not None:
            yield ("source",), problem.message, f"{problem.hint}, {SKIP_HINT}" if problem.missing else problem.hint

    @classmethod
    def columns_provided(cls, section: Any, spec: Any) -> list[str] | None:
        if not spec.read_data:
            return None
        try:
            return header_of(resolve_source(spec.spec_dir, section.source), section.format, section.read_options)
        except SourceProblem:
            return None  # check() reports what is wrong with the source itself

    @classmethod
    def columns_read(cls, section: Any, spec: Any) -> Iterator[tuple[tuple[str | int, ...], str]]:
        yield ("target",), section.target
        for i, column in enumerate(section.columns or ()):
            yield ("columns", i), column

    @classmethod
    def prefetch(cls) -> None:
        import pandas  # noqa: F401
        import pyarrow.parquet  # noqa: F401

    def fingerprint(self, ctx: StepContext, params: LoadParams) -> str | None:
        import fsspec

        uri = _resolve(ctx, params.source)
        _fail_on_source(ctx.step, params.source, uri)
        digest = hashlib.sha256()
        with fsspec.open(uri, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()

    def run(self, ctx: StepContext, params: LoadParams, inputs: Inputs) -> dict[str, Ref]:
        import fsspec
        import pandas as pd

        from mlflowkit.plugins import did_you_mean

        uri = _resolve(ctx, params.source)
        _fail_on_source(ctx.step, params.source, uri)
        fmt = params.format
        if fmt == "auto":
            fmt = "parquet" if uri.endswith((".parquet", ".pq")) else "csv"
        try:
            with fsspec.open(uri, "rb") as fh:
                frame = pd.read_parquet(fh, **params.read_options) if fmt == "parquet" else pd.read_csv(fh, **params.read_options)
        except (ValueError, TypeError, UnicodeDecodeError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StepFailed(ctx.step, f"cannot read {params.source} as {fmt}: {first}") from exc
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
        if params.positive is not None:
            labels = {str(v) for v in frame[params.target].dropna().unique()}
            if str(params.positive) not in labels:
                shown = ", ".join(sorted(labels)[:10])
                raise StepFailed(ctx.step, f"data.positive {params.positive!r} is not a value of {params.target!r} ({shown})")
        ctx.logger.info("loaded %s rows x %s columns from %s", len(frame), frame.shape[1], params.source)
        meta = {"target": params.target, "positive": params.positive, "data_fingerprint": fingerprint}
        return {"dataset": save_frame(ctx.store, frame, **meta)}


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
    keeps_columns = True

    @classmethod
    def prefetch(cls) -> None:
        import sklearn.model_selection  # noqa: F401

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
        carry = {k: ref.meta[k] for k in CARRIED if k in ref.meta}
        return {
            "train": save_frame(ctx.store, train.reset_index(drop=True), part="train", **carry),
            "test": save_frame(ctx.store, test.reset_index(drop=True), part="test", **carry),
        }
