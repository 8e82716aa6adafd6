"""Ed25519 primitives shared by edge bundles and registry versions: canonical JSON, PEM keys, key ids, signature files.

Built on the ``cryptography`` package, imported when a function needs it. A signature file is a small JSON
naming the algorithm, the signing key's id and the base64 signature; a key's id is the first 16 hex digits
of the SHA-256 of its raw public bytes. A key that cannot be used is a `KeyFileError` (a `ValueError`) whose message says why.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "KeyFileError",
    "canonical_json",
    "key_id",
    "private_key_from",
    "public_key_from",
    "read_signature",
    "sign",
]


class KeyFileError(ValueError):
    """A key cannot be read, or is not an ed25519 key of the kind asked for."""


def canonical_json(obj: Any) -> bytes:
    """The one byte form of ``obj`` that is signed: sorted keys, no whitespace, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _pem(source: str) -> tuple[bytes, str]:
    """PEM bytes from a path or from PEM text; and how to name the source in messages."""
    if "-----BEGIN" in source:
        return source.encode(), "the PEM text given"
    path = Path(source).expanduser()
    try:
        return path.read_bytes(), str(path)
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror or exc}") from None


def private_key_from(source: str) -> Ed25519PrivateKey:
    """An ed25519 private key from a PEM file's path or PEM text.

    Raises:
        KeyFileError: unreadable, not PEM, encrypted, or not an ed25519 key.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    data, where = _pem(source)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{where} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{where} holds a {type(key).__name__}; signing keys are ed25519 (mlflowkit store keygen)")
    return key


def public_key_from(source: str) -> Ed25519PublicKey:
    """An ed25519 public key from a PEM file's path or PEM text.

    Raises:
        KeyFileError: unreadable, not PEM, or not an ed25519 public key.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    data, where = _pem(source)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{where} is not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{where} holds a {type(key).__name__}, not an ed25519 public key")
    return key


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short, stable name for a public key: 16 hex digits of the SHA-256 of its raw bytes."""
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign(private_key: Ed25519PrivateKey, message: bytes) -> bytes:
    """The detached signature file's bytes: a small JSON naming the algorithm, the key id and the base64 signature."""
    signature = base64.b64encode(private_key.sign(message)).decode()
    return canonical_json({"algorithm": "ed25519", "key_id": key_id(private_key.public_key()), "signature": signature})


def read_signature(signature_file: bytes) -> tuple[str, bytes]:
    """(the signing key's id, the raw signature) from a signature file made by :func:`sign`.

    Raises:
        ValueError: the file is not such a signature file.
    """
    try:
        doc = json.loads(signature_file)
        return str(doc["key_id"]), base64.b64decode(doc["signature"], validate=True)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from None
