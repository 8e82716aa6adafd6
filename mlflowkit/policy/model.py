"""The operations policy's pydantic models: what a ``policy.yaml`` may state, each field described.

Every model is frozen and refuses unknown keys, like the spec's; a rule's place in the policy file is
kept by :class:`Policy` so that a violation names it (``policy.yaml:12:5``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from mlflowkit.gate_rules import GateSyntaxError, parse_rule

__all__ = [
    "CheckRules",
    "DeployRules",
    "GateRules",
    "ModuleRules",
    "NormalRule",
    "Policy",
    "PromotionRules",
    "RegistryRules",
    "RequiredGate",
    "ResourceLimits",
    "When",
    "normal_rule",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _prefixes(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    for value in values:
        bare = value.rstrip(".")
        if not bare or not all(part.isidentifier() for part in bare.split(".")):
            raise ValueError(f"{value!r} is not an import-path prefix (like `sklearn.` or `acme.models`)")
    return values


class ModuleRules(_Frozen):
    """Which Python modules a spec may make mlflowkit import, as import-path prefixes (`sklearn.`, `acme.steps`)."""

    estimators: list[str] | None = Field(
        None,
        description=(
            "Prefixes an estimator (train's `estimator:`, any kind's model class) must start with. When set, this list"
            " replaces the built-in allow-list (sklearn., xgboost., lightgbm.) and MLFLOWKIT_ALLOWED_MODULES."
        ),
    )
    steps: list[str] | None = Field(
        None,
        description="Prefixes the module of a custom step (`uses: module:function`) must start with; unset: any module.",
    )

    _check_estimators = field_validator("estimators")(_prefixes)
    _check_steps = field_validator("steps")(_prefixes)


class DeployRules(_Frozen):
    """Where models may be deployed."""

    targets: list[str] | None = Field(
        None, description="Target types a spec may deploy to (`triton`, `onnxruntime`); unset: any."
    )
    destinations: list[str] | None = Field(
        None,
        description=(
            "Patterns every URL, host or storage location of a target must match: a URL glob"
            " (`http://triton-*.internal:8000`), a host glob (`*.internal`, `triton:8001`), an fsspec prefix"
            " (`s3://models/`), or a local folder (relative to the policy file). Unset: anywhere."
        ),
    )
    require_signing: list[str] = Field(
        default_factory=list,
        description="Target types that must carry a `signing:` block (edge bundles, e.g. `onnxruntime`).",
    )


class When(_Frozen):
    """When a required gate applies."""

    deploys_to: list[str] | None = Field(None, description="Only for specs that deploy to one of these target types.")


class RequiredGate(_Frozen):
    """A gate every spec (or every spec matching `when`) must have, with the same or a stricter threshold."""

    rule: str = Field(
        description=(
            "`metric OP number` (`demographic_parity_difference <= 0.1`) or `metric OP champion.metric [± margin]`"
            " (`roc_auc >= champion.roc_auc`). A spec's rule on the same metric and direction that is at least as"
            " strict satisfies it."
        )
    )
    when: When | None = Field(None, description="When the rule applies; unset: to every spec.")
    description: str = Field("", description="Why operations require it; shown with a violation.")

    @field_validator("rule")
    @classmethod
    def _simple(cls, rule: str) -> str:
        try:
            parsed = normal_rule(rule)
        except GateSyntaxError as exc:
            raise ValueError(f"cannot parse gate {rule!r}: {exc}") from None
        if parsed is None or parsed.op == "!=":
            raise ValueError(
                f"a required gate is `metric OP number` or `metric OP champion.metric ± number`; {rule!r} is neither"
            )
        return rule


class GateRules(_Frozen):
    """Gates that specs must have."""

    require: list[RequiredGate] = Field(default_factory=list, description="The required gates.")


class CheckRules(_Frozen):
    """Data checks that specs must have."""

    require: list[str] = Field(
        default_factory=list,
        description=(
            "Checks each spec's `checks:` must contain: a built-in block (`schema`, `rows`, `target`, `unique`, `leakage`),"
            " `suite`, or a Great Expectations expectation name (`column_values_to_not_be_null`)."
        ),
    )


class ResourceLimits(_Frozen):
    """The most a trial or a training worker may reserve."""

    max_cpus_per_trial: float | None = Field(None, ge=0, description="CPUs one search trial may reserve.")
    max_gpus_per_trial: float | None = Field(None, ge=0, description="GPUs one search trial may reserve.")
    max_workers: int | None = Field(None, ge=1, description="Training workers (`num_workers`) a step may start.")
    max_cpus_per_worker: float | None = Field(None, ge=0, description="CPUs one training worker may reserve.")
    max_gpus_per_worker: float | None = Field(None, ge=0, description="GPUs one training worker may reserve.")


class PromotionRules(_Frozen):
    """Who may move `champion`, and whether a recorded approval must come first."""

    promoters: list[str] | None = Field(
        None,
        description=(
            "Identities (glob patterns) that may promote and roll back, by hand or through a run's register step;"
            " unset: anyone. The identity is MLFLOWKIT_USER, else the OS user."
        ),
    )
    approvers: list[str] | None = Field(None, description="Identities that may approve a version; unset: the promoters.")
    require_approval: bool = Field(
        False,
        description=(
            "A version becomes champion only after `mlflowkit models approve`; until then a run keeps it as `challenger`."
        ),
    )
    distinct_approver: bool = Field(False, description="The approver may not be the identity whose run registered the version.")


class RegistryRules(_Frozen):
    """Which model versions the registry accepts: signed ones, by which keys."""

    require_signing: bool = Field(
        False,
        description=(
            "Every version is signed when registered (the key in MLFLOWKIT_SIGNING_KEY) and verified before it is"
            " loaded, shown or promoted; unsigned or forged versions are refused."
        ),
    )
    trusted_keys: list[str] = Field(
        default_factory=list,
        description=(
            "Public keys (PEM files, relative to this policy file) whose signatures the registry accepts, besides"
            " MLFLOWKIT_TRUSTED_KEYS; list the old and the new key while rotating."
        ),
    )


class Policy(_Frozen):
    """An operations policy: what specs may use, where they may deploy, what they must check, who may promote."""

    policy: Literal["mlflowkit/v1"] = Field(description="The policy format version.")
    name: str = Field("", description="A name for this policy, shown in reports.")
    description: str = Field("", description="What this policy is for.")
    modules: ModuleRules = Field(default_factory=ModuleRules, description=ModuleRules.__doc__ or "")
    deploy: DeployRules = Field(default_factory=DeployRules, description=DeployRules.__doc__ or "")
    gates: GateRules = Field(default_factory=GateRules, description=GateRules.__doc__ or "")
    checks: CheckRules = Field(default_factory=CheckRules, description=CheckRules.__doc__ or "")
    resources: ResourceLimits = Field(default_factory=ResourceLimits, description=ResourceLimits.__doc__ or "")
    promotion: PromotionRules = Field(default_factory=PromotionRules, description=PromotionRules.__doc__ or "")
    registry: RegistryRules = Field(default_factory=RegistryRules, description=RegistryRules.__doc__ or "")

    _meta: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def file(self) -> str:
        """The policy file, as shown in messages."""
        return str(self._meta.get("file", "<policy>"))

    @property
    def sha256(self) -> str:
        """sha256 of the policy file's text (recorded with the versions it governed)."""
        return str(self._meta.get("sha256", ""))

    def where(self, path: tuple[str | int, ...]) -> str:
        """``file:line:col`` of the rule at ``path`` (its key when it has one)."""
        source = self._meta.get("source")
        if source is None:
            return self.file
        mark = source.locate(path, prefer_key=not path or not isinstance(path[-1], int))
        return f"{self.file}:{mark.line}:{mark.col}"


class NormalRule(_Frozen):
    """A gate rule in a comparable form: ``metric op value`` or ``metric op champion.metric + value``."""

    metric: str
    op: str
    champion: bool
    value: float


_FLIP = {">=": "<=", "<=": ">=", ">": "<", "<": ">", "==": "==", "!=": "!="}


def normal_rule(text: str) -> NormalRule | None:
    """The comparable form of a rule, or None when it is more complex (it then satisfies no requirement).

    Raises:
        GateSyntaxError: the rule does not parse.
    """
    rule = parse_rule(text)
    left, op, right = rule.left, rule.cmp, rule.right
    if left.op != "name" and right.op == "name" and not str(right.value).startswith("champion."):
        left, right, op = right, left, _FLIP[op]
    if left.op != "name" or str(left.value).startswith("champion."):
        return None
    metric = str(left.value)
    if right.op == "num":
        return NormalRule(metric=metric, op=op, champion=False, value=float(right.value))
    offset = 0.0
    if right.op in {"+", "-"} and right.left is not None and right.right is not None and right.right.op == "num":
        offset = float(right.right.value) * (1 if right.op == "+" else -1)
        right = right.left
    if right.op == "name" and right.value == f"champion.{metric}":
        return NormalRule(metric=metric, op=op, champion=True, value=offset)
    return None
