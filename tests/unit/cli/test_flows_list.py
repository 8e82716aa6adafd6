"""`mlflowkit flows list`: a schedule as the spec writes it, not as Prefect normalises it."""

from __future__ import annotations

import pytest

from mlflowkit.cli.flows import describe_schedule


@pytest.mark.parametrize(
    ("stored", "said"),
    [
        ({"cron": "0 2 * * *", "timezone": "Europe/Berlin", "day_or": True}, "cron 0 2 * * * (Europe/Berlin)"),
        (
            {"interval": 86400.0, "anchor_date": "2026-12-03T17:13:03.855918Z", "timezone": "UTC"},
            "every 1 day from 2026-12-03 17:13 (UTC)",
        ),
        (
            {"interval": 5400.0, "anchor_date": "2026-12-03T17:13:03Z", "timezone": "America/New_York"},
            "every 1 hour 30 minutes from 2026-12-03 12:13 (America/New_York)",
        ),
        # What Prefect's client sends and its server keeps: a DTSTART line of its own before the rule.
        ({"rrule": "DTSTART:20200101T000000\nFREQ=WEEKLY;BYDAY=SU;BYHOUR=4", "timezone": "UTC"}, "rrule FREQ=WEEKLY;BYDAY=SU;BYHOUR=4 (UTC)"),
        ({"rrule": "DTSTART:20200101T000000\nRRULE:FREQ=DAILY", "timezone": None}, "rrule FREQ=DAILY (UTC)"),
    ],
)
def test_a_schedule_reads_as_the_spec_wrote_it(stored: dict[str, object], said: str) -> None:
    assert describe_schedule(stored) == said
