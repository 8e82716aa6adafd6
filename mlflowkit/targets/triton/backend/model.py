"""Serves model.onnx with ONNX Runtime through Triton's Python backend (``backend: python``).

The deploy copies this file, unchanged, into each version folder as ``model.py``. It runs inside the
Triton server's own environment, where mlflowkit is not installed: it imports only numpy, onnxruntime,
Triton's ``triton_python_backend_utils`` and (with a trusted key) cryptography.
"""

from __future__ import annotations

import json
import os
from typing import Any, NoReturn

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

# The manifest format of mlflowkit.edge.bundle (BUNDLE_FORMAT): a copy, since mlflowkit is not importable here.
BUNDLE_FORMAT = "mlflowkit/edge-bundle-v1"
TRUSTED_KEY_ENV = "MLFLOWKIT_TRITON_TRUSTED_KEY"
CANDIDATE_SUFFIX = "__candidate"

# BYTES tensors arrive as objects holding bytes; ONNX Runtime reads str (and would read bytes as "b'...'").
# Element by element, as fast as numpy's fixed-width casts here, and it keeps trailing NULs and never pads.
_text = np.frompyfunc(lambda v: v.decode("utf-8") if isinstance(v, bytes) else str(v), 1, 1)


def _error(exc: Exception) -> Any:
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(f"{type(exc).__name__}: {exc}"))


def _verify(folder: str, model: bytes, name: str, version: int) -> None:
    """With a trusted key in the server's environment, load only what that key signed (mlflowkit's manifest)."""
    key_path = os.environ.get(TRUSTED_KEY_ENV)
    if key_path is None:
        return
    if not key_path.strip():
        raise RuntimeError(f"mlflowkit refused {name} v{version}: {TRUSTED_KEY_ENV} is set but empty")
    import base64
    import hashlib

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    def refuse(why: str) -> NoReturn:
        raise RuntimeError(f"mlflowkit refused {name} v{version}: {why}")

    with open(key_path, "rb") as fh:
        key = serialization.load_pem_public_key(fh.read())
    if not isinstance(key, Ed25519PublicKey):
        refuse(f"{key_path} is not an ed25519 public key")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    trusted = hashlib.sha256(raw).hexdigest()[:16]
    try:
        with open(os.path.join(folder, "manifest.json"), "rb") as fh:
            manifest_bytes = fh.read()
        with open(os.path.join(folder, "manifest.sig"), "rb") as fh:
            signature = json.loads(fh.read())
    except FileNotFoundError as exc:
        refuse(f"{os.path.basename(str(exc.filename))} is missing; this server loads only signed versions")
    except ValueError as exc:
        refuse(f"manifest.sig cannot be read: {exc}")
    if signature.get("key_id") != trusted:
        refuse(f"it is signed by key {signature.get('key_id')}; this server trusts key {trusted}")
    try:
        key.verify(base64.b64decode(signature["signature"]), manifest_bytes)
    except (InvalidSignature, ValueError, KeyError):
        refuse(f"the signature by key {trusted} does not match manifest.json (it was changed after signing)")
    manifest = json.loads(manifest_bytes)
    if manifest.get("format") != BUNDLE_FORMAT or manifest.get("signed_by") != trusted:
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
            refuse(
                f"{file_name} has sha256 {digest[:16]}... ({len(data)} bytes); the manifest says "
                f"{expected['sha256'][:16]}... ({expected['size']} bytes)"
            )


class TritonPythonModel:
    """The model Triton's Python backend instantiates: one ONNX Runtime session per model instance."""

    def initialize(self, args: dict[str, str]) -> None:
        """Read (and, with a trusted key, verify) this version's model.onnx and open a session on it."""
        config = json.loads(args["model_config"])
        folder = os.path.join(args["model_repository"], args["model_version"])
        with open(os.path.join(folder, "model.onnx"), "rb") as fh:
            model = fh.read()  # read once: the bytes checked are the bytes loaded
        name = args["model_name"].removesuffix(CANDIDATE_SUFFIX)
        _verify(folder, model, name, int(args["model_version"]))
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.inputs: list[tuple[str, bool]] = [(t["name"], t["data_type"] == "TYPE_STRING") for t in config["input"]]
        self.outputs: list[str] = [t["name"] for t in config["output"]]

    def _feeds(self, request: Any) -> dict[str, Any]:
        feeds = {}
        for name, text in self.inputs:
            array = pb_utils.get_input_tensor_by_name(request, name).as_numpy()
            feeds[name] = _text(array) if text else array
        return feeds

    def execute(self, requests: list[Any]) -> list[Any]:
        """One response per request; requests the dynamic batcher put together run as one ONNX Runtime call."""
        responses: list[Any] = [None] * len(requests)
        batch = []  # (index, feeds) of the requests that could be read; a bad one fails alone
        for i, request in enumerate(requests):
            try:
                batch.append((i, self._feeds(request)))
            except Exception as exc:
                responses[i] = _error(exc)
        if len(batch) > 1:
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

    def _respond(self, values: list[Any]) -> Any:
        # String outputs go back as ONNX Runtime's str objects; the backend encodes them as UTF-8.
        tensors = [pb_utils.Tensor(name, value) for name, value in zip(self.outputs, values, strict=True)]
        return pb_utils.InferenceResponse(output_tensors=tensors)
