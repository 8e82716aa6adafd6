"""``mlflowkit edge serve``: a small HTTP server (stdlib ``ThreadingHTTPServer``) in front of the runner.

    POST /predict    {"inputs": {"col": [..], ...}} or {"records": [{...}, ...]} or [{...}, ...] -> predictions
    GET  /health     {"status": "ok", "name", "version", ...}; 503 while no bundle is loaded
    GET  /contract   the bundle's contract.json

Every bad request gets a 4xx JSON error ``{"error": {"code", "message", "details"}}``: malformed JSON
(400), a body over the limit (413), no Content-Length (411), inputs that do not fit the contract (422).
The server follows the device's ``current`` link: when a pull or rollback moves it (or on SIGHUP), the
next request loads the new bundle; a bundle that fails to load is refused and the old one keeps serving.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflowkit._jsonsafe import finite
from mlflowkit.edge.errors import InputError

if TYPE_CHECKING:
    from mlflowkit.edge.device import Device
    from mlflowkit.edge.predlog import PredictionLog
    from mlflowkit.edge.runner import Runner

__all__ = ["DEFAULT_MAX_BODY", "EdgeServer", "serve"]

DEFAULT_MAX_BODY = 1 << 20
_DRAIN_LIMIT = 64 << 20  # bodies up to this size are read and dropped, so the client gets its 413 cleanly


class _Holder:
    """The loaded runner, swapped when the device's ``current`` changes; requests keep the one they started with."""

    def __init__(self, device: Device, *, threads: int, max_rows: int) -> None:
        self.device = device
        self.threads = threads
        self.max_rows = max_rows
        self.runner: Runner | None = None
        self.loaded_from: Path | None = None
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._force = threading.Event()

    def request_reload(self) -> None:
        self._force.set()

    def get(self) -> Runner | None:
        current = self.device.current()
        if current == self.loaded_from and not self._force.is_set():
            return self.runner
        with self._lock:
            current = self.device.current()
            if current != self.loaded_from or self._force.is_set():
                self._force.clear()
                self._load(current)
        return self.runner

    def _load(self, folder: Path | None) -> None:
        from mlflowkit.edge.runner import Runner

        if folder is None:
            return
        try:
            runner = Runner(folder, threads=self.threads, max_rows=self.max_rows)
        except Exception as exc:  # EdgeError, or files that went away mid-load: refuse it the same way
            # Keep serving what was loaded; remember the folder so that one bad bundle is not retried per request.
            self.last_error = str(exc)
            self.loaded_from = folder
            print(f"edge serve: {folder.name} refused, still serving the previous bundle: {exc}", file=sys.stderr, flush=True)
            return
        self.runner, self.loaded_from, self.last_error = runner, folder, None
        print(f"edge serve: serving {runner.name} v{runner.version} ({folder.name})", file=sys.stderr, flush=True)


class _Handler(BaseHTTPRequestHandler):
    server: EdgeServer
    protocol_version = "HTTP/1.1"
    server_version = "mlflowkit-edge"
    timeout = 60  # a client that sends less than its Content-Length does not hold a thread for ever

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's algorithm and the client's
        # delayed ACK hold every small response back by ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.access_log:
            super().log_message(format, *args)

    def _send(self, status: int, body: Any, *, close: bool = False) -> None:
        try:
            data = json.dumps(body, default=str, allow_nan=False).encode()
        except ValueError:  # a model output NaN or infinity: JSON has neither, so they go out as null
            data = json.dumps(finite(body), default=str, allow_nan=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, code: str, message: str, details: Any = None, *, close: bool = False) -> None:
        body: dict[str, Any] = {"error": {"code": code, "message": message}}
        if details is not None:
            body["error"]["details"] = details
        self._send(status, body, close=close)

    def do_GET(self) -> None:
        runner = self.server.holder.get()
        if self.path == "/health":
            if runner is None:
                self._error(503, "no_bundle", "no bundle is loaded", self.server.holder.last_error)
                return
            self._send(200, {
                "status": "ok", "name": runner.name, "version": runner.version, "bundle": runner.folder.name,
                "nan_policy": runner.nan_policy, "last_refused": self.server.holder.last_error,
            })  # fmt: skip
        elif self.path == "/contract":
            if runner is None:
                self._error(503, "no_bundle", "no bundle is loaded")
                return
            self._send(200, {"name": runner.name, "version": runner.version, "contract": runner.contract})
        elif self.path == "/predict":
            self._error(405, "method_not_allowed", "use POST /predict")
        else:
            self._error(404, "not_found", f"no route {self.path}; routes: POST /predict, GET /health, GET /contract")

    def do_POST(self) -> None:  # noqa: PLR0911  (each refusal answers and returns)
        if self.path != "/predict":
            self._error(404 if self.path not in ("/health", "/contract") else 405, "not_found", f"no POST route {self.path}")
            return
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self._error(
                411, "length_required", "send the body with a Content-Length (chunked bodies are not accepted)", close=True
            )
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
            if length < 0:
                raise ValueError
        except ValueError:
            self._error(411, "length_required", "a Content-Length header is required", close=True)
            return
        limit = self.server.max_body
        if length > limit:
            if length <= _DRAIN_LIMIT:  # read and drop it, so the client is not cut off mid-send
                remaining = length
                while remaining > 0:
                    chunk = self.rfile.read(min(remaining, 1 << 16))
                    if not chunk:
                        break
                    remaining -= len(chunk)
            self._error(413, "body_too_large", f"the body is {length} bytes; the limit is {limit} bytes", close=True)
            return
        body = self.rfile.read(length)
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            self._error(400, "invalid_json", f"the body is not valid JSON: {exc}")
            return
        except RecursionError:
            self._error(400, "invalid_json", "the body nests too deeply")
            return
        runner = self.server.holder.get()
        if runner is None:
            self._error(503, "no_bundle", "no bundle is loaded", self.server.holder.last_error)
            return
        try:
            result = runner.predict(payload)
        except InputError as exc:
            self._error(exc.status, "invalid_input", str(exc), exc.issues)
            return
        except RecursionError:
            self._error(400, "invalid_json", "the body nests too deeply")
            return
        except Exception as exc:  # the model itself failed on valid input: a server error, still a clear answer
            self._error(500, "model_error", f"{type(exc).__name__}: {exc}")
            return
        self._send(200, result)
        if self.server.prediction_log is not None:
            self.server.prediction_log.record(payload, result)


class EdgeServer(ThreadingHTTPServer):
    """The HTTP server: one thread per connection, one shared runner holder."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        holder: _Holder,
        *,
        max_body: int,
        access_log: bool,
        prediction_log: PredictionLog | None = None,
    ) -> None:
        super().__init__(address, _Handler)
        self.holder = holder
        self.max_body = max_body
        self.access_log = access_log
        self.prediction_log = prediction_log


def serve(
    device: Device,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    max_body: int = DEFAULT_MAX_BODY,
    max_rows: int = 100_000,
    threads: int = 1,
    access_log: bool = False,
    prediction_log: PredictionLog | None = None,
    ready: Any = None,
) -> None:
    """Serve the device's current bundle until interrupted (SIGINT/SIGTERM); SIGHUP reloads it.

    Args:
        device: the device folder whose ``current`` bundle serves.
        host: the address to listen on.
        port: the port (0 picks a free one; ``ready`` receives the server to learn it).
        max_body: largest request body in bytes.
        max_rows: most rows per request.
        threads: ONNX Runtime intra-op threads.
        access_log: log every request to stderr.
        prediction_log: where sampled inputs and outputs go (for monitoring), or None.
        ready: called with the server once it listens.
    """
    holder = _Holder(device, threads=threads, max_rows=max_rows)
    holder.get()
    server = EdgeServer((host, port), holder, max_body=max_body, access_log=access_log, prediction_log=prediction_log)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGHUP, lambda *_: holder.request_reload())
        signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    host_name, bound = server.server_address[:2]
    print(f"edge serve: listening on http://{host_name!s}:{bound}", file=sys.stderr, flush=True)
    if ready is not None:
        ready(server)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if prediction_log is not None:
            prediction_log.close()
