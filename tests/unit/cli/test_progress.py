"""What ``mlflowkit run`` shows while it runs: the live view in a terminal, one plain line per event without one."""

from __future__ import annotations

import io
import re

from rich.console import Console

from mlflowkit.cli.progress import RunDisplay
from mlflowkit.handoff import StepRecord
from mlflowkit.kinds.base import Advance, Report
from mlflowkit.plan.model import PlanStep

TRAIN = PlanStep(name="train", kind="sklearn", params={}, needs=(), section="train", key="k-train")
LOAD = PlanStep(name="load", kind="load", params={}, needs=(), section="data", key="k-load")
TRIAL = Advance(
    "train", "trials", 2, 3, (("roc_auc", 0.8123456),), note="trial 1: C=0.1", best=0.91234, best_note="trial 3"
)
EPOCH = Advance("train", "epochs", 4, 20, (("train loss", 0.51234567), ("validation loss", 0.4987654)))


def _live() -> tuple[Console, RunDisplay]:
    console = Console(force_terminal=True, record=True, width=140, color_system=None)
    return console, RunDisplay(console)


def _shown(console: Console, display: RunDisplay) -> str:
    """What the terminal shows now: the live region rendered once more, then everything recorded."""
    display._bar.refresh()
    return console.export_text(clear=True)


def test_a_terminal_gets_a_live_line_for_the_start_up_then_for_each_running_step() -> None:
    console, display = _live()
    assert display.live
    with display:
        display.starting("starting the local Prefect server")
        startup = _shown(console, display)
        assert re.search(r"starting the local Prefect server \d+\.\ds", startup), startup  # with its seconds so far
        display.starting("importing Prefect")
        assert "importing Prefect" in _shown(console, display)
        display.step_started(LOAD)
        display.step_started(TRAIN)  # steps run side by side: a line each
        both = _shown(console, display)
        assert "load (load)" in both and "train (sklearn)" in both
        assert "importing Prefect" not in both  # the start-up is over once a step runs
        display.step_progress(TRIAL)
        trials = _shown(console, display)
        assert "trials 2/3: roc_auc 0.8123 (trial 1: C=0.1); best so far 0.9123 (trial 3)" in trials
        display.step_progress(EPOCH)
        epochs = _shown(console, display)
        assert "epochs 4/20: train loss 0.5123, validation loss 0.4988" in epochs and "trials 2/3" not in epochs
        display.step_finished(StepRecord(name="load", kind="load", status="ran", seconds=1.5, key="k-load"))
        after = _shown(console, display)
        assert "✓ load" in after and "1.50s" in after
    assert len(display._bar.tasks) == 1  # train's line stayed until the end; load's went when it finished
    assert not display._bar.live.is_started  # the spinners stop with the run (transient: the terminal drops them)


def test_without_a_terminal_every_event_is_one_plain_line() -> None:
    buffer = io.StringIO()
    display = RunDisplay(Console(file=buffer, width=160))
    assert not display.live
    with display:
        display.starting("finding the local Prefect server")
        display.starting("importing Prefect")
        display.step_started(TRAIN)
        display.step_progress(TRIAL)
        display.step_progress(EPOCH)
        display.step_finished(StepRecord(name="train", kind="sklearn", status="ran", seconds=12.345, key="k-train"))
    text = buffer.getvalue()
    assert "\x1b" not in text and "\r" not in text  # no spinners, no control codes
    assert text.splitlines() == [
        "finding the local Prefect server",
        "importing Prefect",
        "  → train (sklearn)",
        "  train: trials 2/3: roc_auc 0.8123 (trial 1: C=0.1); best so far 0.9123 (trial 3)",
        "  train: epochs 4/20: train loss 0.5123, validation loss 0.4988",
        "  ✓ train            ran       12.35s",
    ]


def test_a_published_table_shows_numbers_in_the_one_format_and_markup_as_text() -> None:
    buffer = io.StringIO()
    display = RunDisplay(Console(file=buffer, width=160))
    rows = [{"epoch": 1, "train_loss": 0.693147180559, "val_loss": None, "note": "[red]x[/]"}]
    display.report(Report(key="epochs", title="Training [2 workers]", step="train", rows=rows))
    text = buffer.getvalue()
    assert "0.6931" in text and "0.693147" not in text
    assert "Training [2 workers]" in text and "[red]x[/]" in text
