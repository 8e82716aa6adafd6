"""The ``gates`` kind: rules over the evaluation metrics decide whether a model may be promoted.

The verdict (:class:`mlflowkit.handoff.Verdict`) is always written, pass or fail; a failing rule stops the
flow before registration. A rule that reads a missing value, a NaN, or a champion that could not be
scored fails (fail closed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, Field

from mlflowkit.errors import GateFailed
from mlflowkit.fmt import number
from mlflowkit.gate_rules import GateRule, GateSyntaxError, Rule, parse_rule
from mlflowkit.handoff import VERDICT, ChampionScores, MetricsMeta, RuleResult, Verdict
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
    keeps_columns = True
    list_field = "rules"

    @classmethod
    def check(cls, section: Any, spec: Any) -> SectionIssues:
        from mlflowkit.plugins import did_you_mean, kinds

        rules = section.parsed()
        for i, (rule, _) in enumerate(rules):
            if not rule.metrics():  # `1 >= 0` always holds, `0 > 1` never does: neither says anything about the model
                yield (i,), f"gate {rule.text!r} reads no metric, so it decides nothing", "compare a metric, e.g. accuracy >= 0.8"
        produced: set[str] = set()
        for stage in spec.recipe_def.stages:
            kind_name = spec.stage_kinds.get(stage)
            other = spec.section(spec.recipe_def.section_of(stage))
            kind = kinds().get(kind_name) if kind_name is not None else None
            if kind is not None and other is not None:
                produced |= kind.metrics_produced(other)
            elif kind is None or kind.metrics_produced.__func__ is not StepKind.metrics_produced.__func__:  # type: ignore[attr-defined]
                return  # a section that makes metrics has errors of its own: which metrics it makes is not known
        for i, (rule, _) in enumerate(rules):
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
        scored = MetricsMeta.model_validate(inputs["metrics"].meta)
        # The champion was scored on the same held-out rows by the evaluate step, in this run.
        champion = scored.champion or ChampionScores()
        results = [self._decide(rule, description, scored.metrics, champion, params) for rule, description in params.parsed()]
        verdict = Verdict(
            passed=all(r.passed for r in results),
            rules=tuple(results),
            metrics=scored.metrics,
            champion=champion,
            on_missing_baseline=params.on_missing_baseline,
            run_id=ctx.run_id,
        )
        ctx.report(
            "verdict",
            "gate verdict: " + ("PASS" if verdict.passed else "FAIL"),
            rows=[
                {
                    "rule": r.rule,
                    "value": _fmt(r.value),
                    "threshold": _fmt(r.threshold),
                    "baseline": f"v{r.baseline}" if r.baseline else "",
                    "result": "pass" if r.passed else "FAIL",
                    "note": r.note,
                }
                for r in results
            ],
        )
        if not verdict.passed:
            if params.keep_rejected:
                from mlflowkit.kinds.register import equal_version, register_version, say_equal
                from mlflowkit.store.promotion import REJECTED

                same = equal_version(ctx, inputs)
                version, new = (same, False) if same is not None else register_version(ctx, inputs, verdict)
                if not new:
                    # Kept already (maybe as the champion, judged now by a stricter gate): no alias moves.
                    say_equal(ctx, version)
                else:
                    ctx.registry.set_alias(version.model, REJECTED, version.version, reason=f"run {ctx.run_id}: gates failed")
                    verdict = verdict.model_copy(update={"rejected_version": version.version})
            ref = _store(ctx, verdict)  # written before the flow stops: the record and the report show it
            failed = [
                f"{r.rule} (value {_fmt(r.value)}, threshold {_fmt(r.threshold)}{', ' + r.note if r.note else ''})"
                for r in verdict.failed()
            ]
            raise GateFailed(ctx.step, "gates failed: " + "; ".join(failed), verdict, ref.key)
        ctx.logger.info("gates passed: %s", ", ".join(r.rule for r in results) or "no rules")
        return {"verdict": _store(ctx, verdict)}

    @staticmethod
    def _decide(
        rule: Rule, description: str, metrics: dict[str, float | None], champion: ChampionScores, params: GatesParams
    ) -> RuleResult:
        """One rule's outcome; a missing value, a NaN or a champion that could not be scored fails it."""
        reads_champion = any(n.startswith("champion.") for n in rule.names())
        if reads_champion and not champion.exists:
            passed = params.on_missing_baseline == "pass"
            note = f"no champion yet; on_missing_baseline={params.on_missing_baseline}"
            return RuleResult(rule=rule.text, description=description, passed=passed, note=note)
        baseline = champion.version if reads_champion else None
        if reads_champion and champion.metrics is None:
            note = champion.note or "champion metrics missing"
            return RuleResult(rule=rule.text, description=description, passed=False, baseline=baseline, note=note)
        known = {k: v for k, v in metrics.items() if v is not None}
        theirs = None if champion.metrics is None else {k: v for k, v in champion.metrics.items() if v is not None}
        passed, left, right, note = rule.evaluate(known, theirs)
        return RuleResult(
            rule=rule.text, description=description, passed=passed, value=left, threshold=right, baseline=baseline, note=note
        )


def _store(ctx: StepContext, verdict: Verdict) -> Ref:
    body = verdict.model_dump_json(indent=2).encode()
    return ctx.store.put_bytes(body, VERDICT, {"passed": verdict.passed})


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else number(value)
