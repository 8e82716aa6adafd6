"""The ``python`` kind: a user's function (``uses: module:function``) applied to the tables flowing past.

A plain function takes a pandas DataFrame and keyword params and returns a DataFrame; it is applied to
every table its upstream step emitted (the dataset, or the train and test splits), so a feature step
placed before or after the split works the same way. A function decorated with ``@mlflowkit.step``
gets its declared inputs and typed params instead (see :mod:`mlflowkit.steps`).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.machinery
import importlib.util
import os
import sys
from typing import TYPE_CHECKING, Any

from pydantic import Field

from mlflowkit.errors import StepFailed
from mlflowkit.kinds._frames import PARQUET, load_frame, save_frame
from mlflowkit.kinds.base import Inputs, Params, StepContext, StepKind

if TYPE_CHECKING:
    from collections.abc import Callable

    from mlflowkit.store import Ref

__all__ = ["PythonStep"]


class PythonParams(Params):
    """The function to call and its keyword arguments."""

    uses: str = Field(description="`module:function`, imported from the spec's folder.")
    params: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments for the function.")


def _source_file(spec_dir: str, module_name: str) -> str | None:
    """The file that ``module_name`` resolves to from the spec's folder, without importing it."""
    parts = module_name.split(".")
    found = importlib.machinery.PathFinder.find_spec(parts[0], [spec_dir])
    for part in parts[1:]:
        if found is None or not found.submodule_search_locations:
            return None
        found = importlib.machinery.PathFinder.find_spec(part, list(found.submodule_search_locations))
    return found.origin if found is not None and found.has_location else None


def _drop_bytecode(origin: str) -> None:
    """Remove the cached bytecode of ``origin``: Python trusts a .pyc whose source has the same size and
    whole-second mtime, so an edit made within the second it was imported (``* 2`` to ``* 3``) would run the
    old code under the new code's cache key."""
    # No cached bytecode (or none possible): the import compiles the source.
    with contextlib.suppress(OSError, NotImplementedError, ValueError):
        os.remove(importlib.util.cache_from_source(origin))


def _import(ctx: StepContext, uses: str) -> Callable[..., Any]:
    module_name, _, attr = uses.partition(":")
    from mlflowkit.kinds._policy import governing_policy
    from mlflowkit.policy import import_refusal

    # Before anything of the module runs: importing it executes its code.
    if refusal := import_refusal(governing_policy(ctx), module_name, what="steps"):
        raise StepFailed(ctx.step, refusal)
    if ctx.spec_dir not in sys.path:
        sys.path.insert(0, ctx.spec_dir)
    origin = _source_file(ctx.spec_dir, module_name)
    loaded = sys.modules.get(module_name)
    if origin and loaded is not None and getattr(loaded, "__file__", None) != origin:
        # Another project's module of the same name (or a stale one) is cached in this process: a
        # notebook or a long-lived worker must run the code next to *this* spec.
        for name in [n for n in sys.modules if n == module_name or n.startswith(module_name + ".")]:
            del sys.modules[name]
    if origin:
        _drop_bytecode(origin)
    importlib.invalidate_caches()
    try:
        module = importlib.import_module(module_name)
        if origin and getattr(module, "__file__", None) == origin and loaded is module:
            module = importlib.reload(module)  # the file may have been edited since it was imported
    except ImportError as exc:
        raise StepFailed(ctx.step, f"cannot import {module_name!r} for uses: {uses}: {exc}") from exc
    except Exception as exc:  # the user's module may raise anything at import
        raise StepFailed(ctx.step, f"importing {module_name!r} raised {type(exc).__name__}: {exc}") from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise StepFailed(ctx.step, f"{module_name!r} has no function {attr!r}")
    return fn  # type: ignore[no-any-return]


class PythonStep(StepKind):
    """Apply a user function to every table from the step before it.

    Example:

    ```yaml
    steps:
      - name: add_features
        uses: churn_steps:add_features
        after: load
        params: {cap: 100}
    ```
    """

    Params = PythonParams
    summary = "apply a Python function to each table"

    def fingerprint(self, ctx: StepContext, params: PythonParams) -> str | None:
        # The function's source file is part of the cache key: editing it reruns the step.
        module = params.uses.partition(":")[0]
        origin = _source_file(ctx.spec_dir, module)
        if origin is None:
            try:  # an installed module (a plug-in package): its file (parent packages get imported)
                found = importlib.util.find_spec(module)
            except (ImportError, ValueError):
                found = None
            origin = found.origin if found is not None and found.has_location else None
        if origin is None or not origin.endswith(".py"):
            return None
        with open(origin, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()

    def run(self, ctx: StepContext, params: PythonParams, inputs: Inputs) -> dict[str, Ref]:
        import pandas as pd

        from mlflowkit.steps import Step

        fn = _import(ctx, params.uses)
        if isinstance(fn, Step):  # @mlflowkit.step: typed params, declared inputs; the same code path as its kind
            return fn.execute(ctx, fn.validate_params(params.params, step_name=ctx.step), inputs)
        outputs: dict[str, Ref] = {}
        for name in inputs:
            ref = inputs[name]
            if ref.media_type != PARQUET:
                continue
            # The user's exceptions reach the runner as they are: it names the step and decides on retries.
            result = fn(load_frame(ctx.store, ref), **params.params)
            if not isinstance(result, pd.DataFrame):
                raise StepFailed(ctx.step, f"{params.uses} returned {type(result).__name__}; expected a pandas DataFrame")
            meta = {k: v for k, v in ref.meta.items() if k not in {"rows", "columns"}}
            target = meta.get("target")
            if target and target not in result.columns:
                raise StepFailed(ctx.step, f"{params.uses} dropped the target column {target!r}")
            outputs[name] = save_frame(ctx.store, result, **meta)
        if not outputs:
            raise StepFailed(ctx.step, "the step before it emitted no table to transform")
        return outputs
