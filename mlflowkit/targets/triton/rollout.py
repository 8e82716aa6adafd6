"""Deploying one version to a Triton server: write the model repository, load, verify live, or put it all back.

A deploy writes ``<model>/<version>/model.onnx`` and a ``config.pbtxt`` generated from the model's
contract, asks the server (explicit model control) to load that version, waits until it is ready, and
sends held-out rows to it over HTTP (and gRPC when configured), comparing the answers with ONNX Runtime
in process. With ``candidate: true`` the new version is first loaded and checked as ``<model>__candidate``.
If any of that fails, the repository is put back as it was, the previous version is reloaded and keeps
serving, and the error carries Triton's own text. Version folders beyond ``keep_versions`` are removed
only after the new version answered correctly.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from mlflowkit.targets.base import DeployError
from mlflowkit.targets.triton.backend import model_py
from mlflowkit.targets.triton.config import render_config

if TYPE_CHECKING:
    import pandas as pd

    from mlflowkit.targets.contract import Contract
    from mlflowkit.targets.triton.settings import TritonSettings

__all__ = ["TritonDeployError", "candidate_name", "deploy", "infer"]

_WIRE_TYPES = {"float32": "FP32", "float64": "FP64", "int64": "INT64", "int32": "INT32", "string": "BYTES"}


class TritonDeployError(DeployError):
    """A deploy to Triton failed; the previous version was restored. The message carries Triton's error text."""


def deploy(
    settings: TritonSettings,
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
    settings: TritonSettings,
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


def _http_client(settings: TritonSettings) -> Any:
    import tritonclient.http as triton_http

    parsed = urlparse(settings.url)
    timeout = max(settings.ready_timeout, 10.0)
    return triton_http.InferenceServerClient(
        parsed.netloc, ssl=parsed.scheme == "https", connection_timeout=10.0, network_timeout=timeout
    )


def _grpc_client(settings: TritonSettings) -> Any:
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
