"""What ``mlflowkit run`` shows while it runs: live spinners in a terminal, one plain line per event otherwise.

In a terminal, the start-up (finding or starting the local Prefect server, importing Prefect, starting the
flow run) and each running step get a spinner with the seconds so far; a search's trials and a training's
epochs update their step's line as each one finishes. Finished steps, reports and errors are printed above
the spinners and stay. Without a terminal (a CI log, a pipe) every event is one plain line, with no
spinner and no control codes. Loaded only by ``mlflowkit run`` (it imports the runtime).
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress as RichProgress
from rich.progress import ProgressColumn, SpinnerColumn, Task, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

from mlflowkit.fmt import number
from mlflowkit.runtime.runner import Progress, progress_line

if TYPE_CHECKING:
    from mlflowkit.handoff import StepRecord
    from mlflowkit.kinds.base import Advance, Report
    from mlflowkit.plan.model import PlanStep

__all__ = ["RunDisplay", "cell", "report_table"]

_ICONS = {"ran": "[green]✓[/]", "cached": "[cyan]↺[/]", "failed": "[red]✗[/]", "skipped": "[dim]-[/]"}


def cell(value: Any) -> str:
    """A table cell as the run's tables show it: numbers in the one format (:func:`mlflowkit.fmt.number`), nothing as blank."""
    if value is None:
        return ""
    return number(value) if isinstance(value, float) else str(value)


def report_table(report: Report) -> Table:
    """A step's published table, its numbers formatted as every other table's."""
    table = Table(title=escape(report.title), title_justify="left")
    rows = report.rows or []
    columns = list(dict.fromkeys(k for row in rows for k in row))
    for col in columns:
        table.add_column(escape(col))
    for row in rows:
        table.add_row(*(escape(cell(row.get(c))) for c in columns))
    return table


class _Seconds(ProgressColumn):
    """Seconds since the task began, as the finished lines give them (``12.3s``)."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.elapsed or 0.0:.1f}s", style="dim")


class RunDisplay(Progress):
    """Shows a run's events on ``console``; live while entered (``with RunDisplay(out) as display: ...``).

    Args:
        console: where to show it; a console that is not a terminal (or a dumb one) gets plain lines.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal and not console.is_dumb_terminal
        self._lock = threading.Lock()
        self._steps: dict[str, TaskID] = {}
        self._startup: TaskID | None = None
        self._bar = RichProgress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            _Seconds(),
            TextColumn("[dim]{task.fields[detail]}[/]"),
            console=console,
            transient=True,  # spinners go when the run ends; finished lines were printed above them
            refresh_per_second=8,
        )

    def __enter__(self) -> RunDisplay:
        if self.live:
            self._bar.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Stop the spinners (what was printed stays)."""
        if self.live:
            with self._lock:
                self._drop_startup()
            self._bar.stop()

    def starting(self, what: str) -> None:
        if not self.live:
            self.console.print(escape(what))
            return
        with self._lock:
            self._drop_startup()  # each phase counts its own seconds
            self._startup = self._bar.add_task(escape(what), detail="")

    def step_started(self, step: PlanStep) -> None:
        if not self.live:
            self.console.print(f"  [dim]→ {escape(step.name)} ({escape(step.kind)})[/]")
            return
        with self._lock:
            self._drop_startup()
            self._steps[step.name] = self._bar.add_task(f"{escape(step.name)} [dim]({escape(step.kind)})[/]", detail="")

    def step_progress(self, advance: Advance) -> None:
        line = escape(progress_line(advance))
        if not self.live:
            self.console.print(f"  {escape(advance.step)}: {line}")
            return
        with self._lock:
            task = self._steps.get(advance.step)
            if task is not None:
                self._bar.update(task, detail=line)

    def step_finished(self, record: StepRecord) -> None:
        if self.live:
            with self._lock:
                task = self._steps.pop(record.name, None)
                if task is not None:
                    self._bar.remove_task(task)
        # A failure's message is printed once, when the run ends.
        icon = _ICONS.get(record.status, "?")
        self.console.print(f"  {icon} {escape(record.name):<16} {record.status:<7} {record.seconds:7.2f}s")

    def report(self, report: Report) -> None:
        if report.rows is None:
            self.console.print(f"  [bold]{escape(report.title)}[/]")
            self.console.print(report.markdown or "", markup=False)
            return
        self.console.print(report_table(report))

    def _drop_startup(self) -> None:
        if self._startup is not None:
            self._bar.remove_task(self._startup)
            self._startup = None

