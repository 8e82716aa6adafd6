"""The spec's pydantic models: the fixed top level, custom steps, and per-kind section models.

Sections are typed by the step kind that reads them, so the model of a spec is assembled from its
recipe and its kinds (:func:`spec_model`); it is built once per combination and cached.
"""

from __future__ import annotations

import warnings
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, create_model

from mlflowkit.kinds.base import StepKind
from mlflowkit.spec.monitoring import MonitorSpec
from mlflowkit.spec.schedule import Schedule, as_list
from mlflowkit.spec.tracking import TrackingSpec

if TYPE_CHECKING:
    from mlflowkit.spec.recipe import Recipe
    from mlflowkit.spec.sources import Sources

__all__ = ["CONTROL_KEYS", "CustomStep", "ModelCard", "SpecBase", "StepControls", "section_model", "spec_model"]

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
JsonValue = str | int | float | bool | None | list[Any] | dict[str, Any]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StepControls(_Frozen):
    """Keys every section accepts besides its kind's params: which kind, retries, timeout, caching."""

    kind: str | None = Field(None, description="The step kind that runs this section; the recipe sets the default.")
    retries: int | None = Field(None, ge=0, le=20, description="How often a failed step is retried.")
    retry_delay: float = Field(0.0, ge=0, description="Seconds to wait between retries.")
    timeout: float | None = Field(None, gt=0, description="Seconds after which the step fails.")
    cache: bool = Field(True, description="Reuse the step's stored outputs when its inputs and params are unchanged.")


CONTROL_KEYS = frozenset(StepControls.model_fields)


class CustomStep(_Frozen):
    """A Python function placed into the recipe's graph after a named step."""

    name: str = Field(
        pattern=NAME_PATTERN,
        description="The step's name, unique in the plan: lowercase letters, digits, '.', '_' or '-', at most 64 characters.",
    )
    uses: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$",
        description="The function, as `module:function`; the module is imported from the spec's folder.",
    )
    after: str = Field(description="The step this one follows; the steps that followed it now follow this one.")
    params: dict[str, JsonValue] = Field(default_factory=dict, description="Keyword arguments for the function.")
    retries: int | None = Field(None, ge=0, le=20, description="How often a failed step is retried.")
    timeout: float | None = Field(None, gt=0, description="Seconds after which the step fails.")
    cache: bool = Field(True, description="Reuse the step's stored outputs when its inputs are unchanged.")


def _one_or_many(schema: dict[str, Any]) -> None:
    """JSON Schema of ``schedule:``: one schedule, or a list of them."""
    many = dict(schema)
    schema.clear()
    schema.update(anyOf=[many.get("items", {}), many], description=many.pop("description", ""))


class ModelCard(_Frozen):
    """What the model is for and where it should not be trusted: shown in the run report's model card."""

    intended_use: str = Field("", description="Who uses the model's predictions, for what decision, on which population.")
    limitations: str = Field(
        "", description="Where it is known to be weak or untested: data it never saw, groups, time ranges, uses to avoid."
    )


class SpecBase(_Frozen):
    """The top level of a spec. Sections (data, train, ...) are added per recipe by :func:`spec_model`."""

    spec: Literal["mlflowkit/v1"] = Field(description="The spec format version.")
    name: str = Field(
        pattern=NAME_PATTERN,
        description=(
            "The pipeline's name (also the default model name): lowercase letters, digits, '.', '_' or '-', "
            "at most 64 characters."
        ),
    )
    description: str = Field("", description="What this pipeline is for (the run report opens with it).")
    model_card: ModelCard | None = Field(
        None, description="The model's intended use and limitations, for the run report's model card."
    )
    recipe: str = Field(description="The recipe that fixes the stage graph and its defaults.")
    params: dict[str, JsonValue] = Field(
        default_factory=dict,
        description="Values referenced as ${params.NAME}; overridable per run (--set params.NAME=...) and in Prefect.",
    )
    store: str | None = Field(
        None, description="Artifact store and registry location (any fsspec URI); defaults to .mlflowkit/ next to the spec."
    )
    steps: tuple[CustomStep, ...] = Field((), description="Custom Python steps, each placed after a named step.")
    schedule: Annotated[tuple[Schedule, ...], BeforeValidator(as_list)] = Field(
        (),
        description=(
            "When the spec runs by itself once registered with `mlflowkit flows deploy`: one schedule or a list "
            "(cron, interval or rrule; timezone; params; active). Not part of the spec hash."
        ),
        json_schema_extra=_one_or_many,
    )
    monitor: MonitorSpec | None = Field(
        None,
        description="How the champion is watched on live data (`mlflowkit monitor`): drift thresholds, schedule, "
        "and whether drift triggers retraining. Not part of the spec hash.",
    )
    tracking: TrackingSpec | None = Field(
        None,
        description="Log every run (params, metrics, tags, artifacts, registered versions) to an MLflow tracking "
        "server; $MLFLOWKIT_TRACKING_URI does the same without it. Not part of the spec hash.",
    )

    _meta: dict[str, Any] = PrivateAttr(default_factory=dict)

    # Facts about where a loaded spec came from: set by the loader, read by plan and run.
    @property
    def path(self) -> str:
        """The spec file, as shown in messages."""
        return str(self._meta.get("path", "<spec>"))

    @property
    def spec_dir(self) -> str:
        """The folder of the spec; relative paths resolve against it."""
        return str(self._meta["spec_dir"])

    @property
    def recipe_def(self) -> Recipe:
        """The resolved recipe."""
        recipe: Recipe = self._meta["recipe"]
        return recipe

    @property
    def stage_kinds(self) -> dict[str, str]:
        """Stage name -> kind name, after the spec's ``kind:`` overrides."""
        return dict(self._meta["stage_kinds"])

    @property
    def sources(self) -> Sources:
        """Where each value came from, for located errors."""
        sources: Sources = self._meta["sources"]
        return sources

    @property
    def spec_hash(self) -> str:
        """sha256 of the resolved spec (params and defaults included)."""
        return str(self._meta["hash"])

    @property
    def rules(self) -> Any:
        """The rules from outside the spec wing it was loaded under (the operations policy), or None."""
        return self._meta.get("rules")

    @property
    def read_data(self) -> bool:
        """Whether checks may read the data source's header (``validate --no-data-check`` says no)."""
        return bool(self._meta.get("read_data", True))

    def section(self, dotted_path: str) -> BaseModel | None:
        """The validated section at ``dotted_path`` (``"data.split"``), or None."""
        value: Any = self
        for part in dotted_path.split("."):
            value = getattr(value, part, None)
        return value if isinstance(value, BaseModel) else None


@cache
def section_model(
    kind_name: str, kind: type[StepKind], children: tuple[tuple[str, type[BaseModel]], ...] = ()
) -> type[BaseModel]:
    """The model of a section run by ``kind``: its params, the step controls, and nested sections."""
    params = kind.Params
    fields: dict[str, Any] = {name: (model | None, Field(None, description=model.__doc__ or "")) for name, model in children}
    return create_model(  # type: ignore[call-overload, no-any-return, unused-ignore]
        f"{params.__name__.removesuffix('Params')}Section",
        __base__=(StepControls, params),
        __doc__=f"Section run by kind {kind_name!r}. {params.__doc__ or ''}".strip(),
        **fields,
    )


@cache
def container_model(name: str, children: tuple[tuple[str, type[BaseModel]], ...]) -> type[BaseModel]:
    """The model of a section that no stage reads itself but that holds sections that stages read."""
    fields: dict[str, Any] = {child: (model | None, None) for child, model in children}
    return create_model(f"{name.title()}Container", __base__=_Frozen, **fields)  # type: ignore[call-overload, no-any-return, unused-ignore]


@cache
def spec_model(sections: tuple[tuple[str, str], ...]) -> type[SpecBase]:
    """The spec model for a set of ``(section path, kind name)`` pairs; cached per combination."""
    from mlflowkit.plugins import kinds

    registry = kinds()
    by_path = dict(sections)

    def build(path: str) -> type[BaseModel]:
        prefix = path + "."
        direct = sorted({p[len(prefix) :].split(".")[0] for p in by_path if p.startswith(prefix)})
        children = tuple((child, build(prefix + child)) for child in direct)
        if path in by_path:
            return section_model(by_path[path], registry.get(by_path[path]), children)
        return container_model(path.rsplit(".", 1)[-1], children)

    top = sorted({p.split(".")[0] for p in by_path})
    fields: dict[str, Any] = {}
    for name in top:
        model = build(name)
        fields[name] = (model | None, Field(None, description=model.__doc__ or ""))
    with warnings.catch_warnings():
        # A section called `register` shadows ABCMeta.register on the class; instances read the field.
        warnings.filterwarnings("ignore", message='Field name "register"', category=UserWarning)
        return create_model("Spec", __base__=SpecBase, **fields)  # type: ignore[call-overload, no-any-return, unused-ignore]
