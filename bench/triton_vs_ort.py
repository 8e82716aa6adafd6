"""The reference model served by Triton vs ONNX Runtime in process: p50/p99 latency, throughput (goal: ≤ 1 ms p50 overhead).

The reference model is the churn example's (random forest, 150 trees, depth 10, with its imputers and
one-hot encoder), exported by the ``onnx`` kind's own code and deployed by the ``triton`` target's own
code to a local Triton (``mlflowkit.targets.triton_local``: the nvidia-pytriton build, whose models run
through the Python backend with ONNX Runtime inside). Requests are sent one after another by one
client, over HTTP and gRPC, for a single row and for a batch of 64 rows; the in-process baseline runs
the same ONNX bytes on the same inputs in an ONNX Runtime session with one thread, as the served
``model.py`` does.

    python bench/triton_vs_ort.py --repeat 3 --requests 400
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, header, parse_args, print_table, scratch_dir

GOAL_MS = 1.0
BATCHES = (1, 64)


def reference_model() -> tuple[bytes, Any, Any]:
    """The churn example's model, exported: ONNX bytes, contract, held-out rows."""
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier

    sys.path.insert(0, str(REPO / "examples" / "churn"))
    from churn_steps import add_features

    from mlflowkit.kinds.export import export_onnx
    from mlflowkit.kinds.train import _pipeline

    frame = add_features(pd.read_csv(REPO / "examples" / "churn" / "data" / "churn.csv"), cap=100)
    train, test = frame.iloc[:4800], frame.iloc[4800:].reset_index(drop=True)
    x = train.drop(columns=["churned"])
    estimator = RandomForestClassifier(n_estimators=150, max_depth=10, random_state=42, n_jobs=1)
    model = _pipeline(estimator, x).fit(x, train["churned"])
    data, contract = export_onnx(model, test, features=list(x.columns), classes=list(model.classes_), target="churned")
    assert contract.parity["ok"], contract.parity
    return data, contract, test


def measure(call: Callable[[], Any], requests: int) -> list[float]:
    """Latencies (seconds) of ``requests`` sequential calls, after 20 untimed ones."""
    for _ in range(20):
        call()
    samples = []
    for _ in range(requests):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], 3, lambda p: p.add_argument("--requests", type=int, default=400))
    header("Triton (Python backend + ONNX Runtime) vs ONNX Runtime in process", args.repeat)
    import onnxruntime as ort
    import tritonclient.grpc as triton_grpc
    import tritonclient.http as triton_http

    from mlflowkit.targets import triton_local
    from mlflowkit.targets.contract import feeds
    from mlflowkit.targets.triton import TritonTarget, deploy, infer

    data, contract, test = reference_model()
    scratch = scratch_dir(args.keep)
    started = time.monotonic()
    server = triton_local.up(scratch / "triton", http_port=triton_local.free_port(), grpc_port=triton_local.free_port())
    print(f"local Triton ready in {time.monotonic() - started:.1f} s (pid {server.pid})")
    try:
        target = TritonTarget(
            target="triton",
            url=server.http_url,
            grpc_url=server.grpc_url,
            model_repository=server.model_repository,
            backend="python",
        )
        record = deploy(target, name="churn", version=1, model=data, contract=contract, smoke=test)
        print(f"deployed churn v1 in {record['seconds']:.2f} s (load + readiness + smoke test over HTTP and gRPC)")

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        http = triton_http.InferenceServerClient(server.http_url.removeprefix("http://"))
        grpc = triton_grpc.InferenceServerClient(server.grpc_url)

        rows = []
        summary: dict[tuple[str, int], tuple[float, float, float]] = {}
        for batch in BATCHES:
            inputs = feeds(contract, test.head(batch))
            ways: dict[str, Callable[[], Any]] = {
                "ONNX Runtime in process": lambda inputs=inputs: session.run(None, inputs),
                "Triton HTTP": lambda inputs=inputs: infer(http, "http", "churn", contract, inputs),
                "Triton gRPC": lambda inputs=inputs: infer(grpc, "grpc", "churn", contract, inputs),
            }
            for label, call in ways.items():
                runs = [measure(call, args.requests) for _ in range(args.repeat)]
                p50 = statistics.median(percentile(r, 50) for r in runs)
                p99 = statistics.median(percentile(r, 99) for r in runs)
                throughput = statistics.median(batch * len(r) / sum(r) for r in runs)
                summary[(label, batch)] = (p50, p99, throughput)
                rows.append(
                    [f"{label}, batch {batch}", f"{p50 * 1e3:.3f} ms", f"{p99 * 1e3:.3f} ms", f"{throughput:,.0f} rows/s"]
                )
        print_table(("measurement", "p50", "p99", "throughput (1 client)"), rows, title="\nlatency and throughput")

        ratio_rows = []
        for batch in BATCHES:
            base = summary[("ONNX Runtime in process", batch)]
            for label in ("Triton HTTP", "Triton gRPC"):
                p50, p99, throughput = summary[(label, batch)]
                overhead = (p50 - base[0]) * 1e3
                verdict = "meets" if overhead <= GOAL_MS else "misses"
                ratio_rows.append(
                    [
                        f"{label}, batch {batch}",
                        f"{overhead:+.3f} ms ({verdict} ≤ {GOAL_MS:g} ms)",
                        f"{p50 / base[0]:.1f}x",
                        f"{p99 / base[1]:.1f}x",
                        f"{throughput / base[2]:.2f}x",
                    ]
                )
        print_table(
            ("vs in-process ORT", "p50 overhead", "p50 ratio", "p99 ratio", "throughput ratio"), ratio_rows, title="\nratios"
        )
    finally:
        triton_local.down(scratch / "triton")


if __name__ == "__main__":
    main()
