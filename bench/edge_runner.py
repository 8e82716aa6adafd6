"""The edge runner vs scikit-learn ``predict`` on the same model: single-row p50/p99, batch-1000 throughput, memory.

The model is the churn example's (random forest, 150 trees, depth 10, with its imputers and one-hot
encoder), fitted once and exported by the ``onnx`` kind's own code, published as a signed bundle by the
``onnxruntime`` target and installed by ``Device.pull``, exactly as on a device. Three ways to predict:

- scikit-learn: ``pipeline.predict_proba`` on a prebuilt DataFrame (n_jobs=1; building the frame is not
  counted, which favours scikit-learn);
- the edge runner in process: ``Runner.predict`` on JSON-like records (input checks included);
- the edge runner over HTTP: ``mlflowkit edge serve`` on loopback, one keep-alive client.

Each measurement repeats ``--repeat`` times; the medians of the per-repetition p50/p99/throughput are shown.
Goals: ≥ 10× faster than scikit-learn for one row, never slower for 1000 rows. Memory is each
process's peak RSS after loading the model and predicting (a fresh process per way).

    python bench/edge_runner.py --repeat 5 --requests 300
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, header, parse_args, print_table, scratch_dir

BATCH = 1000


def reference(scratch: Path) -> tuple[Any, Any, Path, Path]:
    """Fit and export the churn model, publish and pull it; the pipeline, held-out rows, device dir, joblib file."""
    import joblib
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier

    sys.path.insert(0, str(REPO / "examples" / "churn"))
    from churn_steps import add_features

    from mlflowkit.edge.device import Device
    from mlflowkit.edge.signing import generate_keypair, load_public_key
    from mlflowkit.kinds.export import export_onnx
    from mlflowkit.kinds.train import _pipeline
    from mlflowkit.targets.base import Release
    from mlflowkit.targets.onnxruntime import OnnxRuntimeTarget

    frame = add_features(pd.read_csv(REPO / "examples" / "churn" / "data" / "churn.csv"))
    train, test = frame.iloc[:4800], frame.iloc[4800:].reset_index(drop=True)
    x, y = train.drop(columns=["churned"]), train["churned"]
    model = _pipeline(RandomForestClassifier(n_estimators=150, max_depth=10, random_state=0, n_jobs=1), x).fit(x, y)
    data, contract = export_onnx(model, test, features=list(x.columns), classes=list(model.classes_), target="churned")
    generate_keypair(scratch / "k.pem", scratch / "k.pem.pub")
    settings = OnnxRuntimeTarget.model_validate(
        {
            "target": "onnxruntime",
            "location": str(scratch / "pub"),
            "signing": {"key_file": str(scratch / "k.pem")},
            "nan_policy": "allow",
        }
    )
    settings.deploy(Release(model="churn", version=1, onnx=data, contract=contract, smoke=test), name="churn", log=lambda m: None)
    Device(scratch / "device").pull(
        str(scratch / "pub" / "churn"), channel="stable", public_key=load_public_key(str(scratch / "k.pem.pub"))
    )
    joblib.dump(model, scratch / "model.joblib")
    return model, test.drop(columns=["churned"]), scratch / "device", scratch / "model.joblib"


def latencies(call: Callable[[int], Any], n: int) -> list[float]:
    out = []
    for i in range(n):
        started = time.perf_counter()
        call(i)
        out.append(time.perf_counter() - started)
    return out


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Http:
    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def predict(self, body: bytes) -> Any:
        self.conn.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
        response = self.conn.getresponse()
        data = response.read()
        assert response.status == 200, data[:300]
        return json.loads(data)


def start_server(device: Path) -> tuple[subprocess.Popen[bytes], int]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    cli = [sys.executable, "-c", "from mlflowkit.cli import main; main()"]
    cmd = [*cli, "edge", "serve", "--dir", str(device), "--port", str(port), "--max-body", str(64 << 20)]
    server = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return server, port
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("edge serve did not come up")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):  # peak resident set
            return int(line.split()[1]) / 1024
    return float("nan")


# VmHWM, not ru_maxrss: Linux carries ru_maxrss over an exec from the (big) parent process.
_PEAK = (
    "import pathlib; status = pathlib.Path('/proc/self/status').read_text().splitlines(); "
    "print([int(x.split()[1]) / 1024 for x in status if x.startswith('VmHWM:')][0])"
)


def process_peak_mb(code: str) -> float:
    out = subprocess.run([sys.executable, "-c", code + "\n" + _PEAK], capture_output=True, text=True, check=True, env=os.environ)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    args = parse_args(
        __doc__ or "", 5, lambda p: p.add_argument("--requests", type=int, default=300, help="single-row requests per repetition")
    )
    header("edge runner vs scikit-learn predict (churn model: random forest 150 trees, depth 10)", args.repeat)
    import pandas as pd

    from mlflowkit.edge.device import Device
    from mlflowkit.edge.runner import Runner

    scratch = scratch_dir(args.keep)
    model, rows, device, joblib_file = reference(scratch)
    folder = Device(device).current()
    assert folder is not None
    runner = Runner(folder)
    records: list[dict[str, Any]] = json.loads(rows.to_json(orient="records"))
    frames = [rows.iloc[[i]] for i in range(len(rows))]
    batch_frame = pd.concat([rows] * (BATCH // len(rows) + 1)).head(BATCH).reset_index(drop=True)
    batch_records: list[dict[str, Any]] = json.loads(batch_frame.to_json(orient="records"))
    batch_columns = {"inputs": {c: [r[c] for r in batch_records] for c in batch_records[0]}}
    n = min(args.requests, len(rows))

    # Same answers first: the comparison is only fair on the same model.
    sk = model.predict(batch_frame.head(200)).tolist()
    edge_answer = runner.predict({"records": batch_records[:200]})["predictions"]
    agree = sum(a == b for a, b in zip(sk, edge_answer, strict=True))
    print(f"labels agree on {agree}/200 rows")

    server, port = start_server(device)
    client = Http(port)
    bodies = [json.dumps(r).encode() for r in records]
    batch_body = json.dumps(batch_columns).encode()
    results: dict[str, dict[str, list[float]]] = {}
    ways: dict[str, tuple[Callable[[int], Any], Callable[[], Any]]] = {
        "scikit-learn": (lambda i: model.predict_proba(frames[i]), lambda: model.predict_proba(batch_frame)),
        "edge runner (in process)": (lambda i: runner.predict(records[i]), lambda: runner.predict(batch_columns)),
        "edge serve (HTTP)": (lambda i: client.predict(bodies[i]), lambda: client.predict(batch_body)),
    }
    try:
        for _ in range(args.repeat):
            for label, (single, batch) in ways.items():
                single(0)
                batch()  # warm
                one = latencies(single, n)
                batched = latencies(lambda _, run=batch: run(), 7)
                stats = results.setdefault(label, {"p50": [], "p99": [], "rows_s": []})
                stats["p50"].append(pct(one, 0.5))
                stats["p99"].append(pct(one, 0.99))
                stats["rows_s"].append(BATCH / statistics.median(batched))
        serve_rss = rss_mb(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)

    med = {k: {m: statistics.median(v) for m, v in s.items()} for k, s in results.items()}
    base = med["scikit-learn"]
    print_table(
        ["way", "1 row p50", "1 row p99", f"batch {BATCH} rows/s", "p50 speed-up", f"batch {BATCH} ratio"],
        [
            [
                k,
                f"{v['p50'] * 1e3:.3f} ms",
                f"{v['p99'] * 1e3:.3f} ms",
                f"{v['rows_s']:,.0f}",
                f"{base['p50'] / v['p50']:.1f}x",
                f"{v['rows_s'] / base['rows_s']:.2f}x",
            ]
            for k, v in med.items()
        ],
        title=f"medians of {args.repeat} repetitions ({n} single-row requests, 7 batches each)",
    )
    for key, goal in (("edge runner (in process)", "in process"), ("edge serve (HTTP)", "over HTTP")):
        speedup, throughput = base["p50"] / med[key]["p50"], med[key]["rows_s"] / base["rows_s"]
        print(
            f"goal {goal}: 1 row ≥ 10x faster: {speedup:.1f}x — {'meets' if speedup >= 10 else 'misses'}; "
            f"batch {BATCH} never slower: {throughput:.2f}x — {'meets' if throughput >= 1 else 'misses'}"
        )

    load_runner = (
        f"from pathlib import Path; from mlflowkit.edge.runner import Runner; "
        f"r = Runner(Path({str(folder)!r})); r.predict({records[0]!r})"
    )
    load_sklearn = (
        f"import joblib, pandas as pd; m = joblib.load({str(joblib_file)!r}); m.predict(pd.DataFrame([{records[0]!r}]))"
    )
    print_table(
        ["process", "peak RSS"],
        [
            ["edge runner (python, model loaded, 1 prediction)", f"{process_peak_mb(load_runner):.0f} MB"],
            ["edge serve (after the benchmark)", f"{serve_rss:.0f} MB"],
            ["scikit-learn + pandas (joblib model, 1 prediction)", f"{process_peak_mb(load_sklearn):.0f} MB"],
        ],
        title="memory",
    )


if __name__ == "__main__":
    main()
