"""Ed25519 keys and signatures for edge bundles (the ``cryptography`` package, offline, no key server).

The publisher signs the bundle's manifest (canonical JSON: sorted keys, no spaces, UTF-8); the device
holds only the public key. Keys are PEM files: PKCS#8 for the private key (written 0600), SubjectPublicKeyInfo
for the public one. A key's id is the first 16 hex digits of the SHA-256 of its raw public bytes; the
manifest names the id of the key that signed it, so that "signed by another key" and "signature does
not match" are told apart.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from mlflowkit._ed25519 import KeyFileError, canonical_json, key_id, private_key_from, public_key_from, read_signature, sign
from mlflowkit.edge.errors import BundleRefused, EdgeError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "PUBLIC_KEY_ENV",
    "canonical_json",
    "generate_keypair",
    "key_id",
    "load_private_key",
    "load_public_key",
    "sign",
    "verify_signature",
]

PUBLIC_KEY_ENV = "MLFLOWKIT_EDGE_PUBLIC_KEY"
"""The device's trusted public key when ``--public-key`` is not given: a PEM file's path or the PEM text."""


def generate_keypair(private_path: Path, public_path: Path, *, overwrite: bool = False) -> str:
    """Write a new ed25519 keypair as PEM files (the private one readable by its owner only); its key id.

    Raises:
        EdgeError: a file exists already and ``overwrite`` is false.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    for path in (private_path, public_path):
        if path.exists() and not overwrite:
            raise EdgeError(f"{path} exists; pass --force to replace it (bundles signed with the old key stop verifying)")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    private_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.parent.mkdir(parents=True, exist_ok=True)
    if private_path.exists():
        private_path.unlink()
    # Created 0600 from the start: the key is never readable by others, not even for a moment.
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_pem)
    public_path.write_bytes(public_pem)
    return key_id(key.public_key())


def load_private_key(source: str) -> Ed25519PrivateKey:
    """An ed25519 private key from a PEM file's path or PEM text.

    Raises:
        EdgeError: unreadable, not PEM, encrypted, or not an ed25519 key.
    """
    try:
        return private_key_from(source)
    except KeyFileError as exc:
        raise EdgeError(str(exc)) from None


def load_public_key(source: str | None) -> Ed25519PublicKey:
    """The trusted ed25519 public key: ``source`` (a path or PEM text), else ``$MLFLOWKIT_EDGE_PUBLIC_KEY``.

    Raises:
        EdgeError: no key given, unreadable, or not an ed25519 public key.
    """
    source = source or os.environ.get(PUBLIC_KEY_ENV)
    if not source:
        raise EdgeError(f"no public key: pass --public-key FILE or set {PUBLIC_KEY_ENV}")
    try:
        return public_key_from(source)
    except KeyFileError as exc:
        raise EdgeError(str(exc)) from None


def verify_signature(public_key: Ed25519PublicKey, message: bytes, signature_file: bytes | None, *, signed_by: str) -> None:
    """Check ``signature_file`` (from :func:`sign`) over ``message`` with the trusted key.

    Args:
        public_key: the key the device trusts.
        message: the manifest's bytes, exactly as stored.
        signature_file: manifest.sig's bytes, or None when it is missing.
        signed_by: the key id the manifest says signed it.

    Raises:
        BundleRefused: ``unsigned``, ``wrong-key`` or ``bad-signature``.
    """
    from cryptography.exceptions import InvalidSignature

    if signature_file is None:
        raise BundleRefused("unsigned", "manifest.sig is missing; an unsigned bundle is never installed")
    trusted = key_id(public_key)
    try:
        sig_key, raw = read_signature(signature_file)
    except ValueError as exc:
        raise BundleRefused("bad-signature", f"manifest.sig cannot be read: {exc}") from None
    if sig_key != trusted:
        raise BundleRefused("wrong-key", f"the bundle is signed by key {sig_key}; this device trusts key {trusted}")
    try:
        public_key.verify(raw, message)
        if signed_by != trusted:  # signed by us, yet the manifest names another signer: not what we signed
            raise InvalidSignature
    except InvalidSignature:
        raise BundleRefused(
            "bad-signature", f"the signature by key {trusted} does not match manifest.json (it was changed after signing)"
        ) from None
