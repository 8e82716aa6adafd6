"""How numbers are written for people: one format for the terminal, the report and the logs.

Four significant digits, never an exponent for an everyday number (26593.47 is ``26593``, not ``2.659e+04``),
trailing zeros dropped; an exponent only below 0.0001 or from 10**15 on.
"""

from __future__ import annotations

import math

__all__ = ["DIGITS", "interval", "number"]

DIGITS = 4
"""Significant digits shown (more when the integer part is longer)."""


def number(value: float, digits: int = DIGITS) -> str:
    """``value`` as people read it: ``0.8123``, ``26593``, ``0.001235``, ``1.235e-05``; ``n/a`` when not finite.

    Integers (and booleans) are written as they are.
    """
    if isinstance(value, bool | int):
        return str(value)
    value = float(value)
    if not math.isfinite(value):
        return "n/a"
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    if magnitude < -4 or magnitude >= 15:
        return f"{value:.{digits - 1}e}"
    text = f"{value:.{max(0, digits - 1 - magnitude)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def interval(low: float | None, high: float | None) -> str:
    """A confidence interval, ``[0.7812, 0.8433]``; ``n/a`` when either end is missing or not finite."""
    if low is None or high is None or not math.isfinite(low) or not math.isfinite(high):
        return "n/a"
    return f"[{number(low)}, {number(high)}]"
