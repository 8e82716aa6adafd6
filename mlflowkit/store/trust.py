"""Who the model registry trusts: the key that signs new versions, and the public keys signatures must verify against.

A version's ``version.json`` (its files' SHA-256, its lineage) is signed at registration into
``version.sig`` (ed25519, the signature files of `mlflowkit._ed25519`, as edge bundles use), so a registry writer who
replaces a file and its digest cannot make the version verify again. Keys never live in the store:

- ``MLFLOWKIT_SIGNING_KEY``: the private key that signs (a PEM file's path, or the PEM text), held by
  whatever registers versions (CI);
- ``MLFLOWKIT_TRUSTED_KEYS``: the public keys a signature must verify against (PEM files separated by
  ``os.pathsep``, or one PEM text), held by whoever loads, shows or promotes versions;
- a policy's ``registry: {require_signing: true, trusted_keys: [...]}`` adds trusted keys (files next to
  the policy) and makes signing mandatory (`mlflowkit.policy.registry_trust` reads it).

With trusted keys (or a signing key, whose public half is then trusted), every version is checked
before it is read, shown or promoted, and an unsigned or forged one is refused, naming the file.
See docs/threat-model.md for where keys live and how to rotate them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlflowkit._ed25519 import KeyFileError, key_id, private_key_from, public_key_from, read_signature, sign
from mlflowkit.errors import RegistryError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = ["SIGNATURE_FILE", "SIGNING_KEY_ENV", "TRUSTED_KEYS_ENV", "Signature", "Trust"]

SIGNING_KEY_ENV = "MLFLOWKIT_SIGNING_KEY"
TRUSTED_KEYS_ENV = "MLFLOWKIT_TRUSTED_KEYS"
SIGNATURE_FILE = "version.sig"
_INSTALL = "signing needs the cryptography package: pip install 'mlflowkit[edge]'"


@dataclass(frozen=True)
class Signature:
    """What a version's signature says, as checked against the trusted keys.

    Attributes:
        state: ``verified`` (by a trusted key), ``unchecked`` (signed, but no key is trusted here to check
            it), or ``unsigned``.
        key_id: the id of the key that signed it (``""`` when unsigned).
    """

    state: str
    key_id: str = ""

    def describe(self) -> str:
        """One line for ``models show``."""
        if self.state == "verified":
            return f"signed by key {self.key_id}, verified"
        if self.state == "unchecked":
            return f"signed by key {self.key_id}, not verified (no trusted key configured: set {TRUSTED_KEYS_ENV})"
        return "unsigned (nothing vouches for its files and metrics but the registry's own digests)"


def _private(source: str, where: str) -> Ed25519PrivateKey:
    try:
        return private_key_from(source)
    except KeyFileError as exc:
        raise RegistryError(f"{where}: {exc}") from None
    except ImportError as exc:  # cryptography missing
        raise RegistryError(f"{_INSTALL} ({exc})") from None


def _public(source: str, where: str) -> Ed25519PublicKey:
    try:
        return public_key_from(source)
    except KeyFileError as exc:
        raise RegistryError(f"{where}: {exc}") from None
    except ImportError as exc:
        raise RegistryError(f"{_INSTALL} ({exc})") from None


@dataclass(frozen=True)
class Trust:
    """The registry's keys: one to sign new versions with (optional), and those whose signatures it accepts.

    Attributes:
        signer: the private key that signs new versions, or None.
        trusted: key id -> public key; a non-empty map means every version read must verify against one.
        required: a policy requires signed versions (registering without a signer is refused).
        source: where the trusted keys came from, for messages.
    """

    signer: Ed25519PrivateKey | None = None
    trusted: dict[str, Ed25519PublicKey] | None = None
    required: bool = False
    source: str = ""

    @property
    def enforcing(self) -> bool:
        """True when every version must carry a signature by a trusted key."""
        return bool(self.trusted) or self.required

    @classmethod
    def load(
        cls, *, required: bool = False, keys: Sequence[tuple[str, str]] = (), environ: Mapping[str, str] | None = None
    ) -> Trust:
        """The trust in force: ``MLFLOWKIT_SIGNING_KEY`` and ``MLFLOWKIT_TRUSTED_KEYS``, plus ``keys``.

        Args:
            required: signed versions are required (a policy's ``registry.require_signing``).
            keys: more trusted public keys, as (PEM path or text, where it was named for messages).
            environ: the environment to read (default: ``os.environ``).

        Raises:
            RegistryError: a key cannot be read, or is not an ed25519 key.
        """
        env = os.environ if environ is None else environ
        signer = None
        if text := env.get(SIGNING_KEY_ENV, "").strip():
            signer = _private(text, SIGNING_KEY_ENV)
        sources: list[tuple[str, str]] = []
        if text := env.get(TRUSTED_KEYS_ENV, "").strip():
            parts = [text] if "-----BEGIN" in text else [p for p in text.split(os.pathsep) if p.strip()]
            sources += [(p, TRUSTED_KEYS_ENV) for p in parts]
        sources += list(keys)
        trusted: dict[str, Ed25519PublicKey] = {}
        for source, where in sources:
            public = _public(source, where)
            trusted[key_id(public)] = public
        if signer is not None and not trusted:  # one key for both: what we sign, we can check
            trusted[key_id(signer.public_key())] = signer.public_key()
            sources.append(("", SIGNING_KEY_ENV))
        shown = sorted({where for _, where in sources})
        return cls(signer=signer, trusted=trusted, required=required, source=", ".join(shown))

    def sign(self, manifest: bytes) -> bytes | None:
        """The signature file for ``manifest`` (a version.json's bytes), or None without a signer."""
        if self.signer is None:
            return None
        return sign(self.signer, manifest)

    def check(self, manifest: bytes, signature: bytes | None, *, what: str, sig_where: str, where: str) -> Signature:
        """What ``signature`` says about ``manifest``; refuses when this trust is enforcing and it does not verify.

        Args:
            manifest: the version.json bytes, exactly as stored.
            signature: the version.sig bytes, or None when there is none.
            what: the version, for messages (``churn v3``).
            sig_where: where the signature is (path or URI), for messages.
            where: where the manifest is (path or URI), for messages.

        Raises:
            RegistryError: enforcing, and the version is unsigned, signed by an untrusted key, or its
                signature does not match its manifest (the file was changed after signing).
        """
        from cryptography.exceptions import InvalidSignature

        if signature is None:
            if self.enforcing:
                raise RegistryError(
                    f"{what} is not signed ({sig_where} is missing); this registry accepts only versions signed by "
                    f"a trusted key ({self._trusted_shown()}). Sign it after review (mlflowkit models sign) or re-register it"
                )
            return Signature("unsigned")
        try:
            signed_by, raw = read_signature(signature)
        except ValueError as exc:
            if not self.enforcing:
                return Signature("unchecked", "?")
            raise RegistryError(f"{what}: its signature {sig_where} cannot be read ({exc}); refused") from None
        if not self.enforcing:
            return Signature("unchecked", signed_by)
        key = (self.trusted or {}).get(signed_by)
        if key is None:
            raise RegistryError(
                f"{what} is signed by key {signed_by} ({sig_where}), which is not trusted here ({self._trusted_shown()}); refused"
            )
        try:
            key.verify(raw, manifest)
        except InvalidSignature:
            raise RegistryError(
                f"{what} is forged or damaged: {where} does not match its signature by key {signed_by} ({sig_where}); "
                "it was changed after it was signed. Refused"
            ) from None
        return Signature("verified", signed_by)

    def _trusted_shown(self) -> str:
        ids = ", ".join(sorted(self.trusted or {})) or "none"
        return f"trusted keys: {ids}; from {self.source or TRUSTED_KEYS_ENV}"
