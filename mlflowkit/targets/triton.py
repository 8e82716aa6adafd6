"""The ``triton`` deploy target: a Triton model repository on any fsspec location, loaded and verified live.

A deploy writes ``<model>/<version>/model.onnx`` and a ``config.pbtxt`` generated from the model's
contract, asks the server (explicit model control) to load that version, waits until it is ready, and
sends held-out rows to it over HTTP (and gRPC when configured), comparing the answers with ONNX Runtime
in process. If any of that fails, the repository is put back as it was, the previous version is
reloaded and keeps serving, and the error carries Triton's own text. Version folders beyond
``keep_versions`` are removed only after the new version answered correctly.

``backend: onnxruntime`` serves ``model.onnx`` with Triton's ONNX Runtime backend
(``platform: "onnxruntime_onnx"``, the full Triton container). ``backend: python`` adds a generated
``model.py`` that runs ONNX Runtime inside Triton's Python backend, for CPU builds without the ORT
backend, such as the one in the ``nvidia-pytriton`` wheel (``mlflowkit triton up``).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field

from mlflowkit.targets.base import DeployError, DeployTarget, Release
from mlflowkit.targets.onnxruntime import Signing

if TYPE_CHECKING:
    import pandas as pd

    from mlflowkit.targets.contract import Contract

__all__ = [
    "DynamicBatching",
    "InstanceGroup",
    "TritonDeployError",
    "TritonTarget",
    "candidate_name",
    "deploy",
    "model_py",
    "render_config",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DynamicBatching(_Frozen):
    """Triton's dynamic batcher: requests that arrive together run as one batch."""

    max_queue_delay_microseconds: int = Field(
        0,
        ge=0,
        description=(
            "How long a request may wait for others to batch with. 0 batches only the requests already queued, "
            "so a lone request never waits; raise it for throughput under many concurrent clients."
        ),
    )
    preferred_batch_size: list[int] = Field(default_factory=list, description="Batch sizes the batcher aims for.")


class InstanceGroup(_Frozen):
    """How many copies of the model run, and where."""

    count: int = Field(1, ge=1, le=64, description="Model instances.")
    kind: Literal["cpu", "gpu"] = Field("cpu", description="Where the instances run.")


class TritonTarget(DeployTarget):
    """Deploy to a Triton Inference Server through its model repository (explicit model control).

    Example:

    ```yaml
    deploy:
      - target: triton
        url: http://triton:8000
        grpc_url: triton:8001
        model_repository: s3://models/triton
        backend: onnxruntime
        max_batch_size: 64
        dynamic_batching: {max_queue_delay_microseconds: 0}
        instances: {count: 2, kind: cpu}
        keep_versions: 2
    ```
    """

    target: Literal["triton"] = Field(description="The deploy target's type.")
    url: str = Field(pattern=r"^https?://[^/\s]+/?$", description="The server's HTTP endpoint, e.g. http://triton:8000.")
    grpc_url: str | None = Field(
        None, pattern=r"^[^/\s:]+:[0-9]+$", description="The server's gRPC endpoint (host:port); the smoke test also uses it."
    )
    model_repository: str = Field(description="The model repository the server reads (any fsspec URI: a folder, s3://...).")
    model_name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
        description="The model's name in Triton; defaults to the registered name.",
    )
    backend: Literal["onnxruntime", "python"] = Field(
        "onnxruntime",
        description="`onnxruntime`: platform onnxruntime_onnx (full Triton). `python`: a generated model.py runs ONNX Runtime.",
    )
    max_batch_size: int = Field(64, ge=0, description="Largest batch Triton forms; 0 turns batching off.")
    dynamic_batching: DynamicBatching | None = Field(
        default_factory=DynamicBatching, description="Dynamic batching settings; null turns it off."
    )
    instances: InstanceGroup = Field(default_factory=InstanceGroup, description="The model's instance group.")
    keep_versions: int = Field(2, ge=1, le=100, description="Version folders kept in the repository (the new one included).")
    ready_timeout: float = Field(120.0, gt=0, description="Seconds to wait for the new version to load and become ready.")
    smoke_rows: int = Field(
        16, ge=1, le=10_000, description="Held-out rows sent to the new version and compared with ONNX Runtime."
    )
    tolerance: float = Field(1e-5, gt=0, description="Largest difference allowed between Triton's and local probabilities.")
    candidate: bool = Field(
        True,
        description=(
            "Load and smoke-test the new version as `<model>__candidate` before it takes traffic, so that a version "
            "that fails never answers a client (costs a second load). false: swap, smoke-test, roll back on failure."
        ),
    )
    max_opset: int | None = Field(
        None, ge=1, description="Highest ONNX opset the server's ONNX Runtime supports; checked against the export's opset."
    )
    config_extra: str = Field("", description="Text appended to the generated config.pbtxt (e.g. optimization or parameters).")
    signing: Signing | None = Field(
        None,
        description=(
            "Sign each version with an ed25519 key (`{key_file: PATH}` or `{key_env: VAR}`): a manifest.json listing "
            "model.onnx, contract.json and lineage.json, and its manifest.sig. The deploy checks what it wrote; with "
            "`backend: python`, a server started with the public key (`mlflowkit triton up --trusted-key`) loads nothing else."
        ),
    )

    summary: ClassVar[str] = "Triton Inference Server: model repository + explicit model control, verified live"

    @property
    def destination(self) -> str:
        return self.url

    def deploy(self, release: Release, *, name: str, log: Callable[[str], None]) -> dict[str, Any]:
        lineage = {"model": release.model, "version": release.version, **release.lineage}
        return deploy(
            self, name=name, version=release.version, model=release.onnx, contract=release.contract, smoke=release.smoke,
            log=log, lineage=lineage,
        )  # fmt: skip


class TritonDeployError(DeployError):
    """A deploy to Triton failed; the previous version was restored. The message carries Triton's error text."""


# ------------------------------------------------------------------------------------------ config.pbtxt

_CONFIG_TYPES = {
    "float32": "TYPE_FP32",
    "float64": "TYPE_FP64",
    "int64": "TYPE_INT64",
    "int32": "TYPE_INT32",
    "string": "TYPE_STRING",
}
_WIRE_TYPES = {"float32": "FP32", "float64": "FP64", "int64": "INT64", "int32": "INT32", "string": "BYTES"}


def _dims(shape: tuple[int, ...], batched: bool) -> tuple[str, str]:
    """``dims`` and an optional ``reshape`` for one tensor (Triton forbids empty dims)."""
    inner = shape[1:] if batched else shape
    if not inner:
        return "[ 1 ]", " reshape: { shape: [ ] }"
    return "[ " + ", ".join(str(d) for d in inner) + " ]", ""


def render_config(name: str, version: int, contract: Contract, settings: TritonTarget) -> str:
    """The ``config.pbtxt`` for ``version`` of ``name``: tensors from the contract, serving settings from the spec.

    The version policy names the one version that serves, so that a rollback is a config change.
    """
    batched = settings.max_batch_size > 0
    lines = [f'name: "{name}"']
    lines.append('backend: "python"' if settings.backend == "python" else 'platform: "onnxruntime_onnx"')
    lines.append(f"max_batch_size: {settings.max_batch_size}")
    lines.append(f"version_policy: {{ specific: {{ versions: [ {version} ] }} }}")
    for section, tensors in (("input", contract.inputs), ("output", contract.outputs)):
        entries = []
        for t in tensors:
            dims, reshape = _dims(t.shape, batched)
            entries.append(f'  {{ name: "{t.name}" data_type: {_CONFIG_TYPES[t.dtype]} dims: {dims}{reshape} }}')
        lines.append(f"{section} [\n" + ",\n".join(entries) + "\n]")
    if batched and settings.dynamic_batching is not None:
        batching = settings.dynamic_batching
        preferred = (
            f" preferred_batch_size: [ {', '.join(map(str, batching.preferred_batch_size))} ]"
            if batching.preferred_batch_size
            else ""
        )
        lines.append(f"dynamic_batching {{ max_queue_delay_microseconds: {batching.max_queue_delay_microseconds}{preferred} }}")
    kind = "KIND_GPU" if settings.instances.kind == "gpu" else "KIND_CPU"
    lines.append(f"instance_group [ {{ count: {settings.instances.count} kind: {kind} }} ]")
    lines.append(f'parameters {{ key: "mlflowkit_version" value: {{ string_value: "{version}" }} }}')
    if settings.config_extra:
        lines.append(settings.config_extra.rstrip("\n"))
    return "\n".join(lines) + "\n"


_MODEL_PY = '''"""Generated by mlflowkit: serves model.onnx with ONNX Runtime through Triton's Python backend."""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


# BYTES tensors arrive as objects holding bytes; ONNX Runtime reads str (and would read bytes as "b'...'").
# Element by element, as fast as numpy's fixed-width casts here, and it keeps trailing NULs and never pads.
_text = np.frompyfunc(lambda v: v.decode("utf-8") if isinstance(v, bytes) else str(v), 1, 1)


def _error(exc):
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(f"{type(exc).__name__}: {exc}"))


def _verify(folder, model, name, version):
    # With a trusted key in the server's environment, load only what that key signed (mlflowkit's manifest).
    key_path = os.environ.get("MLFLOWKIT_TRITON_TRUSTED_KEY")
    if key_path is None:
        return
    if not key_path.strip():
        raise RuntimeError(f"mlflowkit refused {name} v{version}: MLFLOWKIT_TRITON_TRUSTED_KEY is set but empty")
    import base64
    import hashlib

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization

    def refuse(why):
        raise RuntimeError(f"mlflowkit refused {name} v{version}: {why}")

    with open(key_path, "rb") as fh:
        key = serialization.load_pem_public_key(fh.read())
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    trusted = hashlib.sha256(raw).hexdigest()[:16]
    try:
        with open(os.path.join(folder, "manifest.json"), "rb") as fh:
            manifest_bytes = fh.read()
        with open(os.path.join(folder, "manifest.sig"), "rb") as fh:
            signature = json.loads(fh.read())
    except FileNotFoundError as exc:
        refuse(f"{os.path.basename(exc.filename)} is missing; this server loads only signed versions")
    except ValueError as exc:
        refuse(f"manifest.sig cannot be read: {exc}")
    if signature.get("key_id") != trusted:
        refuse(f"it is signed by key {signature.get('key_id')}; this server trusts key {trusted}")
    try:
        key.verify(base64.b64decode(signature["signature"]), manifest_bytes)
    except (InvalidSignature, ValueError, KeyError):
        refuse(f"the signature by key {trusted} does not match manifest.json (it was changed after signing)")
    manifest = json.loads(manifest_bytes)
    if manifest.get("format") != "mlflowkit/edge-bundle-v1" or manifest.get("signed_by") != trusted:
        refuse(f"manifest.json is not an mlflowkit manifest signed by key {trusted}")
    if (manifest.get("name"), manifest.get("version")) != (name, version):
        refuse(f"the manifest was signed for {manifest.get('name')} v{manifest.get('version')}")
    if "model.onnx" not in manifest.get("files", {}):
        refuse("the manifest does not list model.onnx")
    for file_name, expected in sorted(manifest["files"].items()):
        if file_name == "model.onnx":
            data = model
        else:
            try:
                with open(os.path.join(folder, file_name), "rb") as fh:
                    data = fh.read()
            except OSError:
                refuse(f"{file_name} is listed in the manifest but cannot be read")
        digest = hashlib.sha256(data).hexdigest()
        if (digest, len(data)) != (expected["sha256"], expected["size"]):
            refuse(f"{file_name} has sha256 {digest[:16]}... ({len(data)} bytes); the manifest says "
                   f"{expected['sha256'][:16]}... ({expected['size']} bytes)")


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        folder = os.path.join(args["model_repository"], args["model_version"])
        with open(os.path.join(folder, "model.onnx"), "rb") as fh:
            model = fh.read()  # read once: the bytes checked are the bytes loaded
        name = args["model_name"].removesuffix("__candidate")
        _verify(folder, model, name, int(args["model_version"]))
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.inputs = [(t["name"], t["data_type"] == "TYPE_STRING") for t in config["input"]]
        self.outputs = [t["name"] for t in config["output"]]

    def _feeds(self, request):
        feeds = {}
        for name, text in self.inputs:
            array = pb_utils.get_input_tensor_by_name(request, name).as_numpy()
            feeds[name] = _text(array) if text else array
        return feeds

    def execute(self, requests):
        responses = [None] * len(requests)
        batch = []  # (index, feeds) of the requests that could be read; a bad one fails alone
        for i, request in enumerate(requests):
            try:
                batch.append((i, self._feeds(request)))
            except Exception as exc:
                responses[i] = _error(exc)
        if len(batch) > 1:  # requests the dynamic batcher put together run as one ONNX Runtime call
            try:
                feeds = {name: np.concatenate([f[name] for _, f in batch]) for name, _ in self.inputs}
                results = self.session.run(self.outputs, feeds)
            except Exception:  # one request's rows broke the batch: run each on its own
                results = None
            if results is not None:
                start = 0
                for i, f in batch:
                    size = len(f[self.inputs[0][0]])
                    responses[i] = self._respond([value[start : start + size] for value in results])
                    start += size
                return responses
        for i, f in batch:
            try:
                responses[i] = self._respond(self.session.run(self.outputs, f))
            except Exception as exc:
                responses[i] = _error(exc)
        return responses

    def _respond(self, values):
        # String outputs go back as ONNX Runtime's str objects; the backend encodes them as UTF-8.
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(n, v) for n, v in zip(self.outputs, values)])
'''


def model_py() -> str:
    """The generated ``model.py`` for ``backend: python``."""
    return _MODEL_PY


# ------------------------------------------------------------------------------------------ deploy


def deploy(
    settings: TritonTarget,
    *,
    name: str,
    version: int,
    model: bytes,
    contract: Contract,
    smoke: pd.DataFrame | None,
    log: Callable[[str], None] = lambda message: None,
    lineage: dict[str, Any] | None = None,
    test_serve_instead: bytes | None = None,
) -> dict[str, Any]:
    """Deploy ``version`` of ``name`` to the server and verify it; on any failure restore the previous state.

    Args:
        settings: the target's spec section.
        name: the model's name in Triton.
        version: the version number (the registry's, so Triton's ``<model>/<N>`` is registry version N).
        model: the ONNX bytes.
        contract: the model's contract (tensors, classes).
        smoke: held-out rows; the first ``settings.smoke_rows`` are sent to the server. None (a
            rollback to a version deployed before) checks readiness only.
        log: receives progress lines.
        lineage: the version's lineage, written (and signed, with ``settings.signing``) beside the model.
        test_serve_instead: test seam: serve these ONNX bytes while comparing with ``model``'s outputs.

    Returns:
        What was done: URLs, version, previous version, smoke comparison, removed versions, seconds.

    Raises:
        TritonDeployError: the server is unreachable, the opset is too new, or the new version failed
            to load, become ready or answer like ONNX Runtime; the previous version serves.
    """
    from fsspec.core import url_to_fs

    from mlflowkit.targets.contract import feeds, run_onnx

    started = time.monotonic()
    if name.endswith("__candidate"):
        raise TritonDeployError(
            f"model name {name!r}: names ending in __candidate are reserved for the candidate check; nothing was deployed"
        )
    _check_contract(model, contract, name=name, version=version)
    if settings.max_opset is not None and contract.max_opset > settings.max_opset:
        raise TritonDeployError(
            f"model {name} v{version} uses ONNX opset {contract.max_opset}; {settings.url} supports up to {settings.max_opset}"
        )
    http = _http_client(settings)
    try:
        if not http.is_server_live():
            raise TritonDeployError(f"Triton at {settings.url} is not live")
    except TritonDeployError:
        raise
    except Exception as exc:  # the client raises its own, socket and gevent errors alike
        raise TritonDeployError(f"Triton at {settings.url} is unreachable: {_text(exc)}") from exc

    fs, root = url_to_fs(settings.model_repository)
    model_dir = f"{root.rstrip('/')}/{name}"
    config_path = f"{model_dir}/config.pbtxt"
    version_dir = f"{model_dir}/{version}"
    try:
        previous = _serving_version(http, name)
        old_config = fs.cat_file(config_path) if fs.exists(config_path) else None
        old_files = _folder_files(fs, version_dir) if fs.exists(version_dir) else None
        inputs = feeds(contract, smoke.iloc[: settings.smoke_rows]) if smoke is not None else None
        expected = run_onnx(model, inputs) if inputs is not None else None
    except Exception as exc:  # nothing was written yet
        raise TritonDeployError(f"deploy of {name} v{version} to {settings.url}: {_text(exc)}; nothing was deployed") from exc
    files = {"model.onnx": test_serve_instead if test_serve_instead is not None else model}
    if settings.backend == "python":
        files["model.py"] = model_py().encode()
    public_key = None
    if settings.signing is not None:
        try:
            private_key = settings.signing.load()
        except Exception as exc:  # a missing or unreadable key
            why = str(exc).removesuffix("; nothing was published")
            raise TritonDeployError(f"deploy of {name} v{version}: {why}; nothing was deployed") from exc
        public_key = private_key.public_key()
        files.update(_signed_files(name, version, model, contract, lineage=lineage or {}, private_key=private_key))
    checks: dict[str, Any] = {}
    smoke_args: dict[str, Any] = {"version": version, "contract": contract, "inputs": inputs, "expected": expected}
    smoke_args["tolerance"] = settings.tolerance
    staged: dict[str, Any] = {}
    if settings.candidate and inputs is not None:
        staged = _stage(fs, http, settings, name=name, version=version, model_dir=model_dir, files=files,
                        previous=previous, log=log, smoke_args=smoke_args, public_key=public_key)  # fmt: skip
    try:
        if old_files is not None:  # the folder holds exactly what is written now (no stale files)
            fs.rm(version_dir, recursive=True)
        fs.makedirs(version_dir, exist_ok=True)
        for file_name, data in files.items():
            fs.pipe_file(f"{version_dir}/{file_name}", data)
        fs.pipe_file(config_path, render_config(name, version, contract, settings).encode())
        if public_key is not None:
            _verify_written(fs, version_dir, public_key, name=name, version=version)
        log(f"triton: loading {name} v{version} at {settings.url}" + (f" (v{previous} serving)" if previous else ""))
        http.load_model(name)
        _wait_ready(http, name, version, settings.ready_timeout)
        if inputs is None:
            log(f"triton: {name} v{version} is ready; no held-out rows at hand, so no smoke comparison")
        else:
            checks["http"] = _smoke(http, "http", name=name, **smoke_args)
        if settings.grpc_url and inputs is not None:
            checks["grpc"] = _smoke(_grpc_client(settings), "grpc", name=name, **smoke_args)
    except BaseException as exc:  # an interrupted deploy is put back too
        cause = _text(exc)
        restored = _restore(
            fs, http, name=name, version_dir=version_dir, config_path=config_path,
            old_config=old_config, old_files=old_files, previous=previous, timeout=settings.ready_timeout,
        )  # fmt: skip
        if not isinstance(exc, Exception):
            raise
        raise TritonDeployError(f"deploy of {name} v{version} to {settings.url} failed: {cause}; {restored}") from exc

    removed = _prune(fs, model_dir, keep=settings.keep_versions, current=version)
    seconds = round(time.monotonic() - started, 3)
    smoked = f"passed ({', '.join(checks)})" if checks else "skipped"
    log(f"triton: {name} v{version} is serving at {settings.url}; smoke test {smoked} in {seconds} s")
    return {
        "target": "triton",
        "destination": settings.url,
        "url": settings.url,
        "grpc_url": settings.grpc_url,
        "model_repository": settings.model_repository,
        "model": name,
        "version": version,
        "previous": previous,
        "backend": settings.backend,
        "smoke": checks,
        "candidate": staged or None,
        "removed_versions": removed,
        "seconds": seconds,
    }


def candidate_name(name: str) -> str:
    """The name a new version of ``name`` is loaded and smoke-tested under before it takes traffic."""
    return f"{name}__candidate"


def _stage(
    fs: Any,
    http: Any,
    settings: TritonTarget,
    *,
    name: str,
    version: int,
    model_dir: str,
    files: dict[str, bytes],
    previous: int | None,
    log: Callable[[str], None],
    smoke_args: dict[str, Any],
    public_key: Any = None,
) -> dict[str, Any]:
    """Load the new version as ``<name>__candidate`` beside the serving one and smoke-test it; always remove it.

    Clients of ``name`` never reach the candidate, so a version that fails here has answered nobody.

    Raises:
        TritonDeployError: the candidate did not load, become ready or answer like ONNX Runtime; the
            public model and its repository folder were not touched.
    """
    staged_name = candidate_name(name)
    staged_dir = f"{model_dir.rsplit('/', 1)[0]}/{staged_name}"
    contract = smoke_args["contract"]
    started = time.monotonic()
    checks: dict[str, Any] = {}
    failure: BaseException | None = None
    try:
        leftovers = _remove_candidate(fs, http, staged_name, staged_dir, settings.ready_timeout)  # a crashed deploy's
        if leftovers:
            raise TritonDeployError(f"a candidate left by an earlier deploy is in the way: {leftovers}")
        fs.makedirs(f"{staged_dir}/{version}", exist_ok=True)
        for file_name, data in files.items():
            fs.pipe_file(f"{staged_dir}/{version}/{file_name}", data)
        fs.pipe_file(f"{staged_dir}/config.pbtxt", render_config(staged_name, version, contract, settings).encode())
        if public_key is not None:
            _verify_written(fs, f"{staged_dir}/{version}", public_key, name=name, version=version)
        log(f"triton: loading {name} v{version} as {staged_name} to check it before it takes traffic")
        http.load_model(staged_name)
        _wait_ready(http, staged_name, version, settings.ready_timeout)
        checks["http"] = _smoke(http, "http", name=staged_name, **smoke_args)
        if settings.grpc_url:
            checks["grpc"] = _smoke(_grpc_client(settings), "grpc", name=staged_name, **smoke_args)
    except BaseException as exc:  # an interrupted check is cleaned up too
        failure = exc
    cleanup = _remove_candidate(fs, http, staged_name, staged_dir, settings.ready_timeout)
    if failure is not None:
        if not isinstance(failure, Exception):
            raise failure
        serving = f"v{previous} kept serving" if previous is not None else "nothing was serving"
        left = f"; {cleanup}" if cleanup else ""
        raise TritonDeployError(
            f"deploy of {name} v{version} to {settings.url} failed: {_text(failure)}; "
            f"it was checked as {staged_name} and never took traffic; {serving}{left}"
        ) from failure
    if cleanup:  # the check passed; what is left costs memory or space, not correctness: say so
        log(f"triton: warning: {cleanup}")
    record = {"model": staged_name, "smoke": checks, "seconds": round(time.monotonic() - started, 3)}
    return {**record, "cleanup": cleanup} if cleanup else record


def _remove_candidate(fs: Any, http: Any, staged_name: str, staged_dir: str, timeout: float) -> str:
    """Unload the candidate (and wait until it is gone) and remove its folder; what could not be done ("" when all went)."""
    problems = []
    live = ("READY", "LOADING", "UNLOADING")
    try:
        loaded = any(m.get("name") == staged_name and m.get("state") in live for m in http.get_model_repository_index())
    except Exception:  # cannot tell: unload to be sure
        loaded = True
    if loaded:
        try:
            http.unload_model(staged_name)
            deadline = time.monotonic() + timeout
            while any(m.get("name") == staged_name and m.get("state") in live for m in http.get_model_repository_index()):
                if time.monotonic() > deadline:
                    raise TritonDeployError(f"still loaded after {timeout:g} s")
                time.sleep(0.1)
        except Exception as exc:
            problems.append(f"{staged_name} could not be unloaded: {_text(exc)}")
    try:
        if fs.exists(staged_dir):
            fs.rm(staged_dir, recursive=True)
    except Exception as exc:
        problems.append(f"{staged_dir} could not be removed: {_text(exc)}")
    return "; ".join(problems)


def _folder_files(fs: Any, folder: str) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path, but Python's caches (the server rebuilds them)."""
    files = {}
    for path in fs.find(folder):
        relative = path[len(folder.rstrip("/")) + 1 :]
        if "__pycache__" not in relative.split("/"):
            files[relative] = fs.cat_file(path)
    return files


def _signed_files(
    name: str, version: int, model: bytes, contract: Contract, *, lineage: dict[str, Any], private_key: Any
) -> dict[str, bytes]:
    """contract.json, lineage.json, manifest.json and manifest.sig for a version folder (the edge bundle's format)."""
    import onnxruntime as ort

    from mlflowkit.edge.bundle import MODEL, build_bundle, min_ort_for

    files = build_bundle(
        name=name,
        model=str(lineage.get("model", name)),
        version=version,
        onnx=model,
        contract=contract.model_dump(mode="json"),
        lineage=lineage,
        min_ort_version=min_ort_for(contract.opset, str(ort.__version__)),
        opset=contract.opset,
        private_key=private_key,
    )
    del files[MODEL]  # written by the caller (the test seam may serve other bytes)
    return files


def _verify_written(fs: Any, folder: str, public_key: Any, *, name: str, version: int) -> None:
    """Check the signed version folder as written, before the server is asked to load it."""
    import hashlib

    from mlflowkit.edge.bundle import verify_bundle
    from mlflowkit.edge.errors import BundleRefused

    names = [p[len(folder) + 1 :] for p in fs.find(folder) if not fs.isdir(p)]
    # The generated code and what Python caches of it when the server imports it are not part of the model.
    names = [n for n in names if n != "model.py" and not n.startswith("__pycache__/")]

    def digest(file_name: str) -> tuple[str, int]:
        data = fs.cat_file(f"{folder}/{file_name}")
        return hashlib.sha256(data).hexdigest(), len(data)

    try:
        verify_bundle(names, lambda n: fs.cat_file(f"{folder}/{n}"), digest, public_key, name=name, version=version)
    except BundleRefused as exc:
        raise TritonDeployError(f"the version folder as written does not verify ({exc.reason}): {exc.detail}") from exc


def _check_contract(model: bytes, contract: Contract, *, name: str, version: int) -> None:
    """Refuse, before the server is touched, a contract whose tensors are not the model's."""
    import onnx

    graph = onnx.load_from_string(model).graph
    for kind, declared, actual in (
        ("inputs", [t.name for t in contract.inputs], [v.name for v in graph.input]),
        ("outputs", [t.name for t in contract.outputs], [v.name for v in graph.output]),
    ):
        if sorted(declared) != sorted(actual):
            raise TritonDeployError(
                f"{name} v{version}: the contract's {kind} ({', '.join(declared)}) are not model.onnx's ({', '.join(actual)}); "
                "nothing was deployed"
            )


def _http_client(settings: TritonTarget) -> Any:
    import tritonclient.http as triton_http

    parsed = urlparse(settings.url)
    timeout = max(settings.ready_timeout, 10.0)
    return triton_http.InferenceServerClient(
        parsed.netloc, ssl=parsed.scheme == "https", connection_timeout=10.0, network_timeout=timeout
    )


def _grpc_client(settings: TritonTarget) -> Any:
    import tritonclient.grpc as triton_grpc

    return triton_grpc.InferenceServerClient(settings.grpc_url or "")


def _text(exc: BaseException) -> str:
    """Triton's own error text when the client carries it, else the exception's."""
    message = getattr(exc, "message", None)
    text = message() if callable(message) else str(exc)
    return (text or type(exc).__name__).strip()


def _serving_version(http: Any, name: str) -> int | None:
    """The highest version of ``name`` that is READY on the server, or None."""
    ready = [int(m["version"]) for m in http.get_model_repository_index() if m.get("name") == name and m.get("state") == "READY"]
    return max(ready) if ready else None


def _wait_ready(http: Any, name: str, version: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not http.is_model_ready(name, str(version)):
        if time.monotonic() > deadline:
            raise TritonDeployError(f"{name} v{version} was not ready after {timeout:g} s")
        time.sleep(0.2)


def infer(
    client: Any, protocol: str, name: str, contract: Contract, inputs: dict[str, Any], *, version: int | None = None
) -> dict[str, Any]:
    """Send ``inputs`` (from :func:`feeds`) to ``name`` over ``protocol`` (``http`` or ``grpc``); outputs by name."""
    if protocol == "http":
        import tritonclient.http as module
    else:
        import tritonclient.grpc as module

    wire = {t.name: _WIRE_TYPES[t.dtype] for t in contract.inputs}
    request = []
    for input_name, array in inputs.items():
        tensor = module.InferInput(input_name, list(array.shape), wire.get(input_name, "FP32"))
        tensor.set_data_from_numpy(array)
        request.append(tensor)
    outputs = [module.InferRequestedOutput(t.name) for t in contract.outputs]
    result = client.infer(name, request, model_version=str(version) if version else "", outputs=outputs)
    return {t.name: result.as_numpy(t.name) for t in contract.outputs}


def _smoke(
    client: Any,
    protocol: str,
    *,
    name: str,
    version: int,
    contract: Contract,
    inputs: dict[str, Any],
    expected: dict[str, Any],
    tolerance: float,
) -> dict[str, Any]:
    from mlflowkit.targets.contract import compare_outputs

    answered = infer(client, protocol, name, contract, inputs, version=version)
    parity = compare_outputs(contract, expected, answered, tolerance=tolerance)
    if not parity.ok:
        raise TritonDeployError(f"smoke test over {protocol}: Triton's answers differ from ONNX Runtime's: {parity.describe()}")
    return {"rows": parity.rows, "max_abs_diff": parity.max_abs_diff}


def _restore(
    fs: Any,
    http: Any,
    *,
    name: str,
    version_dir: str,
    config_path: str,
    old_config: bytes | None,
    old_files: dict[str, bytes] | None,
    previous: int | None,
    timeout: float,
) -> str:
    """Put the repository back as it was and reload the previous version; say what happened."""
    try:
        if fs.exists(version_dir):
            fs.rm(version_dir, recursive=True)
        for file_name, data in (old_files or {}).items():
            fs.makedirs(f"{version_dir}/{file_name}".rsplit("/", 1)[0], exist_ok=True)
            fs.pipe_file(f"{version_dir}/{file_name}", data)
        if old_config is not None:
            fs.pipe_file(config_path, old_config)
        elif fs.exists(config_path):
            fs.rm(config_path)
    except Exception as exc:  # report it with the deploy's own error; never hide the first cause
        return f"the repository could not be restored: {_text(exc)}"
    try:
        if previous is None:
            with contextlib.suppress(Exception):  # nothing served before: make sure nothing half-loaded stays
                http.unload_model(name)
            return "the repository was restored; no previous version was serving"
        if _serving_version(http, name) != previous:
            http.load_model(name)
        _wait_ready(http, name, previous, timeout)
    except Exception as exc:
        return f"the repository was restored, but v{previous} could not be reloaded: {_text(exc)}"
    return f"the repository was restored and v{previous} is serving"


def _prune(fs: Any, model_dir: str, *, keep: int, current: int) -> list[int]:
    """Remove version folders beyond the newest ``keep`` (never ``current``); the numbers removed."""
    numbers = sorted(
        (
            int(p.rstrip("/").rsplit("/", 1)[-1])
            for p in fs.ls(model_dir, detail=False)
            if p.rstrip("/").rsplit("/", 1)[-1].isdigit()
        ),
        reverse=True,
    )
    kept = [current, *[n for n in numbers if n != current][: keep - 1]]
    removed = [n for n in numbers if n not in kept]
    for number in removed:
        fs.rm(f"{model_dir}/{number}", recursive=True)
    return sorted(removed)


def dumps_record(record: dict[str, Any]) -> bytes:
    """A deploy record as JSON bytes."""
    return json.dumps(record, sort_keys=True, indent=2, default=str).encode()
