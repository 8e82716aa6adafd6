"""The one number format: four significant digits, no exponent for everyday numbers, the same in every output."""

from __future__ import annotations

import math

import pytest

from mlflowkit.fmt import interval, number


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (26593.4695, "26593"),  # a regressor's rmse: not 2.659e+04, not 26593.4695
        (0.812345, "0.8123"),
        (0.9, "0.9"),
        (1.0, "1"),
        (123.456, "123.5"),
        (-0.04567, "-0.04567"),
        (0.0012345, "0.001234"),
        (1.2345e-05, "1.234e-05"),
        (2.5e16, "2.500e+16"),
        (0.0, "0"),
        (7, "7"),
        (True, "True"),
        (math.nan, "n/a"),
        (-math.inf, "n/a"),
    ],
)
def test_number(value: float, shown: str) -> None:
    assert number(value) == shown


def test_interval() -> None:
    assert interval(0.78123, 0.84329) == "[0.7812, 0.8433]"
    assert interval(None, 0.8) == interval(math.nan, math.nan) == "n/a"
