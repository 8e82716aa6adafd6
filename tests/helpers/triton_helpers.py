"""A real local Triton for tests (started by the test that needs it, stopped after), and a raw HTTP request to it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from mlflowkit.targets import triton_local
from mlflowkit.targets.contract import Contract, feeds


def local_triton(tmp_path_factory: pytest.TempPathFactory, label: str, **kw: Any) -> Iterator[triton_local.LocalTriton]:
    """Start a server in a fresh folder, yield it, and check that it stopped; for fixtures (``yield from``)."""
    folder = tmp_path_factory.mktemp(label)
    port = triton_local.free_port
    server = triton_local.up(folder, http_port=port(), grpc_port=port(), timeout=300, **kw)
    try:
        yield server
    finally:
        assert triton_local.down(folder)
        assert triton_local.status(folder) is None


def ask_http(server: triton_local.LocalTriton, name: str, contract: Contract, rows: pd.DataFrame) -> Any:
    """Send ``rows`` to ``name`` over HTTP with no version (whatever serves); the client's result."""
    import tritonclient.http as triton_http

    http = triton_http.InferenceServerClient(server.http_url.removeprefix("http://"))
    tensors = []
    for input_name, array in feeds(contract, rows).items():
        tensor = triton_http.InferInput(input_name, list(array.shape), "BYTES" if array.dtype == object else "FP32")
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    return http.infer(name, tensors)
