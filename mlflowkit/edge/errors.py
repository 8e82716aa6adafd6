"""The edge errors: a refused bundle (with a machine-readable reason) and invalid input to the runner.

MlflowkitError
└── EdgeError           something on the edge side failed (no bundle installed, a lock held, ...)
    ├── BundleRefused   a bundle failed verification or its requirements; ``reason`` says which
    └── InputError      a request's inputs do not match the model's contract; ``issues`` lists each
"""

from __future__ import annotations

from typing import Any

from mlflowkit.errors import MlflowkitError

__all__ = ["REASONS", "BundleRefused", "EdgeError", "InputError"]

REASONS = {
    "unsigned": "the bundle has no signature (manifest.sig is missing)",
    "wrong-key": "the bundle was signed by another key than the one this device trusts",
    "bad-signature": "the signature does not match the manifest (the manifest or the signature was changed)",
    "missing-file": "a file the manifest lists is not in the bundle",
    "modified-file": "a file's sha256 or size differs from the manifest's",
    "extra-file": "the bundle holds a file the manifest does not list",
    "malformed": "the manifest or contract cannot be read",
    "requirements": "this device's ONNX Runtime cannot run the bundle (version or opset)",
    "mismatch": "the bundle is not the model or version the index named",
}
"""Why a bundle is refused: each verification failure has its own reason code."""


class EdgeError(MlflowkitError):
    """An edge operation failed; what served before serves still."""


class BundleRefused(EdgeError):
    """A bundle failed verification; it was not installed (``reason`` is a key of :data:`REASONS`)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"bundle refused ({reason}): {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.reason, self.detail))


class InputError(EdgeError):
    """A request's inputs do not fit the model's contract; ``issues`` holds one dict per problem (all at once)."""

    def __init__(self, issues: list[dict[str, Any]], status: int = 422) -> None:
        lines = "; ".join(i["message"] for i in issues)
        super().__init__(f"invalid input: {lines}")
        self.issues = issues
        self.status = status

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.issues, self.status))
