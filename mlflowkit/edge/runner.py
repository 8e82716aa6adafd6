"""The edge runner: loads an installed bundle and answers predictions from JSON-like inputs (numpy + ONNX Runtime).

Inputs are checked against the bundle's contract before the model sees them: every field is named
(missing and unknown fields are reported), each value has the contract's type, every column has one
value per row, and missing values (null, NaN) follow the contract's NaN policy. All problems are
reported at once, as :class:`~mlflowkit.edge.errors.InputError`.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflowkit.edge.bundle import CONTRACT, MODEL, check_requirements, sha256_file, verify_bundle
from mlflowkit.edge.errors import BundleRefused, EdgeError, InputError

if TYPE_CHECKING:
    import numpy as np
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = ["DEFAULT_MAX_ROWS", "Runner", "bundle_files", "verify_installed"]

DEFAULT_MAX_ROWS = 100_000
_MAX_ISSUES = 20  # a request with a million bad values gets the first few, and a count
_NUMERIC = ("float32", "float64")
_INTEGER = ("int64", "int32")
_ABSENT = object()  # a record's missing field: reported once, as a name, not again as a missing value


def bundle_files(folder: Path) -> list[str]:
    """Every file under ``folder``, as relative POSIX paths."""
    out = []
    for dirpath, _, filenames in os.walk(folder):
        for filename in filenames:
            out.append(Path(dirpath, filename).relative_to(folder).as_posix())
    return sorted(out)


def verify_installed(folder: Path, public_key: Ed25519PublicKey | None = None, **expect: Any) -> dict[str, Any]:
    """Verify a bundle folder on this device (see :func:`~mlflowkit.edge.bundle.verify_bundle`); its manifest."""
    return verify_bundle(
        bundle_files(folder),
        lambda n: (folder / n).read_bytes(),
        lambda n: sha256_file(str(folder / n)),
        public_key,
        **expect,
    )


class _Issues:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.count = 0

    def add(self, field: str, code: str, message: str) -> None:
        self.count += 1
        if len(self.items) < _MAX_ISSUES:
            self.items.append({"field": field, "code": code, "message": f"{field}: {message}" if field else message})

    def raise_if_any(self) -> None:
        if self.count:
            if self.count > len(self.items):
                self.items.append({"field": "", "code": "more", "message": f"... and {self.count - len(self.items)} more"})
            raise InputError(self.items)


class Runner:
    """One loaded bundle: its manifest, contract and ONNX Runtime session.

    Attributes:
        folder: the bundle folder it was loaded from (resolved).
        manifest: the bundle's manifest.
        contract: the bundle's contract.json.
        name: the model's name.
        version: the bundle's version.
    """

    def __init__(
        self,
        folder: Path,
        *,
        public_key: Ed25519PublicKey | None = None,
        threads: int = 1,
        max_rows: int = DEFAULT_MAX_ROWS,
        requirements: bool = True,
    ) -> None:
        """Verify (files against the manifest; signature too with ``public_key``), check requirements, load.

        Raises:
            BundleRefused: the bundle fails verification or its requirements (nothing was loaded).
            EdgeError: ONNX Runtime could not load the model.
        """
        import numpy as np
        import onnxruntime as ort

        self.folder = folder.resolve()
        self.manifest = verify_installed(self.folder, public_key)
        if requirements:  # off only for the publisher's smoke test: its runtime is not the fleet's
            check_requirements(self.manifest)  # before ONNX Runtime sees the model
        try:
            self.contract: dict[str, Any] = json.loads((self.folder / CONTRACT).read_bytes())
        except ValueError as exc:
            raise BundleRefused("malformed", f"{CONTRACT}: {exc}") from None
        self.name = str(self.manifest["name"])
        self.version = int(self.manifest["version"])
        self.max_rows = max_rows
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.folder / MODEL), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types
            raise EdgeError(f"ONNX Runtime could not load {self.folder / MODEL}: {exc}") from exc
        self._outputs = [o.name for o in self.session.get_outputs()]
        self._inputs: list[dict[str, Any]] = list(self.contract["inputs"])
        self._layout = self.contract.get("layout", "columns")
        self._features: list[str] = list(self.contract.get("features", []))
        policy = self.contract.get("input_policy") or {}
        self.nan_policy: str = str(policy.get("nan", "reject"))
        self._classes = list(self.contract.get("classes") or [])
        self._np = np

    # ------------------------------------------------------------------ inputs

    def _columns(self, payload: Any, issues: _Issues) -> dict[str, list[Any]] | None:
        """The request as columns (feature -> values), from any accepted shape; None when it has none."""
        if isinstance(payload, dict) and "inputs" in payload:
            extra = sorted(set(payload) - {"inputs"})
            if extra:
                issues.add("", "unknown_field", f'unknown top-level field(s) {", ".join(extra)}; send {{"inputs": ...}}')
            payload = payload["inputs"]
            if isinstance(payload, dict):
                return self._columnar(payload, issues)
        elif isinstance(payload, dict) and "records" in payload:
            payload = payload["records"]
        elif isinstance(payload, dict):
            payload = [payload]  # one record
        if not isinstance(payload, list):
            issues.add("inputs", "type", f"expected an object of columns or a list of records, got {_kind(payload)}")
            return None
        return self._records(payload, issues)

    def _expected(self) -> list[str]:
        if self._layout == "matrix":
            return self._features
        return [t.get("column") or t["name"] for t in self._inputs]

    def _columnar(self, columns: dict[str, Any], issues: _Issues) -> dict[str, list[Any]] | None:
        expected = self._expected()
        if self._layout == "matrix" and set(columns) == {self._inputs[0]["name"]} and self._inputs[0]["name"] not in expected:
            return self._matrix(columns[self._inputs[0]["name"]], issues)
        self._names(set(columns), expected, "inputs", issues)
        out: dict[str, list[Any]] = {}
        lengths: dict[str, int] = {}
        for name in expected:
            if name not in columns:
                continue
            values = columns[name]
            if not isinstance(values, list):
                issues.add(f"inputs.{name}", "shape", f"expected a list with one value per row, got {_kind(values)}")
                continue
            out[name] = values
            lengths[name] = len(values)
        if len(set(lengths.values())) > 1:
            sizes = ", ".join(f"{n}: {k}" for n, k in lengths.items())
            issues.add("inputs", "shape", f"every column needs the same number of rows; got {sizes}")
        return out

    def _records(self, records: list[Any], issues: _Issues) -> dict[str, list[Any]] | None:
        expected = self._expected()
        out: dict[str, list[Any]] = {name: [] for name in expected}
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                issues.add(f"records[{i}]", "type", f"expected an object of field values, got {_kind(record)}")
                continue
            self._names(set(record), expected, f"records[{i}]", issues)
            for name in expected:
                out[name].append(record.get(name, _ABSENT))
        return out

    @staticmethod
    def _names(given: set[str], expected: list[str], where: str, issues: _Issues) -> None:
        missing = [n for n in expected if n not in given]
        extra = sorted(given - set(expected))
        if missing:
            issues.add(where, "missing_field", f"missing field(s) {', '.join(missing)} (the model needs {', '.join(expected)})")
        if extra:
            issues.add(where, "unknown_field", f"unknown field(s) {', '.join(extra)} (the model takes {', '.join(expected)})")

    def _matrix(self, rows: Any, issues: _Issues) -> dict[str, list[Any]] | None:
        width = len(self._features)
        name = self._inputs[0]["name"]
        if not isinstance(rows, list) or any(not isinstance(r, list) or len(r) != width for r in rows):
            issues.add(f"inputs.{name}", "shape", f"expected a list of rows of {width} numbers ([batch, {width}])")
            return None
        return {f: [r[j] for r in rows] for j, f in enumerate(self._features)}

    def _convert(self, name: str, dtype: str, values: list[Any], issues: _Issues) -> list[Any]:
        """Check each value's type and missingness; values as the model takes them."""
        allow_missing = self.nan_policy == "allow"
        out: list[Any] = []
        field = f"inputs.{name}"
        for i, v in enumerate(values):
            if v is _ABSENT:
                out.append(None)
                continue
            t = type(v)
            if dtype in _NUMERIC:
                if t is float:
                    if math.isnan(v) or math.isinf(v):
                        if not allow_missing or math.isinf(v):
                            issues.add(f"{field}[{i}]", "nan", f"{v} is not allowed (NaN policy: {self.nan_policy})")
                        out.append(math.nan)
                        continue
                    out.append(v)
                elif t is int:
                    out.append(v)
                elif v is None:
                    if not allow_missing:
                        issues.add(f"{field}[{i}]", "nan", f"missing value (null) is not allowed (NaN policy: {self.nan_policy})")
                    out.append(math.nan)
                else:
                    issues.add(f"{field}[{i}]", _type_code(v), f"expected a number ({dtype}), got {_kind(v)}")
            elif dtype in _INTEGER:
                if t is int:
                    out.append(v)
                elif v is None:
                    issues.add(f"{field}[{i}]", "nan", f"missing value (null); {dtype} has no missing value")
                else:
                    issues.add(f"{field}[{i}]", _type_code(v), f"expected an integer ({dtype}), got {_kind(v)}")
            elif t is str:
                out.append(v)
            elif v is None or (t is float and math.isnan(v)):
                if not allow_missing:
                    issues.add(f"{field}[{i}]", "nan", f"missing value is not allowed (NaN policy: {self.nan_policy})")
                out.append("")
            else:
                issues.add(f"{field}[{i}]", _type_code(v), f"expected a string, got {_kind(v)}")
        return out

    def feeds(self, payload: Any) -> dict[str, np.ndarray[Any, Any]]:
        """The model's input tensors for ``payload``, after every check.

        Raises:
            InputError: every problem found (names, types, shapes, missing values, too many rows).
        """
        numpy = self._np
        issues = _Issues()
        columns = self._columns(payload, issues)
        if columns is None:
            issues.raise_if_any()
            columns = {}
        rows = max((len(v) for v in columns.values()), default=0)
        if rows > self.max_rows:
            issues.add("inputs", "too_many_rows", f"{rows} rows; at most {self.max_rows} per request")
            issues.raise_if_any()  # not worth checking each value of a request that is refused anyway
        if rows == 0 and not issues.count:
            issues.add("inputs", "shape", "no rows to predict")
        # Values are checked even when names were wrong, so that one answer lists every problem.
        if self._layout == "matrix":
            spec = self._inputs[0]
            converted = [self._convert(f, spec["dtype"], columns[f], issues) for f in self._features if f in columns]
            issues.raise_if_any()
            return {spec["name"]: numpy.asarray(converted, dtype=spec["dtype"]).T.reshape(rows, len(self._features))}
        out: dict[str, np.ndarray[Any, Any]] = {}
        for spec in self._inputs:
            column = spec.get("column") or spec["name"]
            if column not in columns:
                continue
            values = self._convert(column, spec["dtype"], columns[column], issues)
            if issues.count:
                continue
            if spec["dtype"] == "string":
                out[spec["name"]] = numpy.asarray(values, dtype=object).reshape(-1, 1)
            else:
                out[spec["name"]] = numpy.asarray(values, dtype=spec["dtype"]).reshape(-1, 1)
        issues.raise_if_any()
        return out

    # ------------------------------------------------------------------ predictions

    def run(self, feeds: dict[str, np.ndarray[Any, Any]]) -> dict[str, np.ndarray[Any, Any]]:
        """Run the model on prepared tensors; outputs by name."""
        return dict(zip(self._outputs, self.session.run(self._outputs, feeds), strict=True))

    def predict(self, payload: Any) -> dict[str, Any]:
        """Check ``payload`` and predict: labels, class probabilities, model and version (JSON-able).

        Raises:
            InputError: the inputs do not fit the contract.
        """
        outputs = self.run(self.feeds(payload))
        result: dict[str, Any] = {"model": self.name, "version": self.version}
        label = self.contract.get("label_output")
        proba = self.contract.get("probability_output")
        if label and label in outputs:
            result["predictions"] = [_plain(v) for v in outputs[label].reshape(-1).tolist()]
        if proba and proba in outputs:
            matrix = outputs[proba].tolist()
            if self._classes and len(self._classes) == len(matrix[0]):
                result["probabilities"] = [dict(zip(map(str, self._classes), row, strict=True)) for row in matrix]
            else:
                result["probabilities"] = matrix
        if "predictions" not in result and "probabilities" not in result:
            result["outputs"] = {k: v.tolist() for k, v in outputs.items()}
        return result


def _plain(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def _kind(value: Any) -> str:  # noqa: PLR0911  (one short answer per JSON type)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, str):
        shown = value if len(value) <= 20 else value[:20] + "…"
        return f"a string ({shown!r})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _type_code(value: Any) -> str:
    return "shape" if isinstance(value, (list, dict)) else "dtype"
