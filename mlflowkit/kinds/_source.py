"""A data source before it is read: where it is, whether it is a readable file, and its header's columns.

Validate and the load step both ask :func:`source_problem` first, so that a folder, a device such as
``/dev/zero`` or a missing file is a one-line error instead of a traceback or a hang. :func:`header_of`
reads the header only: the first line of a CSV (no pandas), or a Parquet file's schema.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
import os
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import IO, Any
from urllib.parse import urlsplit

__all__ = ["HEADER_LIMIT", "SKIP_HINT", "SourceProblem", "header_of", "resolve_source", "source_problem"]

HEADER_LIMIT = 1 << 20  # a CSV header longer than 1 MiB is not a header
# Reader options whose effect on the header is known; with any other one (names, usecols, header, ...) the
# columns are not told from the first line.
_CSV_OPTIONS = frozenset({"sep", "delimiter", "encoding", "compression"})
_OPENERS: dict[str, Callable[[IO[bytes]], io.BufferedIOBase]] = {
    ".gz": lambda fh: gzip.GzipFile(fileobj=fh),
    ".bz2": bz2.BZ2File,
    ".xz": lzma.LZMAFile,
}


@dataclass(frozen=True)
class SourceProblem(Exception):
    """Why a data source cannot be read, and what to do about it."""

    message: str
    hint: str = ""
    missing: bool = False

    def __str__(self) -> str:
        return self.message


def resolve_source(spec_dir: str, source: str) -> str:
    """A path relative to the spec's folder made absolute; a URI or an absolute path as it is."""
    if "://" in source or os.path.isabs(source):
        return source
    return os.path.join(spec_dir, source)


def _is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def _local(uri: str) -> str:
    return uri.removeprefix("file://")


SKIP_HINT = "or validate with --no-data-check when the data exists only where the run happens"


def source_problem(uri: str) -> SourceProblem | None:
    """What keeps ``uri`` from being read as a table, or None: missing, a folder, not a regular file, empty, unreadable."""
    return _local_problem(_local(uri)) if _is_local(uri) else _remote_problem(uri)


def _local_problem(path: str) -> SourceProblem | None:  # noqa: PLR0911 - one return per way a path is not a data file
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return SourceProblem(f"no file at {path}", "check the path (relative to the spec's folder)", missing=True)
    except OSError as exc:
        return SourceProblem(f"cannot reach {path}: {exc.strerror or exc}", "check the path and its permissions")
    if stat.S_ISDIR(info.st_mode):
        return SourceProblem(f"{path} is a folder, not a file", "name a CSV or Parquet file in it")
    if not stat.S_ISREG(info.st_mode):
        what = "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else "not a regular file"
        return SourceProblem(f"{path} is {what}, not a data file", "name a CSV or Parquet file")
    if info.st_size == 0:
        return SourceProblem(f"{path} is empty", "a table needs a header line and rows")
    if not os.access(path, os.R_OK):
        return SourceProblem(f"{path} is not readable by this user", "check its permissions")
    return None


def _remote_problem(uri: str) -> SourceProblem | None:
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(uri)
        info = fs.info(path)
    except FileNotFoundError as exc:
        return _not_found(uri, exc)
    except ImportError as exc:
        return SourceProblem(f"cannot open {uri}: {exc}", "install the filesystem's package, e.g. pip install 'mlflowkit[s3]'")
    except Exception as exc:  # credentials, network, a bad bucket name: fsspec backends raise anything
        return SourceProblem(f"cannot reach {uri}: {type(exc).__name__}: {exc}", "check the URI and credentials", missing=True)
    if info.get("type") == "directory":
        return SourceProblem(f"{uri} is a folder, not a file", "name a CSV or Parquet file in it")
    if info.get("size") == 0:
        return SourceProblem(f"{uri} is empty", "a table needs a header line and rows")
    return None


def _not_found(uri: str, exc: FileNotFoundError) -> SourceProblem:
    """No object at ``uri``; or, when a connection error is behind it, the host that cannot be reached.

    fsspec's HTTP filesystem raises FileNotFoundError for a host it cannot connect to (offline, a closed port).
    """
    why = _unreachable(exc)
    if why is None:
        return SourceProblem(f"no object at {uri}", "check the URI", missing=True)
    host = urlsplit(uri).netloc.rsplit("@", 1)[-1]
    return SourceProblem(f"cannot reach host {host} ({why}) for {uri}", "check the network and the host", missing=True)


def _unreachable(exc: BaseException) -> str | None:
    """Why the host could not be connected to, when a connection error is behind ``exc``; else None."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, socket.gaierror):
            return "its name does not resolve"
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
        if isinstance(e, ConnectionError | TimeoutError):
            return e.strerror or type(e).__name__
        os_error = getattr(e, "os_error", None)  # aiohttp's ClientConnectorError keeps the socket's error here
        todo += [e.__cause__, e.__context__, os_error if isinstance(os_error, BaseException) else None]
    return None


def header_of(uri: str, fmt: str = "auto", read_options: dict[str, Any] | None = None) -> list[str] | None:
    """The column names of the table at ``uri``, reading its header only; None when they cannot be told.

    Raises:
        SourceProblem: the source is not readable as the format says (binary data in a CSV, not Parquet, ...).
    """
    options = dict(read_options or {})
    if fmt == "auto":
        fmt = "parquet" if uri.endswith((".parquet", ".pq")) else "csv"
    if _is_local(uri):
        try:
            info = os.stat(_local(uri))
        except OSError:
            return None
        return _cached_header(uri, fmt, tuple(sorted((k, repr(v)) for k, v in options.items())), info.st_mtime_ns, info.st_size)
    return _header(uri, fmt, options)


@lru_cache(maxsize=32)
def _cached_header(uri: str, fmt: str, options: tuple[tuple[str, str], ...], mtime: int, size: int) -> list[str] | None:
    import ast

    return _header(uri, fmt, {k: ast.literal_eval(v) for k, v in options})


def _header(uri: str, fmt: str, options: dict[str, Any]) -> list[str] | None:
    if source_problem(uri) is not None:
        return None
    if fmt == "parquet":
        return _parquet_header(uri)
    if set(options) - _CSV_OPTIONS or options.get("sep", ",") is None:
        return None  # the reader options decide the header in ways a first line does not show
    return _csv_header(uri, options)


def _open(uri: str) -> IO[bytes]:
    if _is_local(uri):
        return open(_local(uri), "rb")
    import fsspec

    return fsspec.open(uri, "rb").open()  # type: ignore[no-any-return]


def _csv_header(uri: str, options: dict[str, Any]) -> list[str] | None:
    compression = options.get("compression", "infer")
    suffix = os.path.splitext(uri)[1].lower() if compression == "infer" else f".{compression}" if compression else ""
    if suffix in {".zip", ".zst", ".tar"}:
        return None  # pandas reads these; the first line is not worth a reader of its own here
    encoding = str(options.get("encoding") or "utf-8")
    with _open(uri) as raw:
        stream: IO[bytes] | io.BufferedIOBase = _OPENERS[suffix](raw) if suffix in _OPENERS else raw
        try:
            chunk = stream.read(HEADER_LIMIT)
        except (OSError, EOFError, lzma.LZMAError) as exc:
            raise SourceProblem(f"{uri} cannot be decompressed: {exc}", "check the file") from None
    if b"\x00" in chunk:
        raise SourceProblem(f"{uri} holds binary data, not CSV text", "name a CSV file, or set format: parquet for Parquet")
    if b"\n" not in chunk and len(chunk) >= HEADER_LIMIT:
        raise SourceProblem(f"the first line of {uri} is longer than 1 MiB: not a CSV header", "check the file")
    try:
        text = chunk.decode("utf-8-sig" if encoding.lower().replace("_", "-") in {"utf-8", "utf8"} else encoding)
    except UnicodeDecodeError as exc:
        if exc.start < len(chunk) - 4:  # a cut in the middle of the last character is not an error
            message = f"{uri} is not {encoding} text: {exc.reason} at byte {exc.start}"
            raise SourceProblem(message, "set read_options.encoding") from None
        text = chunk[: exc.start].decode(encoding, errors="ignore")
    except LookupError:
        raise SourceProblem(f"unknown encoding {encoding!r}", "set read_options.encoding to a Python codec name") from None
    delimiter = str(options.get("sep", options.get("delimiter", ",")))
    if len(delimiter) != 1:
        return None  # a regular expression separator: pandas' python engine
    row = next(csv.reader(io.StringIO(text), delimiter=delimiter), None)
    if not row:
        raise SourceProblem(f"{uri} has no header line", "the first line must name the columns")
    return _as_pandas_names(row)


def _as_pandas_names(row: list[str]) -> list[str]:
    """Header cells as pandas names them: an empty cell is ``Unnamed: i``, a repeated name gets ``.1``, ``.2``."""
    names: list[str] = []
    seen: dict[str, int] = {}
    for i, cell in enumerate(row):
        name = cell if cell != "" else f"Unnamed: {i}"
        if name in seen:
            seen[name] += 1
            name = f"{name}.{seen[name]}"
        else:
            seen[name] = 0
        names.append(name)
    return names


def _parquet_header(uri: str) -> list[str] | None:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return None  # validate without the [run] extra: the columns are checked when the data is loaded
    try:
        with _open(uri) as fh:
            schema = pq.read_schema(fh)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for a file that is not Parquet
        raise SourceProblem(f"{uri} is not a Parquet file: {exc}", "check the file, or set format: csv") from None
    index = set()
    meta = schema.pandas_metadata or {}
    for column in meta.get("index_columns", []):
        if isinstance(column, str):
            index.add(column)
    return [name for name in schema.names if name not in index]
