"""Safe YAML loading for specs: plain data (YAML 1.2 core scalars) plus the source position of every value.

Refuses anything that is not plain data (tags, merge keys, duplicate keys, alias bombs) with a located SpecIssue.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NoReturn, TypeAlias

import yaml  # type: ignore[import-untyped, unused-ignore]
from yaml.events import (  # type: ignore[import-untyped, unused-ignore]
    AliasEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, ScalarNode, SequenceNode  # type: ignore[import-untyped, unused-ignore]
from yaml.reader import ReaderError  # type: ignore[import-untyped, unused-ignore]
from yaml.resolver import Resolver  # type: ignore[import-untyped, unused-ignore]

from mlflowkit.errors import SpecError, SpecIssue

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "LoadedYaml",
    "Mark",
    "Path",
    "dotted",
    "load_yaml_file",
    "load_yaml_text",
]

MAX_BYTES: int = 1 * 1024 * 1024
"""Largest spec accepted, in bytes; the environment variable MLFLOWKIT_MAX_SPEC_BYTES overrides it."""
MAX_NODES: int = 100_000
"""Most nodes a spec may hold after alias expansion."""
MAX_DEPTH: int = 64
"""Deepest nesting of lists and mappings."""

_ENV_MAX_BYTES = "MLFLOWKIT_MAX_SPEC_BYTES"

Path: TypeAlias = tuple[str | int, ...]


@dataclass(frozen=True)
class Mark:
    """A position in the source: 1-based line and column (columns count characters)."""

    line: int
    col: int


_START = Mark(1, 1)

_T = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = _T + "str", _T + "int", _T + "float", _T + "bool", _T + "null"
_SEQ, _MAP, _MERGE = _T + "seq", _T + "map", _T + "merge"
_KIND = {
    _STR: "a string",
    _INT: "a number",
    _FLOAT: "a number",
    _BOOL: "a boolean",
    _NULL: "null",
    _SEQ: "a list",
    _MAP: "a mapping",
}
_PLAIN_DATA = "a spec is plain data (mappings, lists, strings, numbers, booleans, null)"

# The YAML 1.2 core schema. YAML 1.1 (PyYAML's default) reads `on`, `no`, `NO` as booleans, `12:30` as 750
# and `2024-01-01` as a date, which silently breaks keys like `on:` and values like country codes.
_BOOL_RE = re.compile(r"(?:true|True|TRUE|false|False|FALSE)\Z")
_NULL_RE = re.compile(r"(?:~|null|Null|NULL|)\Z")
_INT_RE = re.compile(r"(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)\Z")
_FLOAT_RE = re.compile(
    r"(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))\Z"
)
_MERGE_RE = re.compile(r"<<\Z")
_TRUE = frozenset(("true", "True", "TRUE"))

# PyYAML's and libyaml's line breaks; splitting the text on the same set keeps snippets in step with marks.
_BREAK_RE = re.compile("\r\n|[\n\r\x85\u2028\u2029]")
_NEEDS_QUOTES = re.compile(r"[.\[\]\s]")


def _core_resolvers() -> dict[Any, list[tuple[str, re.Pattern[str]]]]:
    """A fresh implicit-resolver table (first character -> [(tag, regexp)]); SafeLoader's stays untouched."""
    table: dict[Any, list[tuple[str, re.Pattern[str]]]] = {}
    # Order matters within one first character: the first match wins, so int goes before float.
    for tag, regexp, first in (
        (_BOOL, _BOOL_RE, "tTfF"),
        (_NULL, _NULL_RE, ["~", "n", "N", ""]),
        (_INT, _INT_RE, "-+0123456789"),
        (_FLOAT, _FLOAT_RE, "-+.0123456789"),
        (_MERGE, _MERGE_RE, "<"),
    ):
        for ch in first:
            table.setdefault(ch, []).append((tag, regexp))
    return table


class _Loader(yaml.SafeLoader):  # type: ignore[misc, unused-ignore]  # Any base when types-PyYAML is absent
    """SafeLoader with YAML 1.2 core resolvers. Only its reader, scanner, parser and resolver are used."""

    yaml_implicit_resolvers = _core_resolvers()


_FastLoader: Any = None
try:
    from yaml._yaml import CParser  # type: ignore[import-untyped, unused-ignore]
except ImportError:  # PyYAML built without libyaml: the pure-Python parser does the whole job
    pass
else:

    class _CLoader(CParser, Resolver):  # type: ignore[misc, unused-ignore]  # Any bases without types-PyYAML
        """libyaml's parser (about 10x faster) with the same resolvers; events are composed by `_Composer`."""

        yaml_implicit_resolvers = _Loader.yaml_implicit_resolvers

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Resolver.__init__(self)

    _FastLoader = _CLoader


# --- nodes ---------------------------------------------------------------------------------------------------


class _Scalar:
    __slots__ = ("mark", "tag", "value")

    def __init__(self, tag: str, value: str, mark: Mark) -> None:
        self.tag, self.value, self.mark = tag, value, mark


class _Seq:
    __slots__ = ("items", "mark", "tag")

    def __init__(self, tag: str, mark: Mark) -> None:
        self.tag, self.mark = tag, mark
        self.items: list[_Node] = []


class _Map:
    __slots__ = ("mark", "pairs", "tag")

    def __init__(self, tag: str, mark: Mark) -> None:
        self.tag, self.mark = tag, mark
        self.pairs: list[tuple[_Node, _Node]] = []


class _Alias:
    """One `*name`: kept apart from its target so positions point at the alias, and bombs can be counted."""

    __slots__ = ("mark", "name", "target")

    def __init__(self, name: str, target: _Scalar | _Seq | _Map | None, mark: Mark) -> None:
        self.name, self.target, self.mark = name, target, mark


_Node: TypeAlias = "_Scalar | _Seq | _Map | _Alias"


class _Fatal(Exception):
    """Stops loading at once (a resource limit, a second document); carries the issue to report."""

    def __init__(self, issue: SpecIssue) -> None:
        super().__init__(issue.message)
        self.issue = issue


# --- source text ---------------------------------------------------------------------------------------------


class _Source:
    """The text being loaded; builds issues with a snippet of the line they point at."""

    def __init__(self, text: str, file: str) -> None:
        self.text, self.file = text, file
        self._lines: list[str] | None = None

    def line(self, n: int) -> str:
        if self._lines is None:
            self._lines = _BREAK_RE.split(self.text)
        return self._lines[n - 1] if 1 <= n <= len(self._lines) else ""

    def issue(self, mark: Mark, path: Path, message: str, hint: str = "") -> SpecIssue:
        return SpecIssue(
            message=message,
            path=dotted(path),
            file=self.file,
            line=mark.line,
            col=mark.col,
            hint=hint,
            snippet=self.line(mark.line),
        )


def _mark(m: Any) -> Mark:
    return Mark(m.line + 1, m.column + 1)


def _index_to_mark(text: str, index: int) -> Mark:
    """Mark of a character index, counting line breaks the way the YAML reader does."""
    line, start = 1, 0
    for m in _BREAK_RE.finditer(text, 0, index):
        line, start = line + 1, m.end()
    return Mark(line, index - start + 1)


# --- composing: events -> nodes ------------------------------------------------------------------------------


class _Composer:
    """Builds our own node graph from parser events, resolving tags the YAML 1.2 way.

    PyYAML's Composer is not used: it turns an alias into its target node (losing where the alias is),
    has no depth limit (deep nesting hits RecursionError) and stops at the first undefined alias.
    """

    def __init__(self, loader: Any, src: _Source, issues: list[SpecIssue]) -> None:
        self.loader, self.src, self.issues = loader, src, issues
        self.anchors: dict[str, _Scalar | _Seq | _Map] = {}
        self.max_depth = MAX_DEPTH

    def document(self) -> _Node | None:
        get = self.loader.get_event
        get()  # StreamStart
        if type(get()) is StreamEndEvent:  # else it was DocumentStart
            return None
        root = self.node(get(), 1, ())
        get()  # DocumentEnd
        event = get()
        if type(event) is not StreamEndEvent:
            mark = _mark(event.start_mark)
            raise _Fatal(
                self.src.issue(
                    mark,
                    (),
                    f"a spec file holds one YAML document; found a second at line {mark.line}",
                    hint="remove the '---' line (and what follows it), or split the file in two",
                )
            )
        return root

    def node(self, event: Any, depth: int, path: Path) -> _Node:
        mark = _mark(event.start_mark)
        if depth > self.max_depth + 1:  # the root is depth 1 at path (), so depth - 1 == len(path) for values
            raise _Fatal(_depth_issue(self.src, mark, path, self.max_depth))
        kind = type(event)
        if kind is AliasEvent:
            target = self.anchors.get(event.anchor)
            if target is None:
                name = event.anchor
                self.issues.append(
                    self.src.issue(
                        mark,
                        path,
                        f"alias '*{name}' refers to an anchor '&{name}' that is not defined before it",
                        hint=f"define '&{name}' on a value above this line, or quote the value if '*' is literal",
                    )
                )
            return _Alias(event.anchor, target, mark)
        anchor = event.anchor
        tag = event.tag
        node: _Scalar | _Seq | _Map
        if kind is ScalarEvent:
            if tag is None:
                tag = self.loader.resolve(ScalarNode, event.value, event.implicit)
            elif tag == "!":  # YAML's non-specific tag makes a string; PyYAML would resolve it like a plain scalar
                tag = _STR
            node = _Scalar(tag, event.value, mark)
            self._anchor(anchor, node, path)
            return node
        get = self.loader.get_event
        if kind is SequenceStartEvent:
            if tag is None or tag == "!":
                tag = self.loader.resolve(SequenceNode, None, event.implicit)
            node = _Seq(tag, mark)
            # Anchored before the items, so that a recursive alias finds it (and the walker refuses it).
            self._anchor(anchor, node, path)
            items, i, event = node.items, 0, get()
            while type(event) is not SequenceEndEvent:
                items.append(self.node(event, depth + 1, (*path, i)))
                i, event = i + 1, get()
            return node
        if kind is MappingStartEvent:
            if tag is None or tag == "!":
                tag = self.loader.resolve(MappingNode, None, event.implicit)
            node = _Map(tag, mark)
            self._anchor(anchor, node, path)
            pairs, event = node.pairs, get()
            while type(event) is not MappingEndEvent:
                key = self.node(event, depth + 1, path)
                pairs.append((key, self.node(get(), depth + 1, (*path, _segment(key)))))
                event = get()
            return node
        raise AssertionError(f"unexpected YAML event {event!r}")  # the parser guarantees the event grammar

    def _anchor(self, name: str | None, node: _Scalar | _Seq | _Map, path: Path) -> None:
        if name is None:
            return
        first = self.anchors.get(name)
        if first is not None:
            # YAML lets a later anchor shadow an earlier one; in a spec that is a trap, so say so.
            self.issues.append(
                self.src.issue(
                    node.mark,
                    path,
                    f"anchor '&{name}' is defined twice (first at line {first.mark.line})",
                    hint="give each anchor its own name",
                )
            )
        self.anchors[name] = node


def _segment(key: _Node) -> str | int:
    if isinstance(key, _Alias) and key.target is not None:
        return _segment(key.target)
    if isinstance(key, _Scalar):
        return key.value
    return "?"


def _depth_issue(src: _Source, mark: Mark, path: Path, limit: int) -> SpecIssue:
    return src.issue(
        mark,
        path,
        f"nesting deeper than {limit} levels (limit MAX_DEPTH={limit})",
        hint="a spec needs only a few levels; is a list or mapping nested by mistake?",
    )


# --- walking: nodes -> plain data ----------------------------------------------------------------------------


class _Walker:
    """Turns the node graph into plain values, recording positions and collecting every issue it meets."""

    def __init__(self, src: _Source) -> None:
        self.src = src
        self.values: dict[Path, Mark] = {}
        self.keys: dict[Path, Mark] = {}
        self.issues: list[SpecIssue] = []
        self.count = 0
        self.max_nodes, self.max_depth = MAX_NODES, MAX_DEPTH
        self.active: set[int] = set()  # ids of the collections being walked: an alias to one of them recurses
        self.alias_entry: tuple[Mark, Path] | None = None  # the outermost alias being expanded

    def value(self, node: _Node, path: Path) -> Any:
        self.count += 1
        if self.count > self.max_nodes:
            self._too_many(node.mark, path)
        if len(path) > self.max_depth:
            raise _Fatal(_depth_issue(self.src, node.mark, path, self.max_depth))
        self.values[path] = node.mark
        if isinstance(node, _Alias):
            return self._alias(node, path)
        return self._build(node, path)

    def _alias(self, alias: _Alias, path: Path) -> Any:
        target = alias.target
        if target is None:  # undefined; the composer already reported it
            return None
        if id(target) in self.active:
            self.issues.append(
                self.src.issue(
                    alias.mark,
                    path,
                    f"recursive alias '*{alias.name}'",
                    hint=f"'*{alias.name}' sits inside the value it names; a value cannot contain itself",
                )
            )
            return None
        outermost = self.alias_entry is None
        if outermost:
            self.alias_entry = (alias.mark, path)
        # Walked again for every alias, on purpose: that is what the data will hold, and what MAX_NODES counts.
        result = self._build(target, path)
        if outermost:
            self.alias_entry = None
        return result

    def _build(self, node: _Scalar | _Seq | _Map, path: Path) -> Any:
        if isinstance(node, _Scalar):
            return self._scalar(node, path)
        if isinstance(node, _Seq):
            if node.tag != _SEQ:
                return self._bad_tag(node.tag, node.mark, path, "a list")
            self.active.add(id(node))
            items = [self.value(item, (*path, i)) for i, item in enumerate(node.items)]
            self.active.discard(id(node))
            return items
        if node.tag != _MAP:
            return self._bad_tag(node.tag, node.mark, path, "a mapping")
        self.active.add(id(node))
        result: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.pairs:
            key = self._key(key_node, path)
            if key is None:
                continue
            if key in first_line:
                self.issues.append(
                    self.src.issue(
                        key_node.mark,
                        path,
                        f"duplicate key {key!r} (first defined at line {first_line[key]})",
                        hint="a key may appear once in a mapping; remove or rename one of them",
                    )
                )
                continue
            first_line[key] = key_node.mark.line
            key_path = (*path, key)
            self.keys[key_path] = key_node.mark
            result[key] = self.value(value_node, key_path)
        self.active.discard(id(node))
        return result

    def _key(self, node: _Node, path: Path) -> str | None:
        """The key as a string, or None after recording why it cannot be one."""
        self.count += 1
        mark = node.mark
        target = node.target if isinstance(node, _Alias) else node
        if target is None:
            return None
        tag = target.tag
        if isinstance(target, _Scalar):
            if tag == _STR:
                return target.value
            if tag == _MERGE:
                self.issues.append(
                    self.src.issue(
                        mark,
                        path,
                        "merge keys ('<<') are not supported: they hide where a value came from",
                        hint="write the keys out; an alias for a whole value (params: *defaults) is fine",
                    )
                )
                return None
            if tag in (_INT, _FLOAT, _BOOL, _NULL):
                text = target.value
                shown = f" ({text})" if text and text != "null" else ""
                hint = f"quote it: '{text}'" if text else "give the key a name"
                message = f"a key must be a string; got {_KIND[tag]}{shown}"
                self.issues.append(self.src.issue(mark, path, message, hint))
                return None
        elif tag in (_SEQ, _MAP):
            self.issues.append(
                self.src.issue(
                    mark,
                    path,
                    f"a key must be a string; got {_KIND[tag]}",
                    hint="keys are names such as 'params'; did a '[' or '{' end up before a ':'?",
                )
            )
            return None
        kind = "a scalar" if isinstance(target, _Scalar) else "a list" if isinstance(target, _Seq) else "a mapping"
        self._bad_tag(tag, mark, path, kind)
        return None

    def _scalar(self, node: _Scalar, path: Path) -> Any:
        tag, text = node.tag, node.value
        if tag == _STR:
            return text
        reader = _SCALAR_READERS.get(tag)
        if reader is None:
            return self._bad_tag(tag, node.mark, path, "a scalar")
        regexp, convert = reader
        if not regexp.match(text):  # only an explicit tag (`!!int abc`) gets here
            message = f"{text!r} is not a valid {_short_tag(tag)} value"
            self.issues.append(self.src.issue(node.mark, path, message, hint="remove the tag, or fix the value"))
            return None
        try:
            return convert(text)
        except ValueError as exc:  # an int with more digits than Python converts
            self.issues.append(self.src.issue(node.mark, path, f"cannot read {text[:40]!r} as a number: {exc}"))
            return None

    def _bad_tag(self, tag: str, mark: Mark, path: Path, on: str) -> None:
        short = _short_tag(tag)
        if tag in _KIND:
            message = f"tag '{short}' cannot be used on {on}"
            hint = "remove the tag"
        else:
            message = f"tag '{short}' is not allowed: {_PLAIN_DATA}"
            hint = "remove the tag; mlflowkit never builds objects from YAML tags"
            if tag == _MERGE:
                hint = "merge keys are not supported; write the keys out"
        self.issues.append(self.src.issue(mark, path, message, hint=hint))

    def _too_many(self, mark: Mark, path: Path) -> NoReturn:
        limit = self.max_nodes
        if self.alias_entry is not None:
            mark, path = self.alias_entry
            message = f"aliases expand to more than {limit} nodes (limit MAX_NODES={limit}); refusing a possible alias bomb"
            hint = "each alias copies its anchor's whole value; nested aliases multiply"
        else:
            message = f"the spec has more than {limit} nodes (limit MAX_NODES={limit})"
            hint = ""
        raise _Fatal(self.src.issue(mark, path, message, hint=hint))


def _int(text: str) -> int:
    if text.startswith(("0x", "0o")):
        return int(text[2:], 16 if text[1] == "x" else 8)
    return int(text)


def _float(text: str) -> float:
    # Python's float() reads "inf" and "nan" but not YAML's ".inf" and ".nan".
    return float(text.replace(".", "") if text[-1] in "fFnN" else text)


def _null(text: str) -> None:
    return None


_SCALAR_READERS: dict[str, tuple[re.Pattern[str], Callable[[str], Any]]] = {
    _INT: (_INT_RE, _int),
    _FLOAT: (_FLOAT_RE, _float),
    _BOOL: (_BOOL_RE, _TRUE.__contains__),
    _NULL: (_NULL_RE, _null),
}


def _short_tag(tag: str) -> str:
    if tag.startswith(_T):
        return "!!" + tag[len(_T) :]
    return tag if tag.startswith("!") else f"!<{tag}>"


# --- syntax errors -------------------------------------------------------------------------------------------


def _error_mark(err: Exception, text: str, from_libyaml: bool) -> Mark:
    if isinstance(err, ReaderError):
        index = err.position
        if from_libyaml:  # libyaml counts bytes of the UTF-8 encoding, PyYAML counts characters
            index = len(text.encode("utf-8", "surrogatepass")[:index].decode("utf-8", "ignore"))
        return _index_to_mark(text, index)
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        if mark is not None:
            return _mark(mark)
    return Mark(0, 0)


def _syntax_issue(err: Exception, mark: Mark, src: _Source) -> SpecIssue:
    line_text = src.line(mark.line)
    indent = len(line_text) - len(line_text.lstrip(" \t"))
    if "\t" in line_text[:indent] and mark.col - 1 <= indent:
        tab = Mark(mark.line, line_text.index("\t") + 1)
        return src.issue(
            tab,
            (),
            "a tab character is used for indentation; YAML allows spaces only",
            hint="replace the tab with spaces",
        )
    if 0 < mark.col <= len(line_text) and line_text[mark.col - 1] == "\t":
        message = "invalid YAML: a tab character cannot be used here; YAML allows spaces only"
        return src.issue(mark, (), message, hint="use spaces")
    if isinstance(err, ReaderError):
        return src.issue(
            mark,
            (),
            f"invalid YAML: the control character U+{err.character:04X} is not allowed",
            hint="remove it; YAML text holds printable characters, tabs and line breaks only",
        )
    problem = getattr(err, "problem", None) or getattr(err, "context", None) or str(err)
    context: str = getattr(err, "context", None) or ""
    context_mark = getattr(err, "context_mark", None)
    message = f"invalid YAML: {problem}"
    if context and context != problem and context_mark is not None:
        message += f" ({context} started at line {context_mark.line + 1}, column {context_mark.column + 1})"
    return src.issue(mark, (), message, hint=_syntax_hint(problem, context))


def _syntax_hint(problem: str, context: str) -> str:
    if "flow sequence" in context:
        return "is a closing ']' or a ',' missing?"
    if "flow mapping" in context:
        return "is a closing '}' or a ',' missing?"
    if "quoted scalar" in context:
        return "is a closing quote missing?"
    if "mapping values are not allowed" in problem:
        return "a value that contains ': ' must be quoted; otherwise, check this line's indentation"
    if "block end" in problem or "expected key" in problem or "block" in context:
        return "check the indentation: the keys of one mapping must start in the same column"
    return ""


# --- loading -------------------------------------------------------------------------------------------------


def _compose(loader_cls: Any, src: _Source, issues: list[SpecIssue]) -> _Node | None:
    del issues[:]  # a failed first attempt leaves its issues behind
    loader = loader_cls(src.text)
    try:
        return _Composer(loader, src, issues).document()
    finally:
        loader.dispose()


def _parse(src: _Source, issues: list[SpecIssue]) -> _Node | None:
    """Compose with libyaml when present, and with PyYAML's own parser otherwise or when libyaml fails.

    On bad YAML the two parsers may stop at different places (PyYAML rejects some tabs libyaml accepts).
    The one that read further is reported: everything before its stop point was valid to both.
    """
    if _FastLoader is None:
        try:
            return _compose(_Loader, src, issues)
        except yaml.YAMLError as err:
            raise SpecError([_syntax_issue(err, _error_mark(err, src.text, False), src)]) from err
    try:
        return _compose(_FastLoader, src, issues)
    # libyaml encodes the text to UTF-8 first, which fails on lone surrogates; PyYAML reports those properly.
    except (yaml.YAMLError, UnicodeEncodeError) as fast_err:
        error: Exception = fast_err
        mark = _error_mark(fast_err, src.text, True)
    try:
        return _compose(_Loader, src, issues)
    except yaml.YAMLError as slow_err:
        slow_mark = _error_mark(slow_err, src.text, False)
        if (slow_mark.line, slow_mark.col) >= (mark.line, mark.col):
            error, mark = slow_err, slow_mark
    raise SpecError([_syntax_issue(error, mark, src)]) from error


_EMPTY = "the spec is empty: expected a mapping with at least 'spec' and 'name'"
_START_HINT = "a spec starts like:  spec: mlflowkit/v1  /  name: my-model"


def _load(text: str, file: str) -> LoadedYaml:
    src = _Source(text, file)
    issues: list[SpecIssue] = []
    walker = _Walker(src)
    try:
        root = _parse(src, issues)
        while isinstance(root, _Alias):  # only an undefined alias can stand at the top; already reported
            root = root.target
        if root is None or (isinstance(root, _Scalar) and root.tag == _NULL and _NULL_RE.match(root.value)):
            raise SpecError(issues or [src.issue(_START, (), _EMPTY, hint=_START_HINT)])
        data = None
        if isinstance(root, _Map) or root.tag not in _KIND:
            data = walker.value(root, ())  # a mapping, or something whose tag the walker reports
        else:
            message = f"a spec is a mapping of sections; got {_KIND[root.tag]}"
            issues.append(src.issue(root.mark, (), message, hint=_START_HINT))
    except _Fatal as fatal:
        raise SpecError(_ordered([*issues, *walker.issues, fatal.issue])) from None
    issues = _ordered([*issues, *walker.issues])
    if issues:
        raise SpecError(issues)
    return LoadedYaml(data=data, file=file, text=text, values=walker.values, keys=walker.keys)


def _ordered(issues: list[SpecIssue]) -> list[SpecIssue]:
    """Issues in source order, each once (an alias walks its target again and would repeat its issues)."""
    seen: set[tuple[int, int, str]] = set()
    unique = []
    for issue in issues:
        key = (issue.line, issue.col, issue.message)
        if key not in seen:
            seen.add(key)
            unique.append(issue)
    return sorted(unique, key=lambda i: (i.line, i.col))


def _max_bytes(file: str) -> int:
    raw = os.environ.get(_ENV_MAX_BYTES, "").strip()
    if not raw:
        return MAX_BYTES
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if limit <= 0:
        message = f"{_ENV_MAX_BYTES} must be a positive number of bytes; got {raw!r}"
        raise SpecError([SpecIssue(message, file=file)])
    return limit


def _size_issue(size: int, limit: int, file: str) -> SpecError:
    shown, shown_limit = _human(size), _human(limit)
    if shown == shown_limit:  # 1.0 MiB against 1.0 MiB says nothing: show the bytes
        shown, shown_limit = f"{size} bytes", f"{limit} bytes"
    return SpecError(
        [
            SpecIssue(
                f"file is {shown}; the limit for a spec is {shown_limit} ({_ENV_MAX_BYTES})",
                file=file,
                hint=f"is this really a spec? if so, set {_ENV_MAX_BYTES} to a larger number of bytes",
            )
        ]
    )


def _human(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MiB"
    if n >= 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n} bytes"


def load_yaml_text(text: str, file: str = "<string>") -> LoadedYaml:
    """Load a spec from YAML text.

    Args:
        text: the YAML source.
        file: the name to show in issues.

    Returns:
        The plain data with the position of every value and key.

    Raises:
        SpecError: the text is too large, is not valid YAML, or is not plain data with string keys.
    """
    limit = _max_bytes(file)
    if len(text) * 4 > limit:  # at most 4 bytes a character: only long texts need encoding to be measured
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > limit:
            raise _size_issue(size, limit, file)
    return _load(text.removeprefix("\ufeff"), file)


def load_yaml_file(path: str | os.PathLike[str], display: str | None = None) -> LoadedYaml:
    """Load a spec from a UTF-8 YAML file, refusing an oversized file before reading it.

    Args:
        path: the file to read.
        display: the name to show in issues; defaults to ``path``.

    Returns:
        The plain data with the position of every value and key.

    Raises:
        SpecError: the file cannot be read, is too large, is not UTF-8, is not valid YAML,
            or is not plain data with string keys.
    """
    file = display if display is not None else os.fspath(path)
    limit = _max_bytes(file)
    try:
        size = os.stat(path).st_size
        if size > limit:
            raise _size_issue(size, limit, file)
        with open(path, "rb") as f:
            raw = f.read(limit + 1)  # a pipe or a growing file may hold more than stat said
    except OSError as exc:
        raise SpecError([SpecIssue(f"cannot read the spec: {exc.strerror or exc}", file=file)]) from exc
    if len(raw) > limit:
        raise _size_issue(max(size, len(raw)), limit, file)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError([_decode_issue(raw, exc, file)]) from exc
    return _load(text.removeprefix("\ufeff"), file)


def _decode_issue(raw: bytes, exc: UnicodeDecodeError, file: str) -> SpecIssue:
    start = raw.rfind(b"\n", 0, exc.start) + 1
    end = raw.find(b"\n", exc.start)
    line_bytes = raw[start : end if end >= 0 else len(raw)]
    return SpecIssue(
        f"the file is not valid UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start} ({exc.reason})",
        file=file,
        line=raw.count(b"\n", 0, exc.start) + 1,
        col=len(raw[start : exc.start].decode("utf-8", "replace")) + 1,
        hint="save the spec as UTF-8",
        snippet=line_bytes.decode("utf-8", "replace").rstrip("\r"),
    )


# --- the result ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedYaml:
    """A loaded spec: plain data, and where each value and key stands in the source.

    Attributes:
        data: plain Python values (dict, list, str, int, float, bool, None).
        file: the file's display name.
        text: the full source text.
        values: path -> where the value node starts (an alias's value starts at the alias).
        keys: path -> where the key of that mapping entry starts.
    """

    data: Any
    file: str
    text: str
    values: Mapping[Path, Mark]
    keys: Mapping[Path, Mark]

    @cached_property
    def _lines(self) -> list[str]:
        return _BREAK_RE.split(self.text)

    def locate(self, path: Path, *, prefer_key: bool = False) -> Mark:
        """Where a path is in the source, falling back to what exists.

        Args:
            path: a path into ``data``; it need not exist (a missing field, say).
            prefer_key: point at the key of a mapping entry rather than at its value.

        Returns:
            The value's position (or the key's, with ``prefer_key``); else the key's; else the position of the
            nearest ancestor that exists (its key when it has one, so a missing field points at its section);
            else line 1, column 1.
        """
        if prefer_key and path in self.keys:
            return self.keys[path]
        mark = self.values.get(path) or self.keys.get(path)
        if mark is not None:
            return mark
        for n in range(len(path) - 1, -1, -1):
            ancestor = path[:n]
            mark = self.keys.get(ancestor) or self.values.get(ancestor)
            if mark is not None:
                return mark
        return _START

    def line_text(self, line: int) -> str:
        """The source line ``line`` (1-based) without its line break; "" when out of range."""
        lines = self._lines
        return lines[line - 1] if 1 <= line <= len(lines) else ""

    def issue(self, path: Path, message: str, *, hint: str = "", prefer_key: bool = False) -> SpecIssue:
        """A SpecIssue about ``path``, located with :meth:`locate` and carrying its source line.

        Args:
            path: what the issue is about.
            message: what is wrong.
            hint: an optional suggestion.
            prefer_key: point at the key rather than the value.

        Returns:
            The issue, ready to be raised in a SpecError.
        """
        mark = self.locate(path, prefer_key=prefer_key)
        return SpecIssue(
            message=message,
            path=dotted(path),
            file=self.file,
            line=mark.line,
            col=mark.col,
            hint=hint,
            snippet=self.line_text(mark.line),
        )


def dotted(path: Path) -> str:
    """Render a path the way issues show it.

    Args:
        path: a path such as ``("checks", 2, "column")``.

    Returns:
        ``checks[2].column``; ``""`` for the root. A key holding ``.``, ``[``, ``]`` or spaces, or an empty
        key, is shown quoted in brackets (``params['a.b']``) so the path stays unambiguous.
    """
    parts: list[str] = []
    for seg in path:
        if isinstance(seg, int):
            parts.append(f"[{seg}]")
        elif seg and not _NEEDS_QUOTES.search(seg):
            parts.append(f".{seg}" if parts else seg)
        else:
            parts.append(f"[{seg!r}]")
    return "".join(parts)
