"""What verifying every stored byte costs: hash-checked reads, cache hits and model loads, against the
unchecked reads mlflowkit did before (a path handed to pandas, an ``exists`` check, ``joblib.load``).

What a run waits for, each timed interleaved with its unchecked baseline on the same store:

0. a fully cached rerun of the reference example: every cache lookup of the plan (before: do the
   outputs exist; now: re-hash them), and, for scale, the whole ``mlflowkit run`` the user waits for;
1. a cache hit: the reference example's train and test tables and its model, looked up (before: do the
   objects exist; now: re-hash them);
2. reading the 1 M-row training table for a step (before: ``pd.read_parquet(path)``; now: the bytes,
   checked against their SHA-256, parsed from memory);
3. loading the trained random forest (150 trees; before: ``joblib.load``; now: skops with the trusted-type check);
4. scoring the champion on the held-out rows, load included (before: the unpickled forest; now: its ONNX
   graph in ONNX Runtime);
5. ``mlflowkit store verify`` of the reference example's store (before: every object re-hashed; now:
   also the types every cached model names judged, nothing rebuilt).

    python bench/verified_reads.py --repeat 7 [--rows 1000000]
"""

from __future__ import annotations

import io
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    MLFLOWKIT,
    REPO,
    TIMING_HEADERS,
    Timing,
    bench_env,
    fmt_seconds,
    header,
    parse_args,
    print_table,
    run_process,
    scratch_dir,
    timing_rows,
)

sys.path.insert(0, str(REPO / "examples" / "churn"))


def interleaved(cases: list[tuple[str, Any]], repeat: int) -> list[Timing]:
    """Wall times of each case, run round-robin ``repeat`` times after one untimed warm-up round."""
    timings = [Timing(label) for label, _ in cases]
    for i in range(repeat + 1):
        for timing, (_, fn) in zip(timings, cases, strict=True):
            start = time.perf_counter()
            fn()
            if i:
                timing.samples.append(time.perf_counter() - start)
    return timings


def cached_rerun(scratch: Path, repeat: int) -> None:
    """Group 0: the reference example, run once cold; then its cached lookups and its cached reruns."""
    import mlflowkit
    from mlflowkit.runtime.runner import Runner
    from mlflowkit.store import ArtifactStore

    work = scratch / "churn"
    shutil.copytree(REPO / "examples" / "churn", work, ignore=shutil.ignore_patterns(".mlflowkit", "__pycache__"))
    env = bench_env(scratch)
    cold = run_process([*MLFLOWKIT, "run", "spec.yaml"], env=env, cwd=work)
    spec = mlflowkit.load_spec(work / "spec.yaml")
    plan = mlflowkit.compile(spec)
    store = str(work / ".mlflowkit")

    def lookups(verified: bool) -> None:
        runner = Runner(spec, plan, store)
        if not verified:  # what a cache hit checked before: that each output exists
            checked = ArtifactStore(store)
            runner.store.problem = lambda ref: None if checked.exists(ref) else "missing"  # type: ignore[method-assign]
        assert runner.all_cached()

    timings = interleaved([("cache lookups, exists (before)", lambda: lookups(False)),
                           ("cache lookups, re-hashed (now)", lambda: lookups(True))], repeat)  # fmt: skip
    rerun = Timing("whole cached `mlflowkit run` (now)")
    for _ in range(repeat):
        rerun.samples.append(run_process([*MLFLOWKIT, "run", "spec.yaml"], env=env, cwd=work))
    objects = ArtifactStore(store).list_keys("objects/")
    size = sum((work / ".mlflowkit" / k).stat().st_size for k in objects)
    title = f"0. cached rerun of examples/churn ({len(objects)} objects, {size / 1e6:.1f} MB; cold run {fmt_seconds(cold)})"
    print_table(TIMING_HEADERS, timing_rows([*timings, rerun], timings[0]), title)

    from mlflowkit.kinds.model_files import SKOPS, model_refusal
    from mlflowkit.store.verify import Inspect, verify_store

    models = {SKOPS: Inspect("a model mlflowkit may load", lambda data, where: model_refusal(data, where=where))}
    timings = interleaved([("hashes only (before)", lambda: verify_store(ArtifactStore(store), None)),
                           ("hashes and model types (now)", lambda: verify_store(ArtifactStore(store), None, inspect=models))],
                          repeat)  # fmt: skip
    print_table(TIMING_HEADERS, timing_rows(timings, timings[0]), "5. `store verify` of the same store (no registry)")


def main() -> None:
    args = parse_args(
        __doc__.splitlines()[0], default_repeat=7, extra=lambda p: p.add_argument("--rows", type=int, default=1_000_000)
    )
    header(f"verified reads: hash-checked store reads vs unchecked ones ({args.rows:,}-row table)", args.repeat)

    import joblib
    import pandas as pd
    from make_data import make
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    from mlflowkit.kinds._frames import load_frame, save_frame
    from mlflowkit.kinds.export import export_onnx
    from mlflowkit.kinds.model_files import OnnxClassifier, load_model, save_model
    from mlflowkit.store import ArtifactStore

    scratch = scratch_dir(args.keep)
    cached_rerun(scratch, args.repeat)
    store = ArtifactStore(scratch / "store")
    big = make(args.rows)
    table = save_frame(store, big.iloc[: int(len(big) * 0.8)])
    held_out = save_frame(store, big.iloc[int(len(big) * 0.8) :])

    small = make(6000)
    target = "churned"
    features = [c for c in small.columns if c not in (target, "customer_id")]
    text = [c for c in features if small[c].dtype == object or str(small[c].dtype).startswith("str")]
    pre = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), text)], remainder="passthrough")
    model = Pipeline([("pre", pre), ("rf", RandomForestClassifier(n_estimators=150, max_depth=10, random_state=0, n_jobs=1))])
    model.fit(small[features].iloc[:4800], small[target].iloc[:4800])
    test = small.iloc[4800:]
    skops_ref = save_model(store, model)
    pickled = io.BytesIO()
    joblib.dump(model, pickled)
    joblib_bytes = pickled.getvalue()
    onnx, contract = export_onnx(model, test, features=features, classes=list(model.classes_), target=target)
    outputs = [table, held_out, skops_ref]
    path = store.local_path(table)
    sizes = ", ".join(f"{r.size / 1e6:.1f} MB" for r in outputs)
    print(f"objects: train table, test table, model ({sizes}); model as joblib {len(joblib_bytes) / 1e6:.1f} MB")

    def score_joblib() -> None:
        m = joblib.load(io.BytesIO(joblib_bytes))
        m.predict(test[features])
        m.predict_proba(test[features])

    def score_onnx() -> None:
        m = OnnxClassifier(onnx, contract)
        m.predict(test[features])
        m.predict_proba(test[features])

    groups = [
        ("1. cache hit: 3 outputs", [
            ("exists (before)", lambda: all(store.exists(r) for r in outputs)),
            ("re-hashed (now)", lambda: all(store.problem(r) is None for r in outputs)),
        ]),
        (f"2. read the {int(args.rows * 0.8):,}-row training table", [
            ("pd.read_parquet(path) (before)", lambda: pd.read_parquet(path)),
            ("load_frame, hash-checked (now)", lambda: load_frame(store, table)),
        ]),
        ("3. load the trained model (150 trees)", [
            ("joblib.load (before)", lambda: joblib.load(io.BytesIO(joblib_bytes))),
            ("skops, trusted types checked (now)", lambda: load_model(store, skops_ref)),
        ]),
        ("4. score the champion on 1,200 held-out rows, load included", [
            ("unpickled forest (before)", score_joblib),
            ("ONNX Runtime (now)", score_onnx),
        ]),
    ]  # fmt: skip
    for title, cases in groups:
        timings = interleaved(cases, args.repeat)
        print_table(TIMING_HEADERS, timing_rows(timings, timings[0]), title)


if __name__ == "__main__":
    main()
