"""The spec's ``schedule:`` section: cron, interval or rrule, a timezone, per-schedule params, active or paused.

Checked at validate time without Prefect: cron fields and ranges, interval units, rrule syntax, and
timezone names. ``mlflowkit flows deploy`` turns each entry into a Prefect schedule.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["Schedule", "as_list", "cron_problem", "interval_seconds", "slugs"]

JsonValue = str | int | float | bool | None | list[Any] | dict[str, Any]

_CRON_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_CRON_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day-of-month", 1, 31, {}),
    ("month", 1, 12, {m: i + 1 for i, m in enumerate(_MONTHS)}),
    ("day-of-week", 0, 7, {d: i for i, d in enumerate(_DAYS)}),
)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_INTERVAL = re.compile(r"^(?:(\d+(?:\.\d+)?)\s*([smhdw]))+$")
_INTERVAL_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_RRULE_FREQ = re.compile(r"(^|[;:\n])FREQ=(YEARLY|MONTHLY|WEEKLY|DAILY|HOURLY|MINUTELY|SECONDLY)(;|$|\n)", re.IGNORECASE)


def _cron_value(text: str, low: int, high: int, names: dict[str, int], what: str) -> int:
    value = names.get(text.lower()) if not text.isdigit() else int(text)
    if value is None:
        known = f" (or a name: {', '.join(names)})" if names else ""
        raise ValueError(f"{what} field: {text!r} is not a number{known}")
    if not low <= value <= high:
        raise ValueError(f"{what} field: {value} is out of range {low}-{high}")
    return value


def cron_problem(expr: str) -> str | None:
    """What is wrong with a five-field cron expression (or a macro such as ``@daily``), or None."""
    text = expr.strip()
    if text.lower() in _CRON_MACROS:
        return None
    fields = text.split()
    if len(fields) != len(_CRON_FIELDS):
        expected = " ".join(f[0] for f in _CRON_FIELDS)
        return f"cron {expr!r} has {len(fields)} field(s); expected 5 ({expected}) or a macro such as @daily"
    try:
        for raw, (what, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
            for item in raw.split(","):
                base, _, step = item.partition("/")
                if step and (not step.isdigit() or int(step) == 0):
                    raise ValueError(f"{what} field: step {step!r} must be a positive number")
                if base in {"*", "?"} and (base == "*" or what in {"day-of-month", "day-of-week"}):
                    continue
                first, dash, last = base.partition("-")
                start = _cron_value(first, low, high, names, what)
                if dash and _cron_value(last, low, high, names, what) < start:
                    raise ValueError(f"{what} field: range {base!r} runs backwards")
    except ValueError as exc:
        return f"cron {expr!r}: {exc}"
    return None


def interval_seconds(value: float | str) -> float:
    """An interval in seconds: a number, or text such as ``90s``, ``15m``, ``6h``, ``1d``, ``1h30m``.

    Raises:
        ValueError: not a positive interval.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and _INTERVAL.match(value.strip().lower()):
        seconds = sum(float(n) * _UNITS[u] for n, u in _INTERVAL_PART.findall(value.strip().lower()))
    else:
        raise ValueError(f"interval {value!r}: give seconds (3600) or a duration such as 90s, 15m, 6h, 1d, 1h30m")
    if seconds <= 0:
        raise ValueError(f"interval {value!r} must be longer than zero")
    return seconds


class Schedule(BaseModel):
    """When the spec runs by itself, once it is registered as a Prefect deployment (``mlflowkit flows deploy``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(
        None,
        pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
        description="A name for the schedule (its slug in Prefect); defaults to schedule-1, schedule-2, ... in list order.",
    )
    cron: str | None = Field(None, description="A cron expression with five fields (`0 2 * * *`) or a macro (`@daily`).")
    interval: float | str | None = Field(
        None, description="Every so many seconds (3600), or a duration: `90s`, `15m`, `6h`, `1d`, `1h30m`."
    )
    rrule: str | None = Field(None, description="An iCalendar recurrence rule, e.g. `FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=6`.")
    timezone: str = Field("UTC", description="IANA timezone the schedule is read in, e.g. `Europe/Berlin`.")
    params: dict[str, JsonValue] = Field(
        default_factory=dict, description="Values for the spec's `params:` in the runs this schedule starts."
    )
    active: bool = Field(True, description="`false` registers the schedule paused; resume it from the Prefect UI.")
    description: str = Field("", description="What this schedule is for (a note for readers of the spec).")

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and (problem := cron_problem(value)):
            raise ValueError(problem)
        return value

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: float | str | None) -> float | str | None:
        if value is not None:
            interval_seconds(value)
        return value

    @field_validator("rrule")
    @classmethod
    def _rrule(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _RRULE_FREQ.search(value):
            raise ValueError(f"rrule {value!r} has no FREQ= (e.g. FREQ=DAILY;BYHOUR=2)")
        try:
            import dateutil.rrule
        except ImportError:  # the core install has no dateutil; Prefect checks it again when it registers
            return value
        try:
            dateutil.rrule.rrulestr(value)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"rrule {value!r}: {exc}") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            from mlflowkit.plugins import did_you_mean

            hint = did_you_mean(value, sorted(zoneinfo.available_timezones()))
            raise ValueError(
                f"unknown timezone {value!r}{'; ' + hint if hint else ''} (an IANA name such as Europe/Berlin)"
            ) from None
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Schedule:
        given = [k for k in ("cron", "interval", "rrule") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of cron, interval or rrule (got {', '.join(given) or 'none'})")
        return self

    @property
    def seconds(self) -> float | None:
        """The interval in seconds, for an interval schedule."""
        return None if self.interval is None else interval_seconds(self.interval)

    def describe(self) -> str:
        """One line: ``cron 0 2 * * * (Europe/Berlin)``."""
        what = (
            f"cron {self.cron}" if self.cron else f"every {self.interval}" if self.interval is not None else f"rrule {self.rrule}"
        )
        return f"{what} ({self.timezone}){'' if self.active else ' paused'}"


def as_list(value: Any) -> Any:
    """A single mapping under ``schedule:`` is a list of one schedule."""
    return [value] if isinstance(value, dict) else value


def slugs(schedules: tuple[Schedule, ...]) -> list[str]:
    """Each schedule's slug: its name, else ``schedule-N`` (1-based, in list order)."""
    return [s.name or f"schedule-{i + 1}" for i, s in enumerate(schedules)]
