"""The ``onnxruntime`` deploy target: signed, versioned bundles on any fsspec location, for edge devices to pull.

A deploy builds the bundle (model.onnx, contract.json with preprocessing metadata and the input policy,
lineage.json, manifest.json with every file's sha256 and the runtime requirements, manifest.sig),
runs it through the edge runner on held-out rows, writes it under ``<location>/<name>/<version>/``,
reads it back and verifies it, and only then points the channel at it in ``<location>/<name>/index.json``.
The index is written last (temp + rename where the filesystem has renames), so a device never sees a
channel point at a half-written bundle; a failure before that leaves the index, and every device, as
they were. Devices pull with ``mlflowkit edge pull`` (see :mod:`mlflowkit.edge`, ``docs/edge.md``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlflowkit.targets.base import DeployError, DeployTarget, Release

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from mlflowkit.targets.contract import Contract

__all__ = ["EdgeDeployError", "OnnxRuntimeTarget", "Signing", "preprocessing"]


class EdgeDeployError(DeployError):
    """Publishing a bundle failed; the channel's index was not changed, so devices keep their bundle."""


class Signing(BaseModel):
    """Where the publisher's ed25519 private key is (never the key itself)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_file: str | None = Field(None, description="A PEM file holding the private key (`mlflowkit edge keygen`).")
    key_env: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="An environment variable holding the private key's PEM text."
    )

    @model_validator(mode="after")
    def _one_source(self) -> Signing:
        if (self.key_file is None) == (self.key_env is None):
            raise ValueError("give exactly one of key_file and key_env")
        return self

    def load(self) -> Ed25519PrivateKey:
        """The private key.

        Raises:
            EdgeDeployError: the file or variable is missing, or holds no ed25519 private key.
        """
        from mlflowkit.edge.errors import EdgeError
        from mlflowkit.edge.signing import load_private_key

        if self.key_env is not None:
            text = os.environ.get(self.key_env)
            if not text:
                raise EdgeDeployError(f"signing.key_env: ${self.key_env} is not set; nothing was published")
            source = text
        else:
            source = str(Path(self.key_file or "").expanduser())
        try:
            return load_private_key(source)
        except EdgeError as exc:
            raise EdgeDeployError(f"signing key: {exc}; nothing was published") from None


class OnnxRuntimeTarget(DeployTarget):
    """Publish a signed ONNX Runtime bundle for edge devices, and point a channel at it.

    Example:

    ```yaml
    deploy:
      - target: onnxruntime
        location: s3://models/edge          # any fsspec URI; bundles go to <location>/<name>/<version>/
        channel: stable
        signing: {key_env: MLFLOWKIT_EDGE_SIGNING_KEY}
        nan_policy: reject
        keep_versions: 5
    ```
    """

    target: Literal["onnxruntime"] = Field(description="The deploy target's type.")
    location: str = Field(min_length=1, description="Where bundles are published (any fsspec URI: a folder, s3://...).")
    channel: str = Field("stable", pattern=r"^[a-z][a-z0-9_-]{0,63}$", description="The channel this deploy moves.")
    signing: Signing = Field(description="The publisher's ed25519 private key: `{key_file: PATH}` or `{key_env: VAR}`.")
    min_ort_version: str | None = Field(
        None,
        pattern=r"^[0-9]+(\.[0-9]+){0,2}$",
        description="The oldest ONNX Runtime devices may run the model with; default: derived from the model's opset.",
    )
    max_opset: int | None = Field(
        None, ge=1, description="Highest ONNX opset the fleet's ONNX Runtime supports; checked against the export's opset."
    )
    nan_policy: Literal["reject", "allow"] = Field(
        "reject",
        description="Missing values (null, NaN) in requests: `reject` answers 422; `allow` passes them to the model's imputers.",
    )
    keep_versions: int = Field(
        5, ge=1, le=1000, description="Bundle versions kept at the location (those a channel points at are always kept)."
    )
    smoke_rows: int = Field(
        32, ge=1, le=10_000, description="Held-out rows run through the edge runner and compared with ONNX Runtime."
    )
    tolerance: float = Field(
        1e-5, gt=0, description="Largest difference allowed between the runner's and ONNX Runtime's probabilities."
    )

    summary: ClassVar[str] = "ONNX Runtime on edge devices: signed bundles on any fsspec location, per-channel index"

    @property
    def destination(self) -> str:
        return f"{self.location.rstrip('/')}#{self.channel}"

    def deploy(self, release: Release, *, name: str, log: Callable[[str], None]) -> dict[str, Any]:
        return publish(self, release, name=name, log=log)


# ------------------------------------------------------------------------------------------ metadata


def preprocessing(model: bytes, contract: Contract) -> dict[str, Any]:
    """What the model does to its inputs, read from its graph: operators, and per column its type and categories."""
    import onnx
    from onnx import helper

    graph = onnx.load_from_string(model).graph
    producers = {out: node for node in graph.node for out in node.output}
    columns: dict[str, dict[str, Any]] = {}
    for t in contract.inputs:
        columns[t.column or t.name] = {
            "input": t.name,
            "dtype": t.dtype,
            "kind": "text" if t.dtype == "string" else "number",
            "missing": '""' if t.dtype == "string" else "NaN",
        }
    by_input = {t.name: t.column or t.name for t in contract.inputs}
    text_columns = [t.column or t.name for t in contract.inputs if t.dtype == "string"]
    encoders = []
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "OneHotEncoder":
            encoders.append(
                [c.decode() if isinstance(c, bytes) else c for c in attrs.get("cats_strings") or attrs.get("cats_int64s") or []]
            )
        elif node.op_type == "Imputer" and node.input and node.input[0] in producers:
            # A ColumnTransformer imputes its numeric columns together, after concatenating them in order.
            merged = producers[node.input[0]]
            filled = attrs.get("imputed_value_floats") or []
            if merged.op_type == "Concat" and len(filled) == len(merged.input):
                for source, value in zip(merged.input, filled, strict=True):
                    if source in by_input:
                        columns[by_input[source]]["imputed_with"] = round(float(value), 6)
    # One encoder per text column, in the columns' order (how skl2onnx converts a ColumnTransformer).
    if encoders and len(encoders) == len(text_columns):
        for column, categories in zip(text_columns, encoders, strict=True):
            columns[column]["categories"] = categories
    return {
        "in_graph": True,
        "operators": sorted({f"{n.domain or 'ai.onnx'}:{n.op_type}" for n in graph.node}),
        "columns": columns,
    }


# ------------------------------------------------------------------------------------------ publish


def publish(
    settings: OnnxRuntimeTarget, release: Release, *, name: str, log: Callable[[str], None] = lambda m: None
) -> dict[str, Any]:
    """Build, smoke-test, write, verify and index one bundle; see the module docstring for the order.

    Raises:
        EdgeDeployError: the key is missing, the opset is too new, the runner's answers differ, or
            the bundle could not be written or verified; the index is unchanged.
    """
    import onnxruntime as ort
    from fsspec.core import url_to_fs

    from mlflowkit.edge.bundle import INDEX, MANIFEST, MODEL, build_bundle, min_ort_for, updated_index, verify_bundle
    from mlflowkit.edge.errors import EdgeError

    started = time.monotonic()
    contract = release.contract
    version = release.version
    private_key = settings.signing.load()
    public_key = private_key.public_key()
    if settings.max_opset is not None and contract.max_opset > settings.max_opset:
        raise EdgeDeployError(
            f"{name} v{version} uses ONNX opset {contract.max_opset}; {settings.destination} supports up to {settings.max_opset}"
        )
    try:
        prep = preprocessing(release.onnx, contract)
    except Exception as exc:  # onnx raises its own DecodeError
        raise EdgeDeployError(f"{name} v{version}: model.onnx cannot be read: {exc}; nothing was published") from exc
    _check_contract(release, name=name)
    contract_doc = {**contract.model_dump(mode="json"), "preprocessing": prep, "input_policy": {"nan": settings.nan_policy}}
    lineage = {"model": release.model, "version": version, **release.lineage}
    files = build_bundle(
        name=name,
        model=release.model,
        version=version,
        onnx=release.onnx,
        contract=contract_doc,
        lineage=lineage,
        min_ort_version=settings.min_ort_version or min_ort_for(contract.opset, str(ort.__version__)),
        opset=contract.opset,
        private_key=private_key,
        channel=settings.channel,
    )
    smoke = _smoke(settings, release, files)

    fs, root = url_to_fs(settings.location)
    model_dir = f"{str(root).rstrip('/')}/{name}"
    version_dir = f"{model_dir}/{version}"
    index_path = f"{model_dir}/{INDEX}"
    try:
        index = json.loads(fs.cat_file(index_path)) if fs.exists(index_path) else None
    except Exception as exc:  # unreadable index: never overwrite what we cannot read
        raise EdgeDeployError(f"cannot read {index_path}: {exc}; nothing was published") from exc
    entry = ((index or {}).get("channels") or {}).get(settings.channel) or {}
    previous = entry.get("current")

    def remote_verify() -> dict[str, Any]:
        names = [p[len(version_dir) + 1 :] for p in fs.find(version_dir) if not fs.isdir(p)]

        def digest(n: str) -> tuple[str, int]:
            data = fs.cat_file(f"{version_dir}/{n}")
            return hashlib.sha256(data).hexdigest(), len(data)

        return verify_bundle(names, lambda n: fs.cat_file(f"{version_dir}/{n}"), digest, public_key, name=name, version=version)

    created = False
    reused = False
    try:
        if fs.exists(version_dir):
            try:
                existing = remote_verify()
            except EdgeError as exc:
                log(f"onnxruntime: {version_dir} exists but does not verify ({exc}); writing it again")
                fs.rm(version_dir, recursive=True)
            else:
                if existing["files"][MODEL]["sha256"] != hashlib.sha256(release.onnx).hexdigest():
                    raise EdgeDeployError(
                        f"{version_dir} holds another model.onnx for v{version}; published versions are immutable"
                    )
                reused = True
                files[MANIFEST] = fs.cat_file(f"{version_dir}/{MANIFEST}")
                log(f"onnxruntime: {name} v{version} is published at {version_dir} already; it verifies")
        if not reused:
            _write_bundle(fs, model_dir, version_dir, files)
            created = True
            remote_verify()
        new_index = updated_index(
            index,
            name=name,
            channel=settings.channel,
            version=version,
            manifest_sha256=hashlib.sha256(files[MANIFEST]).hexdigest(),
            manifest=json.loads(files[MANIFEST]),
        )
        removed = _prunable(new_index, keep=settings.keep_versions)
        for number in removed:
            new_index["versions"].pop(str(number), None)
        _write_atomic(fs, index_path, (json.dumps(new_index, sort_keys=True, indent=2) + "\n").encode())
    except BaseException as exc:
        if created:
            try:
                fs.rm(version_dir, recursive=True)
            except Exception as cleanup:  # report it with the first cause, never instead of it
                log(f"onnxruntime: could not remove {version_dir}: {cleanup}")
        if not isinstance(exc, Exception):
            raise
        if isinstance(exc, EdgeDeployError):
            raise
        kept = f"v{previous} stays current on {settings.channel}" if previous else f"{settings.channel} stays empty"
        raise EdgeDeployError(
            f"publishing {name} v{version} to {settings.destination} failed: {exc}; the index is unchanged, {kept}"
        ) from exc
    for number in removed:  # unreferenced by the index now
        with contextlib.suppress(FileNotFoundError):
            fs.rm(f"{model_dir}/{number}", recursive=True)
    seconds = round(time.monotonic() - started, 3)
    log(f"onnxruntime: {name} v{version} is current on {settings.destination}" + (f" (was v{previous})" if previous else ""))
    return {
        "target": "onnxruntime",
        "destination": settings.destination,
        "location": settings.location,
        "source": f"{settings.location.rstrip('/')}/{name}",
        "channel": settings.channel,
        "model": name,
        "version": version,
        "previous": previous,
        "bundle": f"{settings.location.rstrip('/')}/{name}/{version}",
        "manifest_sha256": hashlib.sha256(files[MANIFEST]).hexdigest(),
        "signed_by": json.loads(files[MANIFEST])["signed_by"],
        "reused": reused,
        "smoke": smoke,
        "removed_versions": removed,
        "seconds": seconds,
    }


def _check_contract(release: Release, *, name: str) -> None:
    import onnx

    graph = onnx.load_from_string(release.onnx).graph
    declared = sorted(t.name for t in release.contract.inputs)
    actual = sorted(v.name for v in graph.input)
    if declared != actual:
        raise EdgeDeployError(
            f"{name} v{release.version}: the contract's inputs ({', '.join(declared)}) are not "
            f"model.onnx's ({', '.join(actual)}); nothing was published"
        )


def _smoke(settings: OnnxRuntimeTarget, release: Release, files: dict[str, bytes]) -> dict[str, Any]:
    """Load the bundle with the edge runner (verifying its signature) and compare its answers on held-out rows."""
    from mlflowkit.edge.errors import EdgeError
    from mlflowkit.edge.runner import Runner
    from mlflowkit.targets.contract import compare_outputs, feeds, run_onnx

    with tempfile.TemporaryDirectory(prefix="mlflowkit-bundle-") as tmp:
        folder = Path(tmp)
        for file_name, data in files.items():
            (folder / file_name).write_bytes(data)
        try:
            runner = Runner(folder, public_key=settings.signing.load().public_key(), requirements=False)
        except EdgeError as exc:
            raise EdgeDeployError(
                f"the bundle of v{release.version} does not load in the edge runner: {exc}; nothing was published"
            ) from exc
        if release.smoke is None:
            return {}
        rows = release.smoke[list(release.contract.features)]
        if settings.nan_policy == "reject":
            rows = rows.dropna()
        rows = rows.head(settings.smoke_rows)
        if rows.empty:
            return {}
        records = rows.to_dict(orient="records")
        try:
            answered = runner.run(runner.feeds(records))
        except EdgeError as exc:
            raise EdgeDeployError(f"smoke test: the edge runner refused held-out rows: {exc}; nothing was published") from exc
        expected = run_onnx(release.onnx, feeds(release.contract, rows))
        parity = compare_outputs(release.contract, expected, answered, tolerance=settings.tolerance)
        if not parity.ok:
            raise EdgeDeployError(f"smoke test: the edge runner's answers differ from ONNX Runtime's: {parity.describe()}")
        return {"runner": {"rows": parity.rows, "max_abs_diff": parity.max_abs_diff}}


def _write_bundle(fs: Any, model_dir: str, version_dir: str, files: dict[str, bytes]) -> None:
    """Write the bundle folder: on a local disk into a temp folder renamed into place; elsewhere the signature last."""
    from fsspec.implementations.local import LocalFileSystem

    order = sorted(files, key=lambda n: (n == "manifest.sig", n == "manifest.json", n))
    if isinstance(fs, LocalFileSystem):
        tmp = f"{model_dir}/.tmp-{uuid.uuid4().hex}"
        os.makedirs(tmp)
        try:
            for file_name in order:
                with open(f"{tmp}/{file_name}", "wb") as fh:
                    fh.write(files[file_name])
                    fh.flush()
                    os.fsync(fh.fileno())
            os.rename(tmp, version_dir)
        except BaseException:
            fs.rm(tmp, recursive=True)
            raise
        return
    fs.makedirs(version_dir, exist_ok=True)
    for file_name in order:
        fs.pipe_file(f"{version_dir}/{file_name}", files[file_name])


def _write_atomic(fs: Any, path: str, data: bytes) -> None:
    """Replace ``path``: temp + rename on a local disk; one object PUT (atomic by itself) on object stores."""
    from fsspec.implementations.local import LocalFileSystem

    if isinstance(fs, LocalFileSystem):
        from mlflowkit.store.files import atomic_write_local

        atomic_write_local(path, data)
        return
    fs.pipe_file(path, data)


_VERSION_DIR = re.compile(r"^[0-9]+$")


def _prunable(index: dict[str, Any], *, keep: int) -> list[int]:
    """Versions beyond the newest ``keep`` that no channel points at (current or previous)."""
    pinned = {int(v) for ch in index["channels"].values() for v in (ch.get("current"), ch.get("previous")) if v is not None}
    numbers = sorted((int(v) for v in index["versions"] if _VERSION_DIR.match(str(v))), reverse=True)
    kept = set(numbers[:keep]) | pinned
    return sorted(n for n in numbers if n not in kept)
