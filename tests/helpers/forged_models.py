"""Hand-made skops files a store or registry writer could plant: each names an allowed-looking type that runs code.

skops rebuilds an object from the names in a file's ``schema.json``; these files are written by hand (as an
attacker would), so that the reader's judge, not skops' writer, is what is tested. Each takes a marker path
(a file the payload creates, or a folder it removes) so that a test can tell whether it ran.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any


def _node(value: Any) -> dict[str, Any]:
    """The skops node of a plain value (lists, tuples, dicts of strings and numbers), as skops writes it."""
    import skops.io as sio

    data = sio.dumps(value)
    node: dict[str, Any] = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("schema.json"))
    return {k: v for k, v in node.items() if k not in {"protocol", "_skops_version"}}


def _file(module: str, cls: str, loader: str, content: Any) -> bytes:
    import skops

    top = {"__class__": cls, "__module__": module, "__loader__": loader, "content": _node(content), "__id__": 1}
    top |= {"protocol": 2, "_skops_version": skops.__version__}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("schema.json", json.dumps(top))
    return buf.getvalue()


def popen_model(marker: str) -> bytes:
    """A file that calls ``numpy.distutils.fcompiler.gnu.Popen`` (which is ``subprocess.Popen``) to touch ``marker``.

    The name lies under ``numpy``; the class it finds there is imported from ``subprocess``.
    """
    return _file("numpy.distutils.fcompiler.gnu", "Popen", "ConstructorFromReduceNode", (["touch", marker],))


def datasource_model(folder: str, module: str = "numpy.lib.npyio") -> bytes:
    """A file that rebuilds numpy's ``DataSource`` with state that makes its ``__del__`` remove ``folder``."""
    return _file(module, "DataSource", "ObjectNode", {"_istmpdest": True, "_destpath": folder})


def memmap_model(path: str) -> bytes:
    """A file that calls ``numpy.memmap(path, mode="w+")``: creating (or truncating) ``path``."""
    return _file("numpy", "memmap", "ConstructorFromReduceNode", (path, "uint8", "w+", 0, (16,)))
