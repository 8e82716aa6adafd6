"""The spec's ``schedule:``: one or many, cron / interval / rrule with timezone, params and active; located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlflowkit.errors import SpecError
from mlflowkit.spec.load import load_spec_text
from mlflowkit.spec.schedule import cron_problem, interval_seconds

HEAD = """spec: mlflowkit/v1
name: sched
recipe: tabular-classification
params: {n: 3, depth: 4}
data: {source: data.csv, target: y}
"""


def _load(tmp_path: Path, tail: str) -> object:
    return load_spec_text(HEAD + tail, "spec.yaml", spec_dir=tmp_path, read_data=False)


def test_one_schedule_as_a_mapping_and_a_list(tmp_path: Path) -> None:
    one = _load(tmp_path, 'schedule: {cron: "0 2 * * *", timezone: Europe/Berlin, params: {n: 5}}\n')
    (s,) = one.schedule  # type: ignore[attr-defined]
    assert (s.cron, s.timezone, dict(s.params), s.active) == ("0 2 * * *", "Europe/Berlin", {"n": 5}, True)
    many = _load(tmp_path, "schedule:\n  - {interval: 1h30m}\n  - {rrule: 'FREQ=WEEKLY;BYDAY=MO', active: false, name: weekly}\n")
    first, second = many.schedule  # type: ignore[attr-defined]
    assert first.seconds == 5400 and first.timezone == "UTC"
    assert second.rrule and second.active is False and second.name == "weekly"


def test_a_schedule_does_not_change_the_spec_hash(tmp_path: Path) -> None:
    plain = _load(tmp_path, "")
    scheduled = _load(tmp_path, 'schedule: {cron: "@daily"}\n')
    assert plain.spec_hash == scheduled.spec_hash  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("tail", "where", "fragment"),
    [
        ('schedule: {cron: "0 25 * * *"}\n', "spec.yaml:6:18", "hour field: 25 is out of range 0-23"),
        ('schedule: {cron: "0 2 * *"}\n', "spec.yaml:6:18", "has 4 field(s); expected 5"),
        ('schedule:\n  - {cron: "@daily"}\n  - {cron: "*/0 * * * *"}\n', "spec.yaml:8:12", "step '0' must be a positive number"),
        ("schedule: {interval: 10 minutes}\n", "spec.yaml:6:22", "give seconds (3600) or a duration"),
        ("schedule: {interval: 0}\n", "spec.yaml:6:22", "must be longer than zero"),
        ("schedule: {rrule: 'BYDAY=MO'}\n", "spec.yaml:6:19", "has no FREQ="),
        ('schedule: {cron: "@daily", timezone: Europe/Berlinn}\n', "spec.yaml:6:38", "unknown timezone 'Europe/Berlinn'"),
        ('schedule: {cron: "@daily", interval: 60}\n', "spec.yaml:6:11", "give exactly one of cron, interval or rrule"),
        ('schedule: {cron: "@daily", every: 60}\n', "spec.yaml:6:28", "every"),
        (
            'schedule: {cron: "@daily", params: {nn: 1}}\n',
            "spec.yaml:6:37",
            "schedule sets param 'nn', which the spec does not declare",
        ),
        (
            'schedule:\n  - {cron: "@daily", name: a}\n  - {cron: "@hourly", name: a}\n',
            "spec.yaml:8:",
            "two schedules are named 'a'",
        ),
    ],
)
def test_bad_schedules_are_located(tmp_path: Path, tail: str, where: str, fragment: str) -> None:
    with pytest.raises(SpecError) as caught:
        _load(tmp_path, tail)
    text = str(caught.value)
    assert fragment in text, text
    assert where in text, text


@pytest.mark.parametrize("expr", ["0 2 * * *", "*/15 8-18 * * mon-fri", "0 0 1,15 jan,jul ?", "@hourly", "5 4 * * 7"])
def test_good_cron(expr: str) -> None:
    assert cron_problem(expr) is None


def test_interval_units() -> None:
    assert interval_seconds(90) == 90
    assert interval_seconds("2d") == 172800
    with pytest.raises(ValueError, match="duration"):
        interval_seconds("soon")
