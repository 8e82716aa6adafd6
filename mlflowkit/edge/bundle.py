"""The edge bundle: what it holds, how it is built and signed, and how a device verifies it.

A bundle is one folder per version::

    model.onnx       the model
    contract.json    inputs, outputs, labels, preprocessing metadata and the input policy (NaN handling)
    lineage.json     model name and version, spec hash, metrics, gate verdict, run id (from the registry)
    manifest.json    format, model, version, sha256 and size of every file above, requirements, signer
    manifest.sig     ed25519 signature over manifest.json's exact bytes (canonical JSON)

Verification refuses, each with its own reason (see :data:`mlflowkit.edge.errors.REASONS`): a missing
signature, a signature by another key, a signature that does not match, a missing, modified or extra
file, and a runtime that cannot meet the requirements. Requirements are checked before any model is
loaded.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlflowkit.edge.errors import BundleRefused
from mlflowkit.edge.signing import canonical_json, key_id, sign, verify_signature

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "BUNDLE_FORMAT",
    "CONTRACT",
    "INDEX",
    "INDEX_FORMAT",
    "MANIFEST",
    "SIGNATURE",
    "build_bundle",
    "check_requirements",
    "min_ort_for",
    "runtime_opsets",
    "sha256_file",
    "updated_index",
    "verify_bundle",
    "version_tuple",
]

BUNDLE_FORMAT = "mlflowkit/edge-bundle-v1"
INDEX_FORMAT = "mlflowkit/edge-index-v1"
MANIFEST, SIGNATURE, CONTRACT, MODEL, LINEAGE = "manifest.json", "manifest.sig", "contract.json", "model.onnx", "lineage.json"
INDEX = "index.json"
_CHUNK = 1 << 16

# The first ONNX Runtime release that implements each default-domain opset (ORT's compatibility table).
# A newer opset than this table knows takes the publisher's own ORT version: known to run the model.
_ORT_FOR_OPSET = {11: "1.0", 12: "1.3", 13: "1.6", 14: "1.8", 15: "1.10", 16: "1.11", 17: "1.12", 18: "1.14", 19: "1.15",
                  20: "1.17", 21: "1.18"}  # fmt: skip


def version_tuple(text: str) -> tuple[int, ...]:
    """``"1.32.0"`` -> ``(1, 32, 0)``; suffixes such as ``.dev0`` or ``+cpu`` are ignored."""
    match = re.match(r"^\s*v?(\d+(?:\.\d+)*)", text)
    if not match:
        raise ValueError(f"not a version number: {text!r}")
    return tuple(int(p) for p in match.group(1).split("."))


def min_ort_for(opset: Mapping[str, int], publisher_ort: str) -> str:
    """The oldest ONNX Runtime that runs a model of ``opset`` (the default domain decides)."""
    default = int(opset.get("", 0))
    if default <= 10:
        return "1.0"
    return _ORT_FOR_OPSET.get(default, publisher_ort)


def build_bundle(
    *,
    name: str,
    model: str,
    version: int,
    onnx: bytes,
    contract: Mapping[str, Any],
    lineage: Mapping[str, Any],
    min_ort_version: str,
    opset: Mapping[str, int],
    private_key: Ed25519PrivateKey,
    channel: str | None = None,
) -> dict[str, bytes]:
    """Every file of a signed bundle, by name (``manifest.json`` and ``manifest.sig`` included).

    Args:
        name: the model's name at the edge (the target's ``model_name``, else the registered name).
        model: the registered model's name.
        version: the registry's version number.
        onnx: model.onnx's bytes.
        contract: contract.json's content.
        lineage: lineage.json's content (also summarized in the manifest).
        min_ort_version: the oldest ONNX Runtime that may load the model.
        opset: opset per domain ('' is the default domain).
        private_key: the publisher's ed25519 key.
        channel: the channel it is first published to (informative; channels live in the index).
    """
    files = {
        MODEL: onnx,
        CONTRACT: json.dumps(contract, sort_keys=True, indent=2, default=str).encode(),
        LINEAGE: json.dumps(lineage, sort_keys=True, indent=2, default=str).encode(),
    }
    manifest = {
        "format": BUNDLE_FORMAT,
        "name": name,
        "model": model,
        "version": version,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "published_to": channel,
        "files": {n: {"sha256": hashlib.sha256(b).hexdigest(), "size": len(b)} for n, b in sorted(files.items())},
        "requirements": {"min_ort_version": min_ort_version, "opset": dict(sorted(opset.items()))},
        "lineage": {k: lineage[k] for k in ("model", "version", "spec_hash", "metrics", "verdict", "run_id") if k in lineage},
        "signed_by": key_id(private_key.public_key()),
    }
    files[MANIFEST] = canonical_json(manifest)
    files[SIGNATURE] = sign(private_key, files[MANIFEST])
    return files


def verify_bundle(
    names: Iterable[str],
    read: Callable[[str], bytes],
    digest: Callable[[str], tuple[str, int]],
    public_key: Ed25519PublicKey | None,
    *,
    name: str | None = None,
    version: int | None = None,
) -> dict[str, Any]:
    """Check a bundle completely; its manifest.

    Args:
        names: every file in the bundle folder (relative paths, subfolders' files included).
        read: reads a small file (the manifest, the signature).
        digest: sha256 hex and size of a file, read in chunks.
        public_key: the trusted key; None checks integrity only (a bundle that was verified when installed).
        name: the model name the index promised, if any.
        version: the version the index promised, if any.

    Raises:
        BundleRefused: with the reason of the first check that failed.
    """
    present = set(names)
    if MANIFEST not in present:
        raise BundleRefused("missing-file", f"{MANIFEST} is missing; the bundle cannot be checked")
    manifest_bytes = read(MANIFEST)
    if public_key is not None:
        verify_signature(
            public_key, manifest_bytes, read(SIGNATURE) if SIGNATURE in present else None, signed_by=_signer(manifest_bytes)
        )
    try:
        manifest = json.loads(manifest_bytes)
        listed: dict[str, dict[str, Any]] = manifest["files"]
        if manifest.get("format") != BUNDLE_FORMAT:
            raise ValueError(f"format {manifest.get('format')!r} is not {BUNDLE_FORMAT}")
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleRefused("malformed", f"{MANIFEST} cannot be read: {exc}") from None
    if name is not None and manifest.get("name") != name:
        raise BundleRefused("mismatch", f"the bundle is model {manifest.get('name')!r}; the index named {name!r}")
    if version is not None and manifest.get("version") != version:
        raise BundleRefused("mismatch", f"the bundle is v{manifest.get('version')}; the index named v{version}")
    missing = sorted(set(listed) - present)
    if missing:
        raise BundleRefused("missing-file", f"{', '.join(missing)} listed in the manifest but not in the bundle")
    for file_name, expected in sorted(listed.items()):
        sha, size = digest(file_name)
        if (sha, size) != (expected["sha256"], expected["size"]):
            raise BundleRefused(
                "modified-file",
                f"{file_name} has sha256 {sha[:16]}… ({size} bytes); the manifest says {expected['sha256'][:16]}… "
                f"({expected['size']} bytes)",
            )
    extra = sorted(present - set(listed) - {MANIFEST, SIGNATURE})
    if extra:
        raise BundleRefused("extra-file", f"{', '.join(extra)} not listed in the manifest")
    return dict(manifest)


def _signer(manifest_bytes: bytes) -> str:
    try:
        return str(json.loads(manifest_bytes).get("signed_by", ""))
    except (ValueError, AttributeError):
        return ""


def sha256_file(path: str) -> tuple[str, int]:
    """SHA-256 hex and size of a local file, read in chunks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def runtime_opsets() -> tuple[str, dict[str, int]]:
    """The installed ONNX Runtime's version and the highest opset it implements per domain."""
    import onnxruntime as ort
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_c

    highest: dict[str, int] = {}
    for kernel in ort_c.get_all_opkernel_def():
        domain = "" if kernel.domain == "ai.onnx" else kernel.domain
        highest[domain] = max(highest.get(domain, 0), int(kernel.version_range[0]))
    return str(ort.__version__), highest


def check_requirements(manifest: Mapping[str, Any], runtime: tuple[str, dict[str, int]] | None = None) -> None:
    """Refuse a bundle this device's ONNX Runtime cannot run (too old, or an opset it does not implement).

    Raises:
        BundleRefused: reason ``requirements``, naming what the bundle needs and what is installed.
    """
    version, opsets = runtime or runtime_opsets()
    needs = manifest.get("requirements") or {}
    minimum = str(needs.get("min_ort_version") or "0")
    try:
        too_old = version_tuple(version) < version_tuple(minimum)
    except ValueError as exc:
        raise BundleRefused("malformed", f"requirements: {exc}") from None
    if too_old:
        raise BundleRefused("requirements", f"the bundle needs ONNX Runtime >= {minimum}; this device has {version}")
    for domain, wanted in sorted((needs.get("opset") or {}).items()):
        have = opsets.get(domain)
        if domain in ("", "ai.onnx", "ai.onnx.ml") and (have is None or int(wanted) > have):
            label = domain or "ai.onnx"
            raise BundleRefused(
                "requirements",
                f"the model uses {label} opset {wanted}; ONNX Runtime {version} on this device implements up to {have}",
            )


def updated_index(
    index: Mapping[str, Any] | None, *, name: str, channel: str, version: int, manifest_sha256: str, manifest: Mapping[str, Any]
) -> dict[str, Any]:
    """The publication index after ``version`` became the current bundle of ``channel``.

    The index lists every published version (with its manifest's sha256 and requirements) and, per
    channel, the current version, the one before it, and the history of changes.
    """
    doc: dict[str, Any] = (
        json.loads(json.dumps(index)) if index else {"format": INDEX_FORMAT, "name": name, "versions": {}, "channels": {}}
    )
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    doc["versions"][str(version)] = {
        "manifest_sha256": manifest_sha256,
        "created_at": manifest.get("created_at"),
        "requirements": manifest.get("requirements", {}),
    }
    entry = doc["channels"].setdefault(channel, {"current": None, "previous": None, "history": []})
    if entry["current"] != version:
        entry["previous"] = entry["current"]
        entry["current"] = version
        entry["history"].append({"version": version, "previous": entry["previous"], "at": now})
    doc["updated_at"] = now
    return doc
