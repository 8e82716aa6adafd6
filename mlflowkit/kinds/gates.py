"""The ``gates`` kind: rules over the evaluation metrics decide whether a model may be promoted.

The verdict is always written, pass or fail; a failing rule stops the flow before registration.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from mlflowkit.errors import GateFailed
from mlflowkit.kinds._gate_expr import GateSyntaxError, Rule, parse_rule
from mlflowkit.kinds.base import Inputs, Params, SectionIssues, StepContext, StepKind

if TYPE_CHECKING:
    from mlflowkit.store import Ref

__all__ = ["Gates", "GatesParams"]


def _check_rule(rule: str) -> str:
    try:
        parse_rule(rule)
    except GateSyntaxError as exc:
        raise ValueError(f"cannot parse gate {rule!r}: {exc}") from None
    return rule


class GateRule(Params):
    """A rule in structured form: a metric, a comparison, and a threshold or a margin to the champion."""

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


class GatesParams(Params):
    """Rules that must all hold for the model to be promoted."""

    rules: list[Annotated[str, AfterValidator(_check_rule)] | GateRule] = Field(
        default_factory=list,
        description=(
            "Rules as expressions (`accuracy >= 0.85`, `roc_auc >= champion.roc_auc - 0.01`) or structured"
            " (`{metric: demographic_parity_difference, op: '<=', threshold: 0.1}`)."
        ),
    )
    on_missing_baseline: Literal["pass", "fail"] = Field(
        "pass", description="What a rule that reads champion.* does when there is no champion yet (the verdict notes it)."
    )
    keep_rejected: bool = Field(
        False, description="On failure, register the candidate anyway under the alias `rejected`, for audit."
    )

    def parsed(self) -> list[tuple[Rule, str]]:
        """Each rule parsed, with its description."""
        return [(parse_rule(r), "") if isinstance(r, str) else (parse_rule(r.text()), r.description) for r in self.rules]


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
    def check(cls, section: Any, spec: Any) -> SectionIssues:
        from mlflowkit.plugins import did_you_mean, kinds

        produced: set[str] = set()
        for stage, kind_name in spec.stage_kinds.items():
            other = spec.section(spec.recipe_def.section_of(stage))
            if other is not None:
                produced |= kinds().get(kind_name).metrics_produced(other)
        for i, (rule, _) in enumerate(section.parsed()):
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
        metrics_ref = inputs["metrics"]
        values: dict[str, float] = metrics_ref.meta["metrics"]
        # The champion was scored on the same held-out rows by the evaluate step, in this run.
        champion_meta: dict[str, Any] = metrics_ref.meta.get("champion") or {"version": None, "metrics": None, "note": ""}
        champion: dict[str, float] | None = champion_meta.get("metrics")
        has_champion = champion_meta.get("version") is not None
        results: list[dict[str, Any]] = []
        for rule, description in params.parsed():
            reads_champion = any(n.startswith("champion.") for n in rule.names())
            result: dict[str, Any] = {
                "rule": rule.text,
                "description": description,
                "value": None,
                "threshold": None,
                "baseline": champion_meta.get("version") if reads_champion else None,
            }
            if reads_champion and not has_champion:
                result.update(
                    passed=params.on_missing_baseline == "pass",
                    note=f"no champion yet; on_missing_baseline={params.on_missing_baseline}",
                )
            elif reads_champion and champion is None:
                result.update(passed=False, note=champion_meta.get("note") or "champion metrics missing")
            else:
                passed, left, right, note = rule.evaluate(values, champion)
                result.update(passed=passed, value=left, threshold=right, note=note)
            results.append(result)
        verdict = {
            "passed": all(r["passed"] for r in results),
            "rules": results,
            "metrics": values,
            "champion": champion_meta,
            "on_missing_baseline": params.on_missing_baseline,
            "run_id": ctx.run_id,
        }
        ctx.report(
            "verdict",
            "gate verdict: " + ("PASS" if verdict["passed"] else "FAIL"),
            rows=[
                {
                    "rule": r["rule"],
                    "value": _fmt(r["value"]),
                    "threshold": _fmt(r["threshold"]),
                    "baseline": f"v{r['baseline']}" if r["baseline"] else "",
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
            if params.keep_rejected:
                from mlflowkit.kinds.register import register_version
                from mlflowkit.store.promotion import REJECTED

                version = register_version(ctx, inputs, verdict)
                ctx.registry.set_alias(version.model, REJECTED, version.version, reason=f"run {ctx.run_id}: gates failed")
                verdict["rejected_version"] = version.version
            raise GateFailed(ctx.step, "gates failed: " + "; ".join(failed), {**verdict, "ref": ref.key})
        ctx.logger.info("gates passed: %s", ", ".join(r["rule"] for r in results) or "no rules")
        return {"verdict": ref}


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"
