"""Finding and loading the policy: the lookup order, and a bad policy as an error at its own file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlflowkit.errors import SpecError
from mlflowkit.policy import POLICY_ENV, find_policy, load_policy, policy_path

GOOD = "policy: mlflowkit/v1\nname: {name}\n"


def write(path: Path, name: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(GOOD.format(name=name))
    return path


def test_lookup_next_to_the_spec_then_up_to_the_project_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(POLICY_ENV, raising=False)
    root = tmp_path / "repo"
    spec_dir = root / "models" / "churn"
    spec_dir.mkdir(parents=True)
    (root / "pyproject.toml").write_text("")
    write(tmp_path / "policy.yaml", "outside-the-project")  # above the root: never applies
    assert policy_path(spec_dir) is None
    write(root / "policy.yaml", "root")
    policy = find_policy(spec_dir)
    assert policy is not None and policy.name == "root"
    write(spec_dir / "policy.yaml", "next-to-spec")
    assert policy_path(spec_dir) == spec_dir / "policy.yaml"


def test_without_a_project_root_only_the_spec_folder_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(POLICY_ENV, raising=False)
    write(tmp_path / "policy.yaml", "parent")
    (tmp_path / "spec").mkdir()
    assert policy_path(tmp_path / "spec") is None


def test_the_environment_variable_wins_and_must_name_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "policy.yaml", "local")
    chosen = write(tmp_path / "ops" / "central.yaml", "central")
    monkeypatch.setenv(POLICY_ENV, str(chosen))
    policy = find_policy(tmp_path)
    assert policy is not None and policy.name == "central"
    monkeypatch.setenv(POLICY_ENV, str(tmp_path / "missing.yaml"))
    with pytest.raises(SpecError, match=r"MLFLOWKIT_POLICY names .*missing.yaml.*which is not a file"):
        find_policy(tmp_path)


@pytest.mark.parametrize(
    ("text", "line", "col", "fragment"),
    [
        ("policy: mlflowkit/v1\nmodules:\n  estimater: [sklearn.]\n", 3, 3, "unknown key 'estimater'"),
        ("policy: mlflowkit/v1\npromotion:\n  require_approval: maybe\n", 3, 21, "valid boolean"),
        ("policy: mlflowkit/v1\ngates:\n  require:\n    - rule: accuracy >=\n", 4, 13, "cannot parse gate"),
        ("policy: mlflowkit/v1\ngates:\n  require:\n    - rule: a + b >= 0.1\n", 4, 13, "is neither"),
        ("policy: mlflowkit/v1\nmodules:\n  steps: ['bad prefix']\n", 3, 10, "not an import-path prefix"),
        ("policy: mlflowkit/v2\n", 1, 9, "'mlflowkit/v1'"),
        ("name: x\n", 1, 1, "missing required key 'policy'"),
        ("policy: [unclosed\n", 2, 1, "invalid YAML"),
        ("# only a comment\n", 1, 1, "the policy is empty"),
        ("- a list\n", 1, 1, "a policy is a mapping"),
    ],
)
def test_a_bad_policy_is_an_error_at_its_file_line(tmp_path: Path, text: str, line: int, col: int, fragment: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_policy(path)
    (issue,) = info.value.issues
    assert issue.file.endswith("policy.yaml")
    assert (issue.line, issue.col) == (line, col), issue.render()
    assert fragment in issue.message + issue.hint, issue.render()
    assert "spec" not in issue.message


def test_a_bad_policy_stops_validate_with_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from mlflowkit.cli import app

    monkeypatch.delenv(POLICY_ENV, raising=False)
    spec = Path(__file__).resolve().parents[3] / "examples" / "churn" / "spec.yaml"
    (tmp_path / "spec.yaml").write_text(spec.read_text())
    (tmp_path / "policy.yaml").write_text("policy: mlflowkit/v1\ngatez: {}\n")
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "spec.yaml")])
    assert result.exit_code == 2
    assert "policy.yaml:2:1: gatez: unknown key 'gatez'" in result.output
    assert "did you mean 'gates'?" in result.output


def test_the_policy_is_cached_until_the_file_changes(tmp_path: Path) -> None:
    path = write(tmp_path / "policy.yaml", "one")
    assert load_policy(path) is load_policy(path)
    path.write_text(GOOD.format(name="two-changed"))
    assert load_policy(path).name == "two-changed"
