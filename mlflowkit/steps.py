"""The ``@mlflowkit.step`` decorator: a plain function with typed params and declared inputs and outputs.

A decorated function runs the same way wherever it is used: from a spec's ``steps:`` entry
(``uses: mypkg.steps:add_features``, through the ``python`` kind), as a step kind of its own
(``step.kind``, registered under ``mlflowkit.kinds``), or called directly in a notebook or a test.
Tables arrive as pandas DataFrames; what the function returns is stored and passed on by name.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from mlflowkit.errors import StepFailed
from mlflowkit.handoff import JSON, is_json
from mlflowkit.kinds.base import Inputs, Params, StepContext, StepKind

if TYPE_CHECKING:
    import pandas as pd

    from mlflowkit.store import Ref

__all__ = ["Step", "read_table", "step", "write_table"]



class _NoParams(Params):
    """This step takes no params."""


class Step:
    """A function made a step by :func:`step`. Calling it calls the function, unchanged.

    Attributes:
        fn: the decorated function.
        params: its pydantic params model (a :class:`mlflowkit.Params` subclass).
        inputs: the upstream outputs it reads, by name; each is passed as a keyword argument.
        outputs: the names of what it returns.
        kind: a :class:`mlflowkit.StepKind` subclass running this step; register it under
            ``mlflowkit.kinds`` (``name = "mypkg.steps:add_features.kind"``) to use it by ``kind:``.
    """

    def __init__(
        self, fn: Callable[..., Any], params: type[BaseModel], inputs: Sequence[str], outputs: Sequence[str], summary: str
    ) -> None:
        self.fn = fn
        self.params = params
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        self.summary = summary
        self.__name__ = fn.__name__
        self.__qualname__ = fn.__qualname__
        self.__module__ = fn.__module__
        self.__doc__ = fn.__doc__
        self._takes = set(inspect.signature(fn).parameters)
        self.kind: type[StepKind] = _kind_for(self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<mlflowkit step {self.__module__}:{self.__qualname__} {list(self.inputs)} -> {list(self.outputs)}>"

    def validate_params(self, raw: Mapping[str, Any], *, step_name: str) -> BaseModel:
        """The params of one use of the step, validated; a StepFailed lists every problem."""
        try:
            return self.params.model_validate(dict(raw))
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'params'}: {e['msg']}" for e in exc.errors())
            raise StepFailed(step_name, f"params of {self.__module__}:{self.__qualname__}: {problems}") from exc

    def execute(self, ctx: StepContext, params: BaseModel, inputs: Inputs) -> dict[str, Ref]:
        """Load the declared inputs, call the function, store what it returns (the code path of every use)."""
        from mlflowkit.kinds._frames import PARQUET, load_frame, save_frame

        loaded: dict[str, Any] = {}
        for name in self.inputs:
            try:
                ref = inputs[name]
            except KeyError as exc:
                raise StepFailed(ctx.step, f"{self.__qualname__} reads input {name!r}: {exc.args[0]}") from None
            if ref.media_type == PARQUET:
                loaded[name] = load_frame(ctx.store, ref)
            elif is_json(ref.media_type):
                loaded[name] = json.loads(ctx.store.get_bytes(ref))
            else:
                loaded[name] = ctx.store.get_bytes(ref)
        extra = {k: v for k, v in (("params", params), ("ctx", ctx)) if k in self._takes}
        result = self.fn(**loaded, **extra)
        if not isinstance(result, Mapping):
            if len(self.outputs) != 1:
                raise StepFailed(ctx.step, f"{self.__qualname__} must return a dict with {list(self.outputs)}")
            result = {self.outputs[0]: result}
        if set(result) != set(self.outputs):
            raise StepFailed(
                ctx.step, f"{self.__qualname__} returned {sorted(result)}; it declares outputs {sorted(self.outputs)}"
            )
        tables: list[Ref | None] = [inputs[n] for n in self.inputs if inputs[n].media_type == PARQUET]
        out: dict[str, Ref] = {}
        for name, value in result.items():
            if hasattr(value, "to_parquet"):
                # A table keeps what downstream steps read from the table it replaces (target, lineage).
                source = inputs[name] if name in self.inputs and inputs[name].media_type == PARQUET else [*tables, None][0]
                meta = {k: v for k, v in (source.meta if source else {}).items() if k not in {"rows", "columns"}}
                target = meta.get("target")
                if target and target not in value.columns:
                    raise StepFailed(ctx.step, f"{self.__qualname__} dropped the target column {target!r} from {name!r}")
                out[name] = save_frame(ctx.store, value, **meta)
            elif isinstance(value, bytes):
                out[name] = ctx.store.put_bytes(value, "application/octet-stream", {})
            else:
                try:
                    body = json.dumps(value, sort_keys=True, indent=2).encode()
                except TypeError as exc:
                    what = type(value).__name__
                    raise StepFailed(ctx.step, f"output {name!r} is a {what}: return a DataFrame, JSON data or bytes") from exc
                out[name] = ctx.store.put_bytes(body, JSON, {})
        return out


def read_table(ctx: StepContext, ref: Ref) -> pd.DataFrame:
    """The table behind ``ref`` (an input such as ``inputs["train"]``), as a pandas DataFrame."""
    from mlflowkit.kinds._frames import load_frame

    return load_frame(ctx.store, ref)


def write_table(ctx: StepContext, frame: pd.DataFrame, *, like: Ref | None = None, **meta: Any) -> Ref:
    """Store ``frame`` and return its reference, an output a step returns.

    Args:
        ctx: the step's context.
        frame: the table.
        like: the input table this one replaces: its metadata (target column, data lineage) is kept,
            so that later steps read the new table as they read the old one.
        meta: more metadata for the reference.
    """
    from mlflowkit.kinds._frames import save_frame

    kept = {k: v for k, v in (like.meta if like is not None else {}).items() if k not in {"rows", "columns"}}
    return save_frame(ctx.store, frame, **{**kept, **meta})


def _kind_for(step: Step) -> type[StepKind]:
    def run(self: StepKind, ctx: StepContext, params: Any, inputs: Inputs) -> dict[str, Ref]:
        return step.execute(ctx, params, inputs)

    doc = inspect.getdoc(step.fn) or step.summary
    return type(
        step.fn.__name__,
        (StepKind,),
        {
            "Params": step.params,
            "summary": step.summary,
            "run": run,
            "step": step,
            "__doc__": doc,
            # code_version() hashes the module the kind comes from: the user's, not this one.
            "__module__": step.fn.__module__,
            "__qualname__": f"{step.fn.__qualname__}.kind",
        },
    )


def step(
    fn: Callable[..., Any] | None = None,
    *,
    params: type[BaseModel] | None = None,
    inputs: Sequence[str] = ("dataset",),
    outputs: Sequence[str] | None = None,
    summary: str = "",
) -> Any:
    """Make a function a step: typed params, declared inputs and outputs.

    The function gets each input as a keyword argument of the same name (a pandas DataFrame for a
    table, parsed JSON, or bytes), plus ``params`` (the validated params) and ``ctx`` (the
    :class:`mlflowkit.StepContext`) when it declares them. It returns a dict by output name, or a
    single value when it declares one output. A returned DataFrame keeps the metadata (target
    column, data fingerprint) of the input table of the same name, so later steps read it as before.

    Example::

        class RatioParams(mlflowkit.Params):
            cap: float = Field(100.0, description="Upper bound of the ratio.")

        @mlflowkit.step(params=RatioParams, inputs=["train", "test"], outputs=["train", "test"])
        def add_ratio(train, test, params):
            return {name: df.assign(ratio=(df.a / df.b).clip(upper=params.cap)) for name, df in
                    (("train", train), ("test", test))}

    Args:
        fn: the function (when used as ``@mlflowkit.step`` without arguments).
        params: a :class:`mlflowkit.Params` subclass (frozen, unknown keys refused); default: no params.
        inputs: upstream outputs the function reads (``dataset``, ``train``, ``test``, ``model``, ...).
        outputs: names of what it returns; default: the same names as ``inputs``.
        summary: one line for ``mlflowkit plugins list``; default: the docstring's first line.

    Raises:
        TypeError: the params model accepts unknown keys, or the function does not take its inputs.
    """

    def wrap(func: Callable[..., Any]) -> Step:
        model = params or _NoParams
        if not (inspect.isclass(model) and issubclass(model, BaseModel)) or model.model_config.get("extra") != "forbid":
            raise TypeError(f"@mlflowkit.step({func.__qualname__}): params must be a mlflowkit.Params subclass (extra='forbid')")
        signature = inspect.signature(func).parameters
        takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.values())
        missing = [name for name in inputs if name not in signature and not takes_kwargs]
        if missing:
            raise TypeError(f"@mlflowkit.step({func.__qualname__}): the function must take its inputs {missing} as arguments")
        if not inputs:
            raise TypeError(f"@mlflowkit.step({func.__qualname__}): declare at least one input")
        doc_line = (inspect.getdoc(func) or "").split("\n", 1)[0]
        return Step(func, model, inputs, tuple(outputs) if outputs is not None else tuple(inputs), summary or doc_line)

    return wrap(fn) if fn is not None else wrap
