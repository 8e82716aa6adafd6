"""One planned check: an expectation on one table, as the entries of ``checks:`` expand to.

Shared by the ``checks`` kind, which expands the entries (:func:`mlflowkit.kinds.checks.expand`), and the
GX runner, which evaluates them (:mod:`mlflowkit.kinds._gx_run`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from mlflowkit.kinds import _gx_catalog

__all__ = ["TABLES", "Planned", "Severity", "Table"]

Severity = Literal["error", "warn"]
Table = Literal["raw", "train", "test"]
TABLES: tuple[Table, ...] = ("raw", "train", "test")


@dataclass(frozen=True)
class Planned:
    """One expectation to evaluate on one table, expanded from an entry of `checks:`.

    Attributes:
        index: position in the expanded list (also tags the GX expectation, to map results back).
        source: where it comes from, for messages (``checks[2]``, ``checks[4] suite.json#1``).
        entry: the entry's kind (``expect``, ``schema``, ``rows``, ...).
        expectation: the GX expectation type (``expect_...``), or ``leakage`` (evaluated by mlflowkit).
        kwargs: the expectation's arguments.
        table: ``raw``, ``train`` or ``test``.
        severity: ``error`` or ``warn``.
        extra: ``description``, ``notes`` and ``meta`` for GX.
    """

    index: int
    source: str
    entry: str
    expectation: str
    kwargs: dict[str, Any]
    table: Table
    severity: Severity
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The expectation's short name (no ``expect_`` prefix)."""
        return _gx_catalog.short_name(self.expectation)

    @property
    def column(self) -> str:
        """The column(s) the expectation is about, for the report."""
        kw = self.kwargs
        if "column" in kw:
            return str(kw["column"])
        if "column_A" in kw:
            return f"{kw['column_A']}, {kw.get('column_B', '')}"
        for key in ("column_list", "column_set", "by"):
            if isinstance(kw.get(key), list | tuple):
                return ", ".join(map(str, kw[key]))
        return ""
