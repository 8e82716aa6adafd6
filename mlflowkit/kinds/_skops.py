"""Import ``skops.io`` without the torch that scikit-learn's estimator discovery would import on the way (~180 MB, seconds).

skops builds its list of trusted scikit-learn types at import with ``sklearn.utils.all_estimators()``,
which walks every sklearn package with ``pkgutil.walk_packages``; walking imports each package, and
``sklearn.externals.array_api_compat.torch`` imports torch itself. No estimator lives there, so the
trusted lists are the same without it (a test compares them); torch is kept out only for that import,
only in the importing thread, and only when nothing imported it before.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Sequence
from types import ModuleType

__all__ = ["skops_io"]

_SKIPPED = ("torch",)
"""Array libraries sklearn's array-API wrappers import; not one defines a scikit-learn estimator."""
_lock = threading.Lock()


class _Skip(importlib.abc.MetaPathFinder):
    """Refuses the skipped libraries to one thread; every other import (and thread) passes through."""

    def __init__(self, thread: int, skipped: frozenset[str]) -> None:
        self.thread, self.skipped = thread, skipped

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if threading.get_ident() == self.thread and fullname.partition(".")[0] in self.skipped:
            raise ModuleNotFoundError(f"{fullname} is not needed to import skops", name=fullname)
        return None


def skops_io() -> ModuleType:
    """The ``skops.io`` module; its first import here leaves torch out unless torch was already loaded."""
    with _lock:  # one import at a time: another thread never sees the module half imported
        if "skops.io" in sys.modules:
            return sys.modules["skops.io"]
        skip = _Skip(threading.get_ident(), frozenset(n for n in _SKIPPED if n not in sys.modules))
        sys.meta_path.insert(0, skip)
        try:
            return importlib.import_module("skops.io")
        finally:
            sys.meta_path.remove(skip)
