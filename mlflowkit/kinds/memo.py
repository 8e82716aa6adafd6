"""The fitted models a run stored, kept in memory by content hash so that its later steps need not rebuild them."""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["ModelMemo"]


class ModelMemo:
    """The models a run stored, kept in memory by the sha256 of their skops bytes, so its later steps skip the rebuild.

    A step reading a model still reads the stored bytes, checks their hash and judges the types they name
    (:func:`~mlflowkit.kinds.model_files.load_model`); only then, when the run itself wrote those very bytes
    from an object it holds, that object is used instead of one rebuilt from them. The runner drops a
    model once no step left needs it.
    """

    def __init__(self) -> None:
        self._models: dict[str, Any] = {}
        self._lock = threading.Lock()

    def keep(self, sha256: str, model: Any) -> None:
        """Remember ``model`` as the object whose skops bytes hash to ``sha256``."""
        with self._lock:
            self._models[sha256] = model

    def get(self, sha256: str) -> Any | None:
        """The object stored under ``sha256``, or None."""
        with self._lock:
            return self._models.get(sha256)

    def keep_only(self, wanted: set[str]) -> None:
        """Forget every model whose hash is not in ``wanted``."""
        with self._lock:
            self._models = {k: v for k, v in self._models.items() if k in wanted}

    def __len__(self) -> int:
        with self._lock:
            return len(self._models)
