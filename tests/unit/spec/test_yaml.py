"""Tests for mlflowkit.spec._yaml: YAML 1.2 scalars, refused constructs, limits, syntax errors and positions."""

from __future__ import annotations

import math
import os
import pathlib
import re
import subprocess
import sys
import time
from typing import Any

import pytest
import yaml

from mlflowkit.errors import SpecError, SpecIssue
from mlflowkit.spec import _yaml
from mlflowkit.spec._yaml import LoadedYaml, Mark, dotted, load_yaml_file, load_yaml_text

REPO = pathlib.Path(__file__).resolve().parents[3]
CASES = sorted((REPO / "tests" / "specs" / "invalid").glob("yaml_*.yaml"))
HEAD = "spec: mlflowkit/v1\nname: churn\n"


@pytest.fixture(params=["libyaml", "pure"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test with libyaml's parser and with PyYAML's pure-Python one: both must behave the same."""
    if request.param == "pure":
        monkeypatch.setattr(_yaml, "_FastLoader", None)
    elif _yaml._FastLoader is None:
        pytest.skip("PyYAML is built without libyaml here")
    return str(request.param)


def issues_of(text: str, file: str = "spec.yaml") -> tuple[SpecIssue, ...]:
    with pytest.raises(SpecError) as info:
        load_yaml_text(text, file)
    return info.value.issues


def one_issue(text: str) -> SpecIssue:
    issues = issues_of(text)
    assert len(issues) == 1, [i.message for i in issues]
    return issues[0]


# --- 1. YAML 1.2 scalars ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # YAML 1.1 booleans are strings in YAML 1.2
        ("no", "no"),
        ("yes", "yes"),
        ("off", "off"),
        ("on", "on"),
        ("NO", "NO"),
        ("y", "y"),
        ("n", "n"),
        # booleans
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("false", False),
        ("False", False),
        ("FALSE", False),
        # null
        ("null", None),
        ("Null", None),
        ("NULL", None),
        ("~", None),
        ("", None),
        # ints
        ("0", 0),
        ("42", 42),
        ("-7", -7),
        ("007", 7),
        ("0x1F", 31),
        ("0o17", 15),
        ("1_000", "1_000"),
        ("0b101", "0b101"),
        ("012345678901234567890", 12345678901234567890),
        # floats
        ("1.5", 1.5),
        ("1.10", 1.1),
        ("-0.25", -0.25),
        ("1e-5", 1e-5),
        ("1E3", 1000.0),
        (".5", 0.5),
        ("1.", 1.0),
        (".inf", math.inf),
        ("-.inf", -math.inf),
        ("+.INF", math.inf),
        # YAML 1.1 timestamps and sexagesimal numbers stay strings
        ("12:30", "12:30"),
        ("1:30:00", "1:30:00"),
        ("2024-01-01", "2024-01-01"),
        ("2024-01-01T10:00:00Z", "2024-01-01T10:00:00Z"),
        # quoting always makes a string
        ("'true'", "true"),
        ('"1.5"', "1.5"),
        ("'null'", "null"),
        ("'~'", "~"),
        # plain strings
        ("=", "="),
        (".", "."),
        ("-x", "-x"),
        ("sklearn.ensemble.RandomForestClassifier", "sklearn.ensemble.RandomForestClassifier"),
        ("${params.n_estimators}", "${params.n_estimators}"),
    ],
)
def test_scalars_follow_yaml_1_2_core(parser: str, source: str, expected: Any) -> None:
    data = load_yaml_text(f"{HEAD}value: {source}\n").data
    assert data["value"] == expected
    assert type(data["value"]) is type(expected)


def test_nan_is_a_float(parser: str) -> None:
    for source in (".nan", ".NaN", ".NAN"):
        assert math.isnan(load_yaml_text(f"{HEAD}value: {source}\n").data["value"])


def test_yaml_1_1_keys_stay_strings(parser: str) -> None:
    data = load_yaml_text("on: raw\nyes: 1\nno: 2\noff: 3\nNO: 4\ny: 5\n").data
    assert data == {"on": "raw", "yes": 1, "no": 2, "off": 3, "NO": 4, "y": 5}


def test_explicit_standard_tags_are_plain_data(parser: str) -> None:
    data = load_yaml_text(
        "a: !!str 12\nb: !!float 1\nc: !!int '0x10'\nd: !!bool 'true'\ne: !!null ''\nf: !!seq [1]\ng: !!map {x: 1}\nh: ! 12\n"
    ).data
    assert data == {"a": "12", "b": 1.0, "c": 16, "d": True, "e": None, "f": [1], "g": {"x": 1}, "h": "12"}
    assert type(data["b"]) is float


def test_explicit_tag_with_a_value_that_does_not_fit(parser: str) -> None:
    issues = issues_of("a: !!int abc\nb: !!bool yes\nc: !!float 0x10\nd: !!null x\n")
    assert [(i.line, i.col, i.path) for i in issues] == [(1, 4, "a"), (2, 4, "b"), (3, 4, "c"), (4, 4, "d")]
    assert issues[0].message == "'abc' is not a valid !!int value"
    assert issues[1].message == "'yes' is not a valid !!bool value"


def test_safe_loader_is_left_alone() -> None:
    # Our resolvers live on our own Loader: PyYAML's SafeLoader still reads YAML 1.1.
    assert yaml.safe_load("on: yes") == {True: True}
    assert _yaml._Loader.yaml_implicit_resolvers is not yaml.SafeLoader.yaml_implicit_resolvers


# --- 2. tags ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ('!!python/object/apply:os.system ["echo hi"]', "!!python/object/apply:os.system"),
        ("!!python/name:os.system", "!!python/name:os.system"),
        ("!!python/object/new:dict {}", "!!python/object/new:dict"),
        ("!custom x", "!custom"),
        ("!!binary aGk=", "!!binary"),
        ("!!timestamp 2024-01-01", "!!timestamp"),
        ("!!set {a: null}", "!!set"),
        ("!!omap [a: 1]", "!!omap"),
        ("!<tag:example.com,2024:thing> x", "!<tag:example.com,2024:thing>"),
    ],
)
def test_non_standard_tags_are_refused(parser: str, value: str, shown: str) -> None:
    issue = one_issue(f"{HEAD}train:\n  estimator: {value}\n")
    assert issue.message == (
        f"tag '{shown}' is not allowed: a spec is plain data (mappings, lists, strings, numbers, booleans, null)"
    )
    assert (issue.line, issue.col, issue.path) == (4, 14, "train.estimator")
    assert issue.snippet == f"  estimator: {value}"
    assert issue.file == "spec.yaml"


def test_every_bad_tag_is_reported_at_once(parser: str) -> None:
    issues = issues_of(f"{HEAD}a: !!python/name:os.system\nb: [1, !x 2]\nc: {{k: !!binary aGk=}}\n")
    assert [(i.line, i.col, i.path) for i in issues] == [(3, 4, "a"), (4, 8, "b[1]"), (5, 8, "c.k")]


def test_a_tag_is_never_constructed(parser: str, tmp_path: pathlib.Path) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(SpecError):
        load_yaml_text(f'{HEAD}x: !!python/object/apply:os.system ["touch {marker}"]\n')
    assert not marker.exists()


def test_a_standard_tag_on_the_wrong_kind_of_node(parser: str) -> None:
    issue = one_issue(f"{HEAD}a: !!map [1, 2]\n")
    assert issue.message == "tag '!!map' cannot be used on a list"
    assert (issue.line, issue.path) == (3, "a")


def test_a_tagged_key_is_refused(parser: str) -> None:
    issue = one_issue(f"{HEAD}train:\n  !!python/name:os.system : x\n")
    assert "tag '!!python/name:os.system' is not allowed" in issue.message
    assert (issue.line, issue.col, issue.path) == (4, 3, "train")


# --- 3. duplicate keys -----------------------------------------------------------------------------------------


def test_duplicate_keys_are_all_reported_at_the_second_key(parser: str) -> None:
    text = f"{HEAD}train:\n  params:\n    n: 1\n    m: 2\n    n: 3\nname: again\n"
    issues = issues_of(text)
    assert [(i.line, i.col, i.path, i.message) for i in issues] == [
        (7, 5, "train.params", "duplicate key 'n' (first defined at line 5)"),
        (8, 1, "", "duplicate key 'name' (first defined at line 2)"),
    ]


def test_same_key_in_different_mappings_is_fine(parser: str) -> None:
    assert load_yaml_text("a: {n: 1}\nb: {n: 2}\n").data == {"a": {"n": 1}, "b": {"n": 2}}


# --- 4. keys must be strings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("1: a", "a key must be a string; got a number (1)"),
        ("1.5: a", "a key must be a string; got a number (1.5)"),
        ("true: a", "a key must be a string; got a boolean (true)"),
        ("null: x", "a key must be a string; got null"),
        ("~: x", "a key must be a string; got null (~)"),
        ("[a]: b", "a key must be a string; got a list"),
        ("{a: 1}: b", "a key must be a string; got a mapping"),
    ],
)
def test_keys_must_be_strings(parser: str, line: str, message: str) -> None:
    issue = one_issue(f"{HEAD}params:\n  {line}\n")
    assert issue.message == message
    assert (issue.line, issue.col, issue.path) == (4, 3, "params")


def test_quoted_keys_that_look_like_other_types_are_strings(parser: str) -> None:
    assert load_yaml_text("'1': a\n'true': b\n'null': c\n").data == {"1": "a", "true": "b", "null": "c"}


def test_merge_keys_are_refused(parser: str) -> None:
    issue = one_issue(f"{HEAD}base: &b {{x: 1}}\nt:\n  <<: *b\n  y: 2\n")
    assert issue.message == "merge keys ('<<') are not supported: they hide where a value came from"
    assert (issue.line, issue.col, issue.path) == (5, 3, "t")
    # Quoted, '<<' is an ordinary key.
    assert load_yaml_text("'<<': 1\n").data == {"<<": 1}


# --- 5. aliases, bombs, depth ----------------------------------------------------------------------------------


def bomb(levels: int = 9, indent: str = "") -> str:
    lines = [f"{indent}a: &a [{', '.join(['lol'] * 9)}]"]
    for prev, name in zip("abcdefghijklmnop", "bcdefghijklmnopq"[: levels - 1], strict=False):
        lines.append(f"{indent}{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + "\n"


def test_plain_aliases_copy_values_and_point_at_the_alias(parser: str) -> None:
    loaded = load_yaml_text("defaults: &d\n  n: 1\nmodel:\n  params: *d\n")
    assert loaded.data == {"defaults": {"n": 1}, "model": {"params": {"n": 1}}}
    assert loaded.values[("model", "params")] == Mark(4, 11)  # the alias
    assert loaded.values[("model", "params", "n")] == Mark(2, 6)  # inside the anchored value


def test_alias_bomb_is_refused_quickly(parser: str) -> None:
    start = time.perf_counter()
    issue = one_issue(HEAD + bomb())
    assert time.perf_counter() - start < 2
    assert issue.message == ("aliases expand to more than 100000 nodes (limit MAX_NODES=100000); refusing a possible alias bomb")
    # At the outermost alias being expanded when the count ran over: the first *e on line f.
    assert (issue.line, issue.col, issue.path) == (8, 8, "f[0]")


def test_node_limit_without_aliases(parser: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_yaml, "MAX_NODES", 10)
    issue = one_issue(f"{HEAD}x: [1, 2, 3, 4, 5, 6, 7, 8]\n")
    assert issue.message == "the spec has more than 10 nodes (limit MAX_NODES=10)"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("a: &a [*a]\n", (1, 8, "a[0]")),
        ("a: &a {b: [1, *a]}\n", (1, 15, "a.b[1]")),
    ],
)
def test_recursive_alias_is_refused(parser: str, text: str, where: tuple[int, int, str]) -> None:
    issue = one_issue(text)
    assert issue.message == "recursive alias '*a'"
    assert (issue.line, issue.col, issue.path) == where


def test_undefined_alias_and_duplicate_anchor(parser: str) -> None:
    issues = issues_of("a: *x\nb: &y 1\nc: &y 2\n")
    assert [(i.line, i.col, i.path, i.message) for i in issues] == [
        (1, 4, "a", "alias '*x' refers to an anchor '&x' that is not defined before it"),
        (3, 4, "c", "anchor '&y' is defined twice (first at line 2)"),
    ]


def nested(levels: int) -> str:
    return "a: " + "[" * levels + "]" * levels + "\n"


def test_depth_limit_in_the_source(parser: str) -> None:
    assert load_yaml_text(nested(64)).data["a"] is not None  # the innermost list is at depth 64
    issue = one_issue(nested(65))
    assert issue.message == "nesting deeper than 64 levels (limit MAX_DEPTH=64)"
    assert (issue.line, issue.col) == (1, 68)


def test_deep_source_does_not_hit_recursion_error(parser: str) -> None:
    issue = one_issue(nested(50_000))
    assert "nesting deeper than 64 levels" in issue.message


def test_depth_limit_through_aliases(parser: str) -> None:
    # Each line is shallow, but every alias adds a level to the data.
    lines = ["l0: &l0 [x]"] + [f"l{i}: &l{i} [*l{i - 1}]" for i in range(1, 70)]
    issue = one_issue("\n".join(lines) + "\n")
    assert issue.message == "nesting deeper than 64 levels (limit MAX_DEPTH=64)"


# --- 6. size ---------------------------------------------------------------------------------------------------


def test_oversized_file_is_refused_before_reading(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.yaml"
    with open(big, "wb") as f:
        f.truncate(50 * 1024 * 1024)  # sparse: no disk used

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file was opened")

    monkeypatch.setattr(_yaml, "open", no_reading, raising=False)
    with pytest.raises(SpecError) as info:
        load_yaml_file(big, display="big.yaml")
    (issue,) = info.value.issues
    assert issue.message == "file is 50.0 MiB; the limit for a spec is 1.0 MiB (MLFLOWKIT_MAX_SPEC_BYTES)"
    assert (issue.file, issue.line, issue.col, issue.path) == ("big.yaml", 0, 0, "")


def test_size_limit_from_the_environment(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(HEAD)
    assert load_yaml_file(spec).data == {"spec": "mlflowkit/v1", "name": "churn"}
    monkeypatch.setenv("MLFLOWKIT_MAX_SPEC_BYTES", "10")
    with pytest.raises(SpecError, match=r"file is 31 bytes; the limit for a spec is 10 bytes"):
        load_yaml_file(spec)
    monkeypatch.setenv("MLFLOWKIT_MAX_SPEC_BYTES", "lots")
    with pytest.raises(SpecError, match="MLFLOWKIT_MAX_SPEC_BYTES must be a positive number of bytes"):
        load_yaml_file(spec)


def test_size_limit_applies_to_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_yaml, "MAX_BYTES", 64)
    load_yaml_text("a: " + "é" * 30 + "\n")  # 64 bytes: at the limit
    issue = one_issue("a: " + "é" * 31 + "\n")  # 'é' is 2 bytes in UTF-8
    assert issue.message == "file is 66 bytes; the limit for a spec is 64 bytes (MLFLOWKIT_MAX_SPEC_BYTES)"
    assert issue.line == 0


# --- 7. empty and non-mapping specs ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   \n\n", "# just a comment\n# another\n", "~\n", "null\n", "---\n", "--- ~\n"])
def test_empty_spec(parser: str, text: str) -> None:
    issue = one_issue(text)
    assert issue.message == "the spec is empty: expected a mapping with at least 'spec' and 'name'"
    assert (issue.line, issue.col, issue.path) == (1, 1, "")


@pytest.mark.parametrize(
    ("text", "kind", "where"),
    [
        ("- spec: mlflowkit/v1\n", "a list", (1, 1)),
        ("# top\nhello\n", "a string", (2, 1)),
        ("42\n", "a number", (1, 1)),
        ("true\n", "a boolean", (1, 1)),
        ("[a, b]\n", "a list", (1, 1)),
    ],
)
def test_top_level_must_be_a_mapping(parser: str, text: str, kind: str, where: tuple[int, int]) -> None:
    issue = one_issue(text)
    assert issue.message == f"a spec is a mapping of sections; got {kind}"
    assert (issue.line, issue.col) == where


# --- 8. syntax errors ------------------------------------------------------------------------------------------


def test_syntax_error_is_one_located_issue(parser: str) -> None:
    issue = one_issue(f"{HEAD}data: x\n  source: y\n")
    assert issue.message.startswith("invalid YAML: mapping values are not allowed")
    assert (issue.line, issue.col, issue.path) == (4, 9, "")
    assert issue.snippet == "  source: y"
    assert "quoted" in issue.hint


def test_unclosed_bracket(parser: str) -> None:
    issue = one_issue(f"{HEAD}metrics: [accuracy, f1\nregister: x\n")
    assert issue.message.startswith("invalid YAML: ")
    assert "started at line 3, column 10" in issue.message
    assert issue.line == 4
    assert "']'" in issue.hint


def test_bad_indentation(parser: str) -> None:
    issue = one_issue(f"{HEAD}data:\n  source: a.csv\n target: y\n")
    assert issue.message.startswith("invalid YAML: ")
    assert (issue.line, issue.col) == (5, 2)
    assert "indentation" in issue.hint


def test_unclosed_quote(parser: str) -> None:
    issue = one_issue(f"{HEAD}name2: 'abc\nx: 1\n")
    assert "while scanning a quoted scalar started at line 3, column 8" in issue.message
    assert "quote" in issue.hint


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (f"{HEAD}train:\n\testimator: x\n", (4, 1)),
        (f"{HEAD}train:\n  a: 1\n  \tb: 2\n", (5, 3)),
    ],
)
def test_tab_indentation(parser: str, text: str, where: tuple[int, int]) -> None:
    issue = one_issue(text)
    assert issue.message == "a tab character is used for indentation; YAML allows spaces only"
    assert (issue.line, issue.col) == where


def test_tabs_inside_values_are_fine(parser: str) -> None:
    assert load_yaml_text("a: 'x\ty'\nb: |\n  \tindented\n").data == {"a": "x\ty", "b": "\tindented\n"}


def test_second_document(parser: str) -> None:
    issue = one_issue(f"{HEAD}---\nspec: mlflowkit/v1\n")
    assert issue.message == "a spec file holds one YAML document; found a second at line 3"
    assert (issue.line, issue.col) == (3, 1)
    # A leading '---' and a closing '...' are one document.
    assert load_yaml_text(f"---\n{HEAD}...\n").data["name"] == "churn"


def test_control_character(parser: str) -> None:
    issue = one_issue("name: é€\nx: a\x01b\n")
    assert issue.message == "invalid YAML: the control character U+0001 is not allowed"
    assert (issue.line, issue.col) == (2, 5)


def test_not_utf8(tmp_path: pathlib.Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(b"spec: mlflowkit/v1\nname: caf\xe9\n")
    with pytest.raises(SpecError) as info:
        load_yaml_file(spec)
    (issue,) = info.value.issues
    assert issue.message.startswith("the file is not valid UTF-8: byte 0xe9 at offset 28")
    assert (issue.line, issue.col) == (2, 10)
    assert issue.snippet == "name: caf\ufffd"


def test_missing_file(tmp_path: pathlib.Path) -> None:
    with pytest.raises(SpecError, match="cannot read the spec"):
        load_yaml_file(tmp_path / "nope.yaml")


# --- 9. positions ----------------------------------------------------------------------------------------------

NESTED = "train:\n  search:\n    max_depth: [8, 16]\n"


def test_positions_of_values_keys_and_items(parser: str) -> None:
    loaded = load_yaml_text(NESTED, "spec.yaml")
    assert loaded.data == {"train": {"search": {"max_depth": [8, 16]}}}
    assert loaded.values[("train", "search", "max_depth")] == Mark(3, 16)
    assert loaded.keys[("train", "search", "max_depth")] == Mark(3, 5)
    assert loaded.values[("train", "search", "max_depth", 1)] == Mark(3, 20)
    assert loaded.values[()] == Mark(1, 1)


def test_locate_falls_back(parser: str) -> None:
    loaded = load_yaml_text(NESTED)
    assert loaded.locate(("train", "search", "max_depth")) == Mark(3, 16)
    assert loaded.locate(("train", "search", "max_depth"), prefer_key=True) == Mark(3, 5)
    assert loaded.locate(("train", "search", "max_depth", 0), prefer_key=True) == Mark(3, 17)  # no key: value
    # A missing path points at its nearest ancestor that exists (at that ancestor's key).
    assert loaded.locate(("train", "search", "nope")) == loaded.keys[("train", "search")] == Mark(2, 3)
    assert loaded.locate(("train", "search", "max_depth", 7)) == Mark(3, 5)
    assert loaded.locate(("elsewhere", "deep")) == Mark(1, 1)
    assert loaded.locate(()) == Mark(1, 1)


def test_line_text_and_issue(parser: str) -> None:
    loaded = load_yaml_text("a: 1\r\nchecks:\r\n  - {column: x}\r\n  - {column: y}\r\n", "s.yaml")
    assert loaded.line_text(2) == "checks:"
    assert loaded.line_text(0) == loaded.line_text(99) == ""
    issue = loaded.issue(("checks", 1, "column"), "unknown column 'y'", hint="did you mean 'x'?")
    assert issue == SpecIssue(
        message="unknown column 'y'", path="checks[1].column", file="s.yaml", line=4, col=14, hint="did you mean 'x'?"
    )
    assert issue.snippet == "  - {column: y}"
    key_issue = loaded.issue(("checks", 1, "column"), "m", prefer_key=True)
    assert (key_issue.line, key_issue.col) == (4, 6)


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ((), ""),
        (("train",), "train"),
        (("checks", 2, "column"), "checks[2].column"),
        ((0, "a"), "[0].a"),
        (("params", "a.b"), "params['a.b']"),
        (("params", ""), "params['']"),
        (("params", "has space", 1), "params['has space'][1]"),
    ],
)
def test_dotted(path: tuple[str | int, ...], text: str) -> None:
    assert dotted(path) == text


def test_loaded_yaml_is_frozen() -> None:
    loaded = load_yaml_text(HEAD)
    assert isinstance(loaded, LoadedYaml)
    with pytest.raises(AttributeError):
        loaded.file = "x"  # type: ignore[misc]


def test_bom_is_skipped(tmp_path: pathlib.Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(b"\xef\xbb\xbf" + HEAD.encode())
    loaded = load_yaml_file(spec)
    assert loaded.data["spec"] == "mlflowkit/v1"
    assert loaded.keys[("spec",)] == Mark(1, 1)


# --- speed and imports -----------------------------------------------------------------------------------------


def spec_of_200_lines() -> str:
    lines = [HEAD.rstrip("\n"), "recipe: tabular-classification"]
    i = 0
    while len("\n".join(lines).splitlines()) < 200:
        lines += [
            f"step_{i}:",
            "  kind: sklearn  # a comment",
            f"  params: {{n_estimators: {i}, max_depth: [8, 16], on: raw}}",
            "  checks:",
            f"    - {{column: c{i}, min: 0.5}}",
        ]
        i += 1
    return "\n".join("\n".join(lines).splitlines()[:200]) + "\n"


def test_a_200_line_spec_loads_with_every_position() -> None:
    """How fast it loads is measured in bench/validate_latency.py (a timed assertion fails on a loaded machine)."""
    text = spec_of_200_lines()
    assert len(text.splitlines()) == 200
    loaded = load_yaml_text(text)
    last = max((k for k in loaded.data if k.startswith("step_")), key=lambda k: int(k[5:]))
    assert loaded.keys[(last,)].line > 190 and loaded.data[last]["kind"] == "sklearn"


def test_imports_only_stdlib_and_yaml() -> None:
    # The module is run on its own (not through mlflowkit.spec, whose __init__ may import more).
    code = (
        "import sys, importlib.util, mlflowkit.errors; before = set(sys.modules); "
        f"spec = importlib.util.spec_from_file_location('_yaml_alone', {str(REPO / 'mlflowkit/spec/_yaml.py')!r}); "
        "module = importlib.util.module_from_spec(spec); sys.modules['_yaml_alone'] = module; "
        "spec.loader.exec_module(module); "
        "print('\\n'.join(sorted(set(sys.modules) - before - {'_yaml_alone'})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    foreign = [
        m
        for m in out
        if m.split(".")[0] not in sys.stdlib_module_names
        and m.split(".")[0] not in {"yaml", "_yaml", "cython_runtime"}
        and not m.startswith("_cython_")  # the runtime of PyYAML's compiled libyaml binding
    ]
    assert foreign == []


# --- the bad-spec table ----------------------------------------------------------------------------------------

HEADER = re.compile(r"# line: (\d+)\n# path:(?: (.*))?\n# message: (.*)\n?")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_yaml_cases_in_the_bad_spec_table(case: pathlib.Path) -> None:
    header = HEADER.match(case.read_text(encoding="utf-8"))
    assert header, f"{case.name}: bad header"
    line, path, message = int(header[1]), header[2] or "", header[3]
    with pytest.raises(SpecError) as info:
        load_yaml_file(case)
    issue = info.value.issues[0]
    assert (issue.line, issue.path) == (line, path)
    assert message in issue.message
    assert issue.file == os.fspath(case)


def test_the_table_has_the_yaml_cases() -> None:
    names = {c.stem for c in CASES}
    assert {
        "yaml_syntax_indent",
        "yaml_syntax_unclosed_bracket",
        "yaml_tab_indent",
        "yaml_duplicate_key",
        "yaml_python_tag",
        "yaml_custom_tag",
        "yaml_alias_bomb",
        "yaml_empty",
        "yaml_top_level_list",
        "yaml_non_string_key",
        "yaml_merge_key",
        "yaml_second_document",
    } <= names
