"""The run report: one self-contained HTML file per run, for every role that reads it.

``collect`` gathers what a run left in the store (its record, step outputs, the registered version);
``plots`` draws the figures with matplotlib (an optional extra, imported lazily); ``html`` renders the
page from ``template.html``. Nothing in the page loads from the network.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlflowkit.report.collect import ReportData, collect
from mlflowkit.report.html import render

if TYPE_CHECKING:
    from mlflowkit.store import ArtifactStore, ModelRegistry

__all__ = ["ReportData", "collect", "render", "report_key", "write_report"]


def report_key(run_id: str) -> str:
    """Where a run's report lives in the store."""
    return f"reports/{run_id}/report.html"


def write_report(store: ArtifactStore, run_id: str, *, registry: ModelRegistry | None = None) -> str:
    """Render the run's report and write it into the store; returns its key (``reports/<run>/report.html``).

    Raises:
        FileNotFoundError: the store has no record of ``run_id``.
    """
    page = render(collect(store, run_id, registry=registry))
    key = report_key(run_id)
    # The store has no public "bytes under a chosen key" (write_json is its JSON form): its atomic writer.
    store._write(key, page.encode("utf-8"))
    return key
