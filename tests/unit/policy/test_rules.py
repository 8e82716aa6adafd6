"""Each rule kind of the operations policy: a violating spec is refused at its own line and at the rule's line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mlflowkit.errors import SpecError, SpecIssue
from mlflowkit.policy import RULES, PolicyIssue, load_policy, load_spec
from mlflowkit.policy.rules import Subject, check_subject
from mlflowkit.spec._yaml import load_yaml_text

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "churn"
SPEC = (EXAMPLE / "spec.yaml").read_text()

TRITON = """
deploy:
  - target: triton
    url: http://triton.internal:8000
    grpc_url: triton.internal:8001
    model_repository: s3://acme-models/triton
"""


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """1-based line of the nth line containing ``needle``."""
    hits = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(hits) >= nth, (needle, text)
    return hits[nth - 1]


def project(tmp_path: Path, policy: str, spec: str = SPEC) -> Path:
    (tmp_path / "policy.yaml").write_text("policy: mlflowkit/v1\n" + policy)
    (tmp_path / "spec.yaml").write_text(spec)
    shutil.copy(EXAMPLE / "churn_steps.py", tmp_path)
    if not (tmp_path / "data").exists():
        shutil.copytree(EXAMPLE / "data", tmp_path / "data")
    return tmp_path / "spec.yaml"


def refused(path: Path) -> list[PolicyIssue]:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    issues = list(info.value.issues)
    assert issues and all(isinstance(i, PolicyIssue) for i in issues), [i.render() for i in issues]
    return issues  # type: ignore[return-value]


def assert_located(issue: SpecIssue, spec_text: str, spec_needle: str, policy_text: str, policy_needle: str) -> None:
    """The issue names the spec's file:line and the policy rule's file:line, in its message too."""
    assert isinstance(issue, PolicyIssue)
    assert issue.file.endswith("spec.yaml") and issue.line == line_of(spec_text, spec_needle), issue.render()
    policy_line = line_of("policy: mlflowkit/v1\n" + policy_text, policy_needle)
    assert issue.rule_where.rsplit(":", 2)[0].endswith("policy.yaml")
    assert issue.rule_where.split(":")[-2] == str(policy_line), issue.rule_where
    assert f"policy.yaml:{policy_line}:" in issue.message
    assert f"spec.yaml:{issue.line}:" in issue.render()


def test_every_rule_kind_is_registered() -> None:
    names = {fn.__name__ for fn in RULES}
    assert names == {"allowed_modules", "deploy_targets", "required_gates", "required_checks", "resource_limits", "signed_registry"}


def test_the_example_spec_complies_with_the_example_policy(tmp_path: Path) -> None:
    path = project(tmp_path, "")
    shutil.copy(EXAMPLE / "policy.example.yaml", tmp_path / "policy.yaml")
    spec = load_spec(path)
    assert spec.rules is not None and spec.rules.policy.name == "acme-ml-operations"


# --- modules ----------------------------------------------------------------------------------------------

ESTIMATORS = "modules:\n  estimators: [sklearn.linear_model]\n"


def test_estimator_outside_the_allowed_modules_is_refused(tmp_path: Path) -> None:
    (issue,) = refused(project(tmp_path, ESTIMATORS))
    assert_located(issue, SPEC, "estimator: sklearn.ensemble", ESTIMATORS, "estimators:")
    assert issue.path == "train.estimator" and "sklearn.ensemble.RandomForestClassifier" in issue.message
    assert issue.rule == "modules.estimators"


def test_estimator_inside_the_allowed_modules_passes_and_replaces_the_builtin_list(tmp_path: Path) -> None:
    spec = SPEC.replace("sklearn.ensemble.RandomForestClassifier", "acme.models.Forest")
    with pytest.raises(SpecError) as info:  # without a policy, the built-in allow-list refuses it
        load_spec(_no_policy(tmp_path, spec))
    assert "outside the allowed modules" in str(info.value)
    # The policy's list replaces the built-in one: acme.models is allowed (the module is not installed,
    # which validate cannot see past: module_defines returns "not installed").
    issues = _issues(project(tmp_path, "modules:\n  estimators: [sklearn., acme.models]\n", spec))
    assert not any(isinstance(i, PolicyIssue) for i in issues)
    assert not any("outside" in i.message for i in issues)
    assert load_spec(project(tmp_path, "modules:\n  estimators: [sklearn.]\n"))  # compliant: loads


def _no_policy(tmp_path: Path, spec: str) -> Path:
    folder = tmp_path / "bare"
    folder.mkdir(exist_ok=True)
    (folder / "spec.yaml").write_text(spec)
    return folder / "spec.yaml"


def _issues(path: Path) -> list[SpecIssue]:
    try:
        load_spec(path)
    except SpecError as exc:
        return list(exc.issues)
    return []


STEPS = "modules:\n  steps: [acme_steps]\n"


def test_custom_step_module_outside_the_allowed_prefixes_is_refused(tmp_path: Path) -> None:
    (issue,) = refused(project(tmp_path, STEPS))
    assert_located(issue, SPEC, "uses: churn_steps", STEPS, "steps:")
    assert issue.path == "steps[0].uses" and "'churn_steps'" in issue.message


def test_custom_step_module_inside_the_allowed_prefixes_passes(tmp_path: Path) -> None:
    assert load_spec(project(tmp_path, "modules:\n  steps: [churn_steps, acme.]\n"))


def test_a_prefix_is_a_package_not_a_string_prefix(tmp_path: Path) -> None:
    spec = SPEC.replace("churn_steps:add_features", "churn_stepsevil:add_features")
    (tmp_path / "churn_stepsevil.py").write_text("def add_features(df, cap=1):\n    return df\n")
    (issue,) = refused(project(tmp_path, "modules:\n  steps: [churn_steps]\n", spec))
    assert "churn_stepsevil" in issue.message


# --- deploy -----------------------------------------------------------------------------------------------

TARGETS = "deploy:\n  targets: [onnxruntime]\n"


def test_deploy_target_type_not_allowed_is_refused(tmp_path: Path) -> None:
    spec = SPEC + TRITON
    (issue,) = refused(project(tmp_path, TARGETS, spec))
    assert_located(issue, spec, "target: triton", TARGETS, "targets:")
    assert issue.path == "deploy[0].target"


def test_deploy_target_type_allowed_passes(tmp_path: Path) -> None:
    assert load_spec(project(tmp_path, "deploy:\n  targets: [triton]\n", SPEC + TRITON))


DESTINATIONS = """deploy:
  destinations:
    - http://triton.internal:8000
    - "*.internal:8001"
    - s3://acme-models/
"""


def test_every_destination_must_match_a_pattern(tmp_path: Path) -> None:
    spec = SPEC + TRITON.replace("http://triton.internal:8000", "http://evil.example.com:8000").replace(
        "s3://acme-models/triton", "s3://acme-models-public/triton"
    )
    first, second = refused(project(tmp_path, DESTINATIONS, spec))
    assert_located(first, spec, "url: http://evil", DESTINATIONS, "destinations:")
    assert first.path == "deploy[0].url" and "evil.example.com" in first.message
    assert_located(second, spec, "model_repository:", DESTINATIONS, "destinations:")
    assert "s3://acme-models-public/triton" in second.message


def test_destinations_that_match_url_host_and_fsspec_patterns_pass(tmp_path: Path) -> None:
    assert load_spec(project(tmp_path, DESTINATIONS, SPEC + TRITON))


def test_a_local_model_repository_matches_a_folder_pattern_relative_to_the_policy(tmp_path: Path) -> None:
    spec = SPEC + TRITON.replace("s3://acme-models/triton", ".mlflowkit/triton/models")
    policy = DESTINATIONS + "    - ./.mlflowkit/\n"
    assert load_spec(project(tmp_path, policy, spec))
    (issue,) = refused(project(tmp_path, DESTINATIONS, spec))
    assert issue.path == "deploy[0].model_repository"


SIGNING = "deploy:\n  require_signing: [onnxruntime]\n"

EDGE_SPEC = """\
deploy:
  - target: onnxruntime
    location: s3://acme-models/edge
    channel: stable
  - target: onnxruntime
    location: s3://acme-models/edge-signed
    signing: {key_env: EDGE_KEY}
"""


def _subject(text: str) -> Subject:
    """An edge target is not installed in this tree yet: the rules read plain data, so check the data."""
    source = load_yaml_text(text, "spec.yaml")
    data = {"deploy": {"targets": source.data["deploy"]}}

    def issue(path: tuple[str | int, ...], message: str, hint: str, prefer_key: bool) -> SpecIssue:
        yaml_path = ("deploy", *path[2:]) if path[:2] == ("deploy", "targets") else path
        return source.issue(yaml_path, message, hint=hint, prefer_key=prefer_key)

    return Subject(data, {"deploy": "deploy"}, issue, "/tmp")


def test_an_unsigned_edge_target_is_refused_and_a_signed_one_passes(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text("policy: mlflowkit/v1\n" + SIGNING)
    (issue,) = check_subject(_subject(EDGE_SPEC), load_policy(tmp_path / "policy.yaml"))
    assert_located(issue, EDGE_SPEC, "target: onnxruntime", SIGNING, "require_signing:")
    assert issue.path == "deploy[0].target" and "signing" in issue.message


def test_an_unknown_target_is_checked_by_name_and_by_its_uri_fields(tmp_path: Path) -> None:
    policy = "deploy:\n  targets: [triton]\n  destinations: [s3://acme-models/edge]\n"
    (tmp_path / "policy.yaml").write_text("policy: mlflowkit/v1\n" + policy)
    issues = check_subject(_subject(EDGE_SPEC), load_policy(tmp_path / "policy.yaml"))
    assert [(i.path, i.rule) for i in issues] == [
        ("deploy[0].target", "deploy.targets"),
        ("deploy[1].target", "deploy.targets"),
        ("deploy[1].location", "deploy.destinations"),
    ]
    assert issues[2].line == line_of(EDGE_SPEC, "edge-signed")


# --- gates ------------------------------------------------------------------------------------------------

FAIRNESS = """gates:
  require:
    - rule: demographic_parity_difference <= 0.05
      when: {deploys_to: [triton]}
      description: fair offers
"""


def test_a_required_gate_that_is_too_loose_is_refused_where_the_spec_has_it(tmp_path: Path) -> None:
    spec = SPEC + TRITON
    (issue,) = refused(project(tmp_path, FAIRNESS, spec))
    assert_located(issue, spec, "metric: demographic_parity_difference", FAIRNESS, "- rule:")
    assert issue.path == "gates[3]" and "fair offers" in issue.message


def test_a_required_gate_applies_only_when_its_condition_holds(tmp_path: Path) -> None:
    assert load_spec(project(tmp_path, FAIRNESS))  # no triton target: the rule does not apply


def test_a_stricter_gate_satisfies_the_requirement(tmp_path: Path) -> None:
    spec = (SPEC + TRITON).replace("threshold: 0.10", "threshold: 0.04")
    assert load_spec(project(tmp_path, FAIRNESS, spec))


CHAMPION = "gates:\n  require:\n    - rule: roc_auc >= champion.roc_auc\n"


def test_beating_the_champion_is_required(tmp_path: Path) -> None:
    (issue,) = refused(project(tmp_path, CHAMPION))  # the spec allows 0.02 worse than the champion
    assert_located(issue, SPEC, "champion.roc_auc - 0.02", CHAMPION, "- rule:")
    spec = SPEC.replace("  - roc_auc >= champion.roc_auc - 0.02\n", "")
    (missing,) = refused(project(tmp_path, CHAMPION, spec))
    assert_located(missing, spec, "gates:", CHAMPION, "- rule:")
    assert "has no such gate" in missing.message
    assert load_spec(project(tmp_path, CHAMPION, SPEC.replace("champion.roc_auc - 0.02", "champion.roc_auc + 0.001")))


def test_at_least_as_strict() -> None:
    from mlflowkit.policy.model import normal_rule
    from mlflowkit.policy.rules import at_least_as_strict

    def strict(have: str, want: str) -> bool:
        h, w = normal_rule(have), normal_rule(want)
        assert h is not None and w is not None
        return at_least_as_strict(h, w)

    assert strict("a >= 0.9", "a >= 0.8") and strict("a > 0.8", "a >= 0.8") and strict("0.9 <= a", "a >= 0.8")
    assert not strict("a >= 0.8", "a > 0.8") and not strict("a <= 0.9", "a >= 0.8") and not strict("b >= 0.9", "a >= 0.8")
    assert strict("a <= 0.05", "a <= 0.1") and not strict("a <= 0.2", "a <= 0.1") and strict("a == 0.05", "a <= 0.1")
    assert strict("a >= champion.a", "a >= champion.a - 0.01") and not strict("a >= champion.a - 0.02", "a >= champion.a")
    assert not strict("a >= 0.99", "a >= champion.a")


# --- checks -----------------------------------------------------------------------------------------------

CHECKS = "checks:\n  require: [schema, column_values_to_be_unique]\n"


def test_a_required_check_that_is_missing_is_refused(tmp_path: Path) -> None:
    spec = SPEC[: SPEC.index("  - schema:")] + SPEC[SPEC.index("  - rows: {min: 1000}") :]
    issues = refused(project(tmp_path, CHECKS, spec))
    assert [i.rule for i in issues] == ["checks.require[0]", "checks.require[1]"]
    assert_located(issues[0], spec, "checks:", CHECKS, "require:")
    assert "'schema'" in issues[0].message


def test_a_required_check_that_cannot_stop_the_run_does_not_count(tmp_path: Path) -> None:
    spec = SPEC.replace("  - unique: customer_id\n", "  - expect: column_values_to_be_unique\n    column: customer_id\n    severity: warn\n")
    issues = refused(project(tmp_path, CHECKS, spec))
    assert [i.rule for i in issues] == ["checks.require[1]"] and "stops the run on failure" in issues[0].message


def test_required_checks_that_are_present_pass(tmp_path: Path) -> None:
    spec = SPEC.replace("  - unique: customer_id\n", "  - expect: column_values_to_be_unique\n    column: customer_id\n")
    assert load_spec(project(tmp_path, CHECKS, spec))


# --- resources --------------------------------------------------------------------------------------------

RESOURCES = "resources:\n  max_cpus_per_trial: 2\n  max_gpus_per_trial: 0\n"
SEARCH = """  search:
    space: {max_depth: [4, 8]}
  ray: {num_cpus_per_trial: 4, num_gpus_per_trial: 1}
"""


def test_trial_resources_above_the_limits_are_refused(tmp_path: Path) -> None:
    spec = SPEC.replace("    n_jobs: 2\n", "    n_jobs: 2\n" + SEARCH).replace("    max_depth: ${params.max_depth}\n", "")
    cpus, gpus = refused(project(tmp_path, RESOURCES, spec))
    assert_located(cpus, spec, "num_cpus_per_trial: 4", RESOURCES, "max_cpus_per_trial")
    assert_located(gpus, spec, "num_cpus_per_trial: 4", RESOURCES, "max_gpus_per_trial")
    assert cpus.path == "train.ray.num_cpus_per_trial" and "4 cpus per trial" in cpus.message
    assert load_spec(
        project(tmp_path, RESOURCES, spec.replace("num_cpus_per_trial: 4, num_gpus_per_trial: 1", "num_cpus_per_trial: 2"))
    )


def test_worker_resources_are_checked_by_field_shape(tmp_path: Path) -> None:
    """A torch-style section (num_workers, resources_per_worker) is checked without knowing its kind."""
    text = "train:\n  num_workers: 8\n  resources_per_worker: {CPU: 4, GPU: 1}\n"
    source = load_yaml_text(text, "spec.yaml")
    policy_text = "resources:\n  max_workers: 4\n  max_cpus_per_worker: 2\n  max_gpus_per_worker: 1\n"
    (tmp_path / "policy.yaml").write_text("policy: mlflowkit/v1\n" + policy_text)
    subject = Subject(source.data, {"train": "torch"}, lambda p, m, h, k: source.issue(p, m, hint=h, prefer_key=k), "/tmp")
    workers, cpus = check_subject(subject, load_policy(tmp_path / "policy.yaml"))
    assert_located(workers, text, "num_workers", policy_text, "max_workers")
    assert_located(cpus, text, "resources_per_worker", policy_text, "max_cpus_per_worker")


# --- all at once ------------------------------------------------------------------------------------------


def test_every_violation_is_reported_at_once_through_the_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mlflowkit.cli import app

    path = project(
        tmp_path,
        ESTIMATORS + STEPS.replace("modules:\n", "") + CHECKS,
        SPEC.replace("  - schema:", "  - rows: {max: 9}\n  - schema:"),
    )
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "spec validation failed: 3 errors" in result.output
    assert result.output.count("policy.yaml:") == 3


def test_validate_under_a_policy_stays_light(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    project(tmp_path, "")
    shutil.copy(EXAMPLE / "policy.example.yaml", tmp_path / "policy.yaml")
    script = (
        "import json, sys\n"
        "from mlflowkit.cli import app\n"
        "from typer.testing import CliRunner\n"
        "result = CliRunner().invoke(app, ['validate', 'spec.yaml'])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert "mlflowkit" in loaded
    assert not loaded & {"prefect", "ray", "great_expectations", "onnxruntime", "pandas", "sklearn", "torch"}


@pytest.mark.parametrize(
    ("value", "allowed"),
    [
        ("http://triton-a.internal:8000", True),
        ("http://triton-x.evil.com/a.internal:8000", False),  # a glob never reaches across host and path
        ("http://triton-a.evil.com:9/#.internal:8000", False),
        ("http://triton-a.internal:9000", False),
        ("s3://models/prod/churn", True),
        ("s3://models/prod/../staging", False),
        ("s3://models/production", False),
        ("file:///srv/project/.mlflowkit/../../etc", False),
        (".mlflowkit/triton", True),
    ],
)
def test_destinations_match_part_by_part(value: str, allowed: bool) -> None:
    from mlflowkit.policy.rules import destination_allowed

    patterns = ["http://triton-*.internal:8000", "s3://models/prod/", "./.mlflowkit/"]
    assert destination_allowed(value, patterns, spec_dir="/srv/project", policy_dir="/srv/project") is allowed


# --- registry ---------------------------------------------------------------------------------------------

REGISTRY_SIGNING = "registry:\n  require_signing: true\n"


def test_a_spec_that_registers_needs_a_signing_key_where_signing_is_required(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflowkit.store.trust import SIGNING_KEY_ENV

    monkeypatch.delenv(SIGNING_KEY_ENV, raising=False)
    path = project(tmp_path, REGISTRY_SIGNING)
    (issue,) = refused(path)
    assert_located(issue, SPEC, "register:", REGISTRY_SIGNING, "require_signing")
    assert f"the policy requires signed model versions, and {SIGNING_KEY_ENV} is not set here" in issue.message
    monkeypatch.setenv(SIGNING_KEY_ENV, str(tmp_path / "registry.pem"))
    assert load_spec(path).rules is not None
