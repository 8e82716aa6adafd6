"""The ``gates`` kind: rules over the evaluation metrics decide whether a model may be promoted.

The verdict is always written, pass or fail; a failing rule stops the flow before registration.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, Field

from mlflowkit.errors import GateFailed, RegistryError
from mlflowkit.kinds._gate_expr import GateSyntaxError, Rule, parse_rule
from mlflowkit.kinds.base import Inputs, Params, StepContext, StepKind

if TYPE_CHECKING:
    from mlflowkit.store import Ref

__all__ = ["Gates", "GatesParams"]


def _check_rule(rule: str) -> str:
    try:
        parse_rule(rule)
    except GateSyntaxError as exc:
        raise ValueError(f"cannot parse gate {rule!r}: {exc}") from None
    return rule


class GatesParams(Params):
    """Rules that must all hold for the model to be promoted."""

    rules: list[Annotated[str, AfterValidator(_check_rule)]] = Field(
        default_factory=list,
        description="Rules such as `accuracy >= 0.85` or `roc_auc >= champion.roc_auc - 0.01`.",
    )
    on_missing_baseline: Literal["pass", "fail"] = Field(
        "pass", description="What a rule that reads champion.* does when there is no champion yet."
    )

    def parsed(self) -> list[Rule]:
        """The rules, parsed."""
        return [parse_rule(r) for r in self.rules]


class Gates(StepKind):
    """Check the metrics against rules; write the verdict; stop the flow when any rule fails.

    Example:

    ```yaml
    gates:
      - accuracy >= 0.80
      - f1 >= champion.f1 - 0.02
    ```
    """

    Params = GatesParams
    summary = "decide promotion from metric rules"
    list_field = "rules"

    @classmethod
    def check(cls, section: Any, spec: Any) -> Iterable[tuple[tuple[str | int, ...], str, str]]:
        from mlflowkit.plugins import did_you_mean, kinds

        produced: set[str] = set()
        for stage, kind_name in spec.stage_kinds.items():
            other = spec.section(spec.recipe_def.section_of(stage))
            if other is not None:
                produced |= kinds().get(kind_name).metrics_produced(other)
        for i, rule in enumerate(section.parsed()):
            for metric in rule.metrics():
                if metric not in produced:
                    hint = did_you_mean(metric, produced) or "add it to evaluate.metrics"
                    yield (
                        (i,),
                        (
                            f"gate {rule.text!r} reads metric {metric!r}, which no step produces "
                            f"(evaluate produces: {', '.join(sorted(produced)) or 'nothing'})"
                        ),
                        hint,
                    )

    def run(self, ctx: StepContext, params: GatesParams, inputs: Inputs) -> dict[str, Ref]:
        values: dict[str, float] = inputs["metrics"].meta["metrics"]
        champion_info: dict[str, Any] | None = None
        champion: dict[str, float] | None = None
        try:
            version = ctx.registry.get(ctx.model_name, "champion")
            champion = dict(version.lineage.get("metrics", {}))
            champion_info = {"model": version.model, "version": version.version}
        except RegistryError:
            champion = None
        results: list[dict[str, Any]] = []
        for rule in params.parsed():
            reads_champion = any(n.startswith("champion.") for n in rule.names())
            if reads_champion and champion is None:
                passed = params.on_missing_baseline == "pass"
                results.append(
                    {
                        "rule": rule.text,
                        "passed": passed,
                        "value": None,
                        "threshold": None,
                        "baseline": None,
                        "note": f"no champion yet; on_missing_baseline={params.on_missing_baseline}",
                    }
                )
                continue
            passed, left, right, note = rule.evaluate(values, champion)
            results.append(
                {
                    "rule": rule.text,
                    "passed": passed,
                    "value": left,
                    "threshold": right,
                    "baseline": champion_info if reads_champion else None,
                    "note": note,
                }
            )
        verdict = {
            "passed": all(r["passed"] for r in results),
            "rules": results,
            "metrics": values,
            "champion": champion_info,
            "on_missing_baseline": params.on_missing_baseline,
        }
        ctx.report(
            "verdict",
            "gate verdict: " + ("PASS" if verdict["passed"] else "FAIL"),
            rows=[
                {
                    "rule": r["rule"],
                    "value": _fmt(r["value"]),
                    "threshold": _fmt(r["threshold"]),
                    "result": "pass" if r["passed"] else "FAIL",
                    "note": r["note"],
                }
                for r in results
            ],
        )
        body = json.dumps(verdict, sort_keys=True, indent=2, default=str).encode()
        ref = ctx.store.put_bytes(body, "application/json", {"passed": verdict["passed"]})
        if not verdict["passed"]:
            failed = [
                f"{r['rule']} (value {_fmt(r['value'])}, threshold {_fmt(r['threshold'])}{', ' + r['note'] if r['note'] else ''})"
                for r in results
                if not r["passed"]
            ]
            raise GateFailed(ctx.step, "gates failed: " + "; ".join(failed), {**verdict, "ref": ref.key})
        ctx.logger.info("gates passed: %s", ", ".join(r["rule"] for r in results) or "no rules")
        return {"verdict": ref}


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"
