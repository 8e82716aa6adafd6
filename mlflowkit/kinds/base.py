"""What a step kind is: typed params, a run method, and the context and inputs a step gets.

Built-in kinds and third-party kinds subclass :class:`StepKind` and register under the
``mlflowkit.kinds`` entry-point group. Kind modules import only pydantic at import time, so that
``mlflowkit validate`` stays fast; heavy libraries are imported inside :meth:`StepKind.run`.
"""

from __future__ import annotations

import hashlib
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    import logging

    from mlflowkit.handoff import Ref, Trigger
    from mlflowkit.kinds.memo import ModelMemo
    from mlflowkit.policy.model import Policy
    from mlflowkit.store import ArtifactStore, ModelRegistry

__all__ = ["Advance", "Inputs", "Params", "Report", "SectionIssues", "StepContext", "StepKind"]

# What ``StepKind.check`` yields: (path under the section, message, hint), located by the loader.
SectionIssues = Iterable[tuple[tuple[str | int, ...], str, str]]


class Params(BaseModel):
    """Base of every kind's params: frozen, unknown keys refused, every field described."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class StepContext:
    """What a running step may use besides its params and inputs.

    Attributes:
        step: the step's name in the plan.
        run_id: the id of this run (also written into lineage).
        spec_name: the spec's ``name``.
        spec_hash: sha256 of the resolved spec.
        spec_dir: the folder the spec lives in; relative data paths resolve against it.
        store: the artifact store.
        registry: the model registry.
        git_commit: the commit of the spec's repository, if there is one.
        params: the run's resolved ``params:`` values.
        trigger: what started the run when it was not a person (a schedule, a drift check), or None.
        model_name: the registered model this spec produces (for champion look-ups).
        logger: a logger that reaches the run's output (and Prefect's logs inside a flow).
        publish: shows a report to people: see :meth:`report`.
        on_advance: receives how far a long step has got: see :meth:`advance`.
        policy: the operations policy the run was checked against when it started (None: none governs),
            so that every step of a run is governed by the same one; ``"find"`` (a context made outside
            the runner) means the policy governing ``spec_dir`` is looked up when a step needs it
            (:func:`mlflowkit.kinds._policy.governing_policy`).
        models: the models this run stored, in memory (:class:`~mlflowkit.kinds.memo.ModelMemo`): pass it
            to ``save_model`` and ``load_model`` so a later step skips rebuilding them; None outside a runner.
    """

    step: str
    run_id: str
    spec_name: str
    spec_hash: str
    spec_dir: str
    store: ArtifactStore
    registry: ModelRegistry
    logger: logging.Logger
    model_name: str = ""
    git_commit: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    trigger: Trigger | None = None
    publish: Callable[[Report], None] = field(default=lambda report: None, repr=False)
    on_advance: Callable[[Advance], None] = field(default=lambda advance: None, repr=False)
    policy: Policy | Literal["find"] | None = field(default="find", repr=False)
    models: ModelMemo | None = field(default=None, repr=False)

    def report(self, key: str, title: str, *, rows: list[dict[str, Any]] | None = None, markdown: str | None = None) -> None:
        """Publish a table (``rows``) or a markdown text under ``key`` (lowercase, digits, dashes).

        The runner stores it with the run, prints it in the run output, and shows it in the Prefect
        UI as an artifact when the run is a flow. Kinds never import Prefect themselves.
        """
        if (rows is None) == (markdown is None):
            raise ValueError("give exactly one of rows= or markdown=")
        self.publish(Report(key=key, title=title, step=self.step, rows=rows, markdown=markdown))

    def advance(
        self,
        unit: str,
        done: int,
        total: int,
        *,
        values: Iterable[tuple[str, float | None]] = (),
        note: str = "",
        best: float | None = None,
        best_note: str = "",
    ) -> None:
        """Say that one more unit of a long step's work is done: a trial of a search, an epoch of training.

        The runner shows it live in the terminal (one plain line each without one) and logs it to the
        run's logger at INFO, so it reaches Prefect's logs too; the numbers are formatted there, once.

        Args:
            unit: what is counted, plural (``trials``, ``epochs``).
            done: how many are done, ``total`` of them at most.
            total: how many there are.
            values: the numbers the last one measured, in the order shown (None: it has none, it failed).
            note: words about the last one (which trial, its parameters; why training stops).
            best: the best score so far, ``best_note`` saying where it was reached (``trial 2``).
        """
        self.on_advance(
            Advance(self.step, unit, done, total, tuple(values), note=note, best=best, best_note=best_note)
        )


@dataclass(frozen=True)
class Report:
    """A table or a markdown text a step shows to people (see :meth:`StepContext.report`)."""

    key: str
    title: str
    step: str
    rows: list[dict[str, Any]] | None = None
    markdown: str | None = None


@dataclass(frozen=True)
class Advance:
    """How far a long step has got: ``done`` of ``total`` units, and what the last one measured.

    Made by :meth:`StepContext.advance`, which describes each field.
    """

    step: str
    unit: str
    done: int
    total: int
    values: tuple[tuple[str, float | None], ...] = ()
    note: str = ""
    best: float | None = None
    best_note: str = ""


class Inputs(Mapping[str, "Ref"]):
    """The outputs of a step's upstream steps, merged by output name.

    A step reads what it needs by name (``inputs["train"]``), whatever step produced it, so that
    a custom step placed in between (which re-emits ``train``) is picked up without rewiring.
    When two upstream steps emit the same name, the one nearer in the plan wins.
    """

    def __init__(self, by_step: Mapping[str, Mapping[str, Ref]], order: tuple[str, ...]) -> None:
        """``order``: the upstream step names in plan order (later ones win on a name clash)."""
        self.by_step = dict(by_step)
        merged: dict[str, Ref] = {}
        for name in order:  # plan order: later (nearer) steps override earlier ones
            merged.update(by_step.get(name, {}))
        self._merged = merged

    def __getitem__(self, key: str) -> Ref:
        try:
            return self._merged[key]
        except KeyError:
            have = ", ".join(sorted(self._merged)) or "nothing"
            raise KeyError(f"no upstream step produced {key!r} (upstream produced: {have})") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._merged)

    def __len__(self) -> int:
        return len(self._merged)


class StepKind(ABC):
    """A step implementation, selected by ``kind:`` in the spec or by the recipe's default.

    Subclasses set ``Params`` (a :class:`Params` subclass) and implement :meth:`run`. ``list_field``
    lets a section be written as a bare list in YAML (``gates: [...]``): the list becomes that field.
    ``defaults_follow`` ties recipe defaults to another default: ``{"estimator": ("params",)}`` means the
    recipe's ``params`` apply only while the spec keeps the recipe's ``estimator``.
    """

    Params: ClassVar[type[Params]]
    summary: ClassVar[str] = ""
    list_field: ClassVar[str | None] = None
    defaults_follow: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    keeps_columns: ClassVar[bool] = False
    """The step hands its tables on with the columns it got (True), or may add and drop columns (False)."""

    @abstractmethod
    def run(self, ctx: StepContext, params: Any, inputs: Inputs) -> dict[str, Ref]:
        """Do the step's work and return its outputs by name, as references into the store."""

    def fingerprint(self, ctx: StepContext, params: Any) -> str | None:
        """A hash of what the step reads from outside the store (a source file, say), or None.

        It joins the step's cache key, so a changed input file means the step runs again.
        """
        return None

    @classmethod
    def prefetch(cls) -> None:
        """Import the heavy libraries :meth:`run` will need (a run calls it early, in a background thread)."""
        return  # most kinds import nothing heavy

    def input_fingerprint(self, ctx: StepContext, params: Any, inputs: Inputs) -> str | None:
        """Like :meth:`fingerprint`, for outside state whose relevance depends on the step's inputs, or None.

        Evaluate's: the champion it scores beside the model, unless the champion is that very model.
        """
        return None

    @classmethod
    def check(cls, section: Any, spec: Any) -> SectionIssues:
        """Cross-field checks of a validated section: ``(path under the section, message, hint)``.

        Runs at validate time, so it must not import heavy libraries.
        """
        return ()

    @classmethod
    def columns_read(cls, section: Any, spec: Any) -> Iterable[tuple[tuple[str | int, ...], str]]:
        """The columns the section names, which the data must have when the step runs: ``(path under the section, column)``.

        Validate checks them against the data's header where no earlier step may have changed the columns.
        """
        return ()

    @classmethod
    def columns_provided(cls, section: Any, spec: Any) -> list[str] | None:
        """The columns of the table this step reads from outside (the data's header), or None.

        Runs at validate time: it reads no more than the header, and says None when it cannot tell.
        """
        return None

    @classmethod
    def metrics_produced(cls, section: Any) -> set[str]:
        """Names of the metrics this step produces (gates may use them)."""
        return set()

    @classmethod
    def code_version(cls) -> str:
        """A short hash of the source of the module that defines this kind."""
        try:
            source = inspect.getsource(inspect.getmodule(cls) or cls)
        except (OSError, TypeError):
            source = f"{cls.__module__}.{cls.__qualname__}"
        return hashlib.sha256(source.encode()).hexdigest()[:16]
