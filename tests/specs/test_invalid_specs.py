"""The bad-spec table: every ``invalid/*.yaml`` must fail with an issue at the line, path and message in its header,
and ``mlflowkit validate`` must exit 2 printing that file:line and the hint. Cases read ``invalid/data/``.

Each case starts with header comments (``line`` counts the header lines too; 0 means no position)::

    # line: 7
    # path: train.params
    # message: duplicate key 'n_estimators'
    # hint: did you mean 'estimator'?      (optional: a fragment of the issue's hint)
    # count: 1                             (optional: how many issues the file has in all)
"""

from __future__ import annotations

import gc
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlflowkit.errors import SpecError, SpecIssue
from mlflowkit.spec.load import load_spec

HERE = Path(__file__).parent
INVALID = HERE / "invalid"
REPO = HERE.parent.parent
CASES = sorted(INVALID.glob("*.yaml"))

_HEADER = re.compile(r"#\s*(line|path|message|hint|count):[ \t]?(.*)")


@dataclass(frozen=True)
class Expected:
    line: int
    path: str
    message: str
    hint: str | None
    count: int | None


def _expected(case: Path) -> Expected:
    fields: dict[str, str] = {}
    for text in case.read_text(encoding="utf-8").splitlines():
        m = _HEADER.fullmatch(text.rstrip())
        if m is None:
            break
        fields[m.group(1)] = m.group(2).strip()
    missing = {"line", "path", "message"} - set(fields)
    assert not missing, f"{case.name}: header lacks {sorted(missing)}"
    count = int(fields["count"]) if "count" in fields else None
    return Expected(int(fields["line"]), fields["path"], fields["message"], fields.get("hint"), count)


def _matches(issue: SpecIssue, want: Expected) -> bool:
    return (
        issue.line == want.line
        and issue.path == want.path
        and want.message in issue.message
        and (want.hint is None or want.hint in issue.hint)
    )


def test_table_is_large_enough() -> None:
    assert len(CASES) > 120
    # Cases about what validate learns from the estimator catalog and the data's header carry a hint each.
    hinted = [c for c in CASES if _expected(c).hint]
    assert len(hinted) > 60


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_cli_validate_exits_2_at_file_line_with_the_hint(case: Path) -> None:
    from typer.testing import CliRunner

    from mlflowkit.cli import app

    want = _expected(case)
    result = CliRunner().invoke(app, ["validate", str(case)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    if want.line:
        assert f"{case.name}:{want.line}:" in result.output, result.output
    if want.hint:
        assert f"hint: {want.hint}" in result.output or want.hint in result.output, result.output


@pytest.fixture(autouse=True)
def _default_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOWKIT_MAX_SPEC_BYTES", raising=False)


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_invalid_spec(case: Path) -> None:
    want = _expected(case)
    # A fixed, empty environment: a case about an unset variable must not depend on the developer's shell.
    with pytest.raises(SpecError) as info:
        load_spec(case, env={})
    issues = info.value.issues
    assert any(_matches(issue, want) for issue in issues), (
        f"no issue at line {want.line}, path {want.path!r}, message ~ {want.message!r}"
        + (f", hint ~ {want.hint!r}" if want.hint is not None else "")
        + f"; got:\n{info.value}"
    )
    for issue in issues:
        if _matches(issue, want):
            assert Path(issue.file).resolve() == case.resolve(), issue.file
    if want.count is not None:
        assert len(issues) == want.count, str(info.value)


def test_oversized_spec_names_the_limit(tmp_path: Path) -> None:
    spec = tmp_path / "huge.yaml"
    header = "spec: mlflowkit/v1\nname: churn\nrecipe: tabular-classification\ndata: {source: data/churn.csv, target: churned}\n"
    filler = "# " + "x" * 98 + "\n"  # 100 bytes a line
    with spec.open("w", encoding="utf-8") as fh:
        fh.write(header)
        fh.write(filler * (50 * 1024 * 1024 // len(filler)))
    assert spec.stat().st_size >= 50 * 1024 * 1024 - 100
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    (issue,) = info.value.issues
    assert "the limit for a spec is 1.0 MiB" in issue.message
    assert "MLFLOWKIT_MAX_SPEC_BYTES" in issue.message
    assert "50.0 MiB" in issue.message
    assert Path(issue.file).resolve() == spec.resolve()


def test_validation_closes_what_it_opens() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        load_spec(REPO / "examples" / "churn" / "spec.yaml")
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaks, leaks


def _cli(*args: str | os.PathLike[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"MLFLOWKIT_MAX_SPEC_BYTES", "LINES"}}
    env["COLUMNS"] = "80"  # what rich assumes without a terminal (CI); fixed so the output does not vary
    return subprocess.run(
        [sys.executable, "-c", "from mlflowkit.cli import main; main()", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _copy_case(name: str, folder: Path) -> Path:
    """A case copied into ``folder`` as spec.yaml, with the data its cases read."""
    shutil.copytree(INVALID / "data", folder / "data")
    spec = folder / "spec.yaml"
    spec.write_bytes((INVALID / f"{name}.yaml").read_bytes())
    return spec


def test_cli_validate_reports_every_error_and_writes_nothing(tmp_path: Path) -> None:
    spec = _copy_case("multi_three_errors", tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = _cli("validate", spec.name, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "3 errors" in output
    # The case's header takes lines 1-3; its three problems are on lines 10, 12 and 14.
    for fragment in (
        "spec.yaml:10:",
        "data.split.test_size",
        "less than 1",
        "spec.yaml:12:",
        "train.estimater",
        "did you mean 'estimator'?",
        "spec.yaml:14:",
        "register.model",
    ):
        assert fragment in output
    assert re.search(r"spec\.yaml:\d+:\d+: ", output)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not (tmp_path / ".mlflowkit").exists()


def test_cli_prints_each_issue_on_one_line(tmp_path: Path) -> None:
    spec = _copy_case("multi_three_errors", tmp_path)
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    output = _cli("validate", spec.name, cwd=tmp_path).stderr
    for issue in info.value.issues:
        first = f"spec.yaml:{issue.line}:{issue.col}: {issue.path}: {issue.message}"
        assert first in output.splitlines(), (first, output)


def test_validate_stays_light() -> None:
    heavy = ["prefect", "ray", "great_expectations", "onnxruntime", "pandas", "sklearn", "torch", "numpy", "fsspec", "pyarrow"]
    script = (
        "import json, sys\n"
        "from mlflowkit.cli import app\n"
        "from typer.testing import CliRunner\n"
        "result = CliRunner().invoke(app, ['validate', 'examples/churn/spec.yaml'])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert "mlflowkit" in loaded
    assert not loaded & set(heavy), sorted(loaded & set(heavy))


@pytest.mark.parametrize("case", ["data_source_missing", "data_target_misspelt"])
def test_no_data_check_skips_what_only_the_data_tells_and_nothing_else(case: str, tmp_path: Path) -> None:
    """``validate --no-data-check`` (data that exists only where the run happens) opens no data source."""
    spec = _copy_case(case, tmp_path)
    assert _cli("validate", spec.name, cwd=tmp_path).returncode == 2
    skipped = _cli("validate", "--no-data-check", spec.name, cwd=tmp_path)
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    assert "valid" in skipped.stdout
    # Every other check still runs: a misspelt estimator argument is reported with the flag too.
    spec.write_text(spec.read_text() + "train:\n  estimator: sklearn.ensemble.RandomForestClassifier\n  params: {n_estimator: 5}\n")
    still = _cli("validate", "--no-data-check", spec.name, cwd=tmp_path)
    assert still.returncode == 2 and "did you mean 'n_estimators'?" in still.stderr
