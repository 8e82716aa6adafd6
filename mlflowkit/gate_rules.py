"""Gate rules: a small, safe grammar (``accuracy >= 0.85``, ``roc_auc >= champion.roc_auc - 0.01``) and its structured form.

Both the ``gates`` kind (which evaluates rules) and the operations policy (which requires them) read
rules, so the grammar lives below both of them.

    rule   := expr CMP expr          CMP := >= | <= | > | < | == | !=
    expr   := term (("+" | "-") term)*
    term   := factor (("*" | "/") factor)*
    factor := NUMBER | NAME | "champion." NAME | "(" expr ")" | "-" factor

Parsed by hand into a tiny tree and evaluated over a dict of numbers: there is no ``eval``.
A missing value or a NaN anywhere makes the rule fail (fail closed).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["GateRule", "GateSyntaxError", "Rule", "parse_rule", "rule_text"]

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)|(?P<op>>=|<=|==|!=|[-+*/()<>]))"
)
_CMP: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}
_ARITH: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}


class GateSyntaxError(ValueError):
    """A rule that does not parse; ``col`` is the 1-based column in the rule text."""

    def __init__(self, message: str, col: int) -> None:
        self.col = col
        super().__init__(f"{message} at column {col}")


@dataclass(frozen=True)
class Node:
    """One node of a parsed expression: a number, a name, a negation or a binary operation."""

    op: str  # "num", "name", "neg", or one of + - * /
    value: float | str = 0.0
    left: Node | None = None
    right: Node | None = None

    def names(self) -> list[str]:
        """Every metric name the expression reads (``champion.x`` included as written)."""
        if self.op == "name":
            return [str(self.value)]
        return [*(self.left.names() if self.left else []), *(self.right.names() if self.right else [])]

    def evaluate(self, lookup: Callable[[str], float | None]) -> float | None:
        """The value, or None when any name has no value."""
        if self.op == "num":
            return float(self.value)
        if self.op == "name":
            return lookup(str(self.value))
        left = self.left.evaluate(lookup) if self.left else None
        if self.op == "neg":
            return None if left is None else -left
        right = self.right.evaluate(lookup) if self.right else None
        if left is None or right is None:
            return None
        try:
            return _ARITH[self.op](left, right)
        except ZeroDivisionError:
            return math.nan


@dataclass(frozen=True)
class Rule:
    """A parsed rule: ``left CMP right``."""

    text: str
    left: Node
    cmp: str
    right: Node

    def names(self) -> list[str]:
        """Every name the rule reads."""
        return [*self.left.names(), *self.right.names()]

    def metrics(self) -> list[str]:
        """Metric names, with any ``champion.`` prefix removed."""
        return [n.removeprefix("champion.") for n in self.names()]

    def evaluate(
        self, values: Mapping[str, float], champion: Mapping[str, float] | None
    ) -> tuple[bool, float | None, float | None, str]:
        """(passed, left value, right value, note). Missing or NaN values fail closed."""
        missing: list[str] = []

        def lookup(name: str) -> float | None:
            source, key = (champion, name[9:]) if name.startswith("champion.") else (values, name)
            value = None if source is None else source.get(key)
            if value is None:
                missing.append(name)
                return None
            return float(value)

        left, right = self.left.evaluate(lookup), self.right.evaluate(lookup)
        if missing:
            return False, left, right, f"no value for {', '.join(missing)}"
        if left is None or right is None:  # cannot happen: `missing` would not be empty
            return False, left, right, "no value"
        if math.isnan(left) or math.isnan(right):
            return False, left, right, "NaN value"
        return _CMP[self.cmp](left, right), left, right, ""


def parse_rule(text: str) -> Rule:
    """Parse a rule, or raise GateSyntaxError naming the column."""
    tokens: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            col = pos + 1 + (len(text[pos:]) - len(text[pos:].lstrip()))
            raise GateSyntaxError(f"unexpected character {text[col - 1]!r}", col)
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind), m.start(kind) + 1))
        pos = m.end()
    tokens.append(("end", "", len(text) + 1))
    i = 0

    def peek() -> tuple[str, str, int]:
        return tokens[i]

    def take() -> tuple[str, str, int]:
        nonlocal i
        i += 1
        return tokens[i - 1]

    def factor() -> Node:
        kind, value, col = take()
        if kind == "num":
            return Node("num", float(value))
        if kind == "name":
            if "." in value and not value.startswith("champion."):
                raise GateSyntaxError(f"{value!r}: only champion.<metric> may contain a dot", col)
            return Node("name", value)
        if value == "(":
            node = expr()
            if take()[1] != ")":
                raise GateSyntaxError("expected ')'", tokens[i - 1][2])
            return node
        if value == "-":
            return Node("neg", left=factor())
        raise GateSyntaxError(f"expected a number or a metric name, got {value or 'the end'!r}", col)

    def term() -> Node:
        node = factor()
        while peek()[1] in {"*", "/"}:
            node = Node(take()[1], left=node, right=factor())
        return node

    def expr() -> Node:
        node = term()
        while peek()[1] in {"+", "-"}:
            node = Node(take()[1], left=node, right=term())
        return node

    left = expr()
    kind, cmp, col = take()
    if cmp not in _CMP:
        raise GateSyntaxError(f"expected a comparison (>=, <=, >, <, ==, !=), got {cmp or 'the end'!r}", col)
    right = expr()
    if peek()[0] != "end":
        raise GateSyntaxError(f"unexpected {peek()[1]!r}", peek()[2])
    return Rule(text, left, cmp, right)


class GateRule(BaseModel):
    """A rule in structured form: a metric, a comparison, and a threshold or a margin to the champion."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="The metric the rule reads.")
    op: Literal[">=", "<=", ">", "<", "==", "!="] = Field(">=", description="The comparison.")
    threshold: float | None = Field(None, description="A fixed threshold.")
    vs_champion: float | None = Field(
        None, description="Compare with the champion's value plus this margin (e.g. -0.01: at most 0.01 worse)."
    )
    description: str = Field("", description="Why the rule exists, shown in the verdict.")

    @model_validator(mode="after")
    def _one_threshold(self) -> GateRule:
        if (self.threshold is None) == (self.vs_champion is None):
            raise ValueError("give exactly one of threshold or vs_champion")
        return self

    def text(self) -> str:
        """The rule as an expression in the gate grammar."""
        if self.threshold is not None:
            return f"{self.metric} {self.op} {self.threshold:g}"
        margin = self.vs_champion or 0.0
        sign = "-" if margin < 0 else "+"
        return f"{self.metric} {self.op} champion.{self.metric} {sign} {abs(margin):g}"


def rule_text(rule: str | GateRule) -> str:
    """A rule as text in the grammar, whichever form it was written in."""
    return rule if isinstance(rule, str) else rule.text()
