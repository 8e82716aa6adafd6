"""The churn example's data checks on 1 M rows: mlflowkit's checks step (Great Expectations) against the
same checks hand-written in pandas (goal: GX / pandas ≤ 3x).

Both sides compute the same answers from the same in-memory tables (raw, and an 80/20 split): pass
or fail, the unexpected count and a sample of unexpected values for each check. The GX side is what
the checks step runs (``run_checks``: an ephemeral context, one pandas batch and suite per table,
leakage in pandas); the one-off ``import great_expectations`` is timed apart, since a process pays it
once. A third row shows GX with its per-batch fingerprint left on (GX's default, which mlflowkit
turns off: see ``_without_batch_fingerprint``), measured fewer times because it is slow.

    python bench/checks_vs_pandas.py --repeat 5 [--rows 1000000]
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, TIMING_HEADERS, Timing, fmt_seconds, header, parse_args, print_table, ratio, time_call, timing_rows

sys.path.insert(0, str(REPO / "examples" / "churn"))

SAMPLE = 5
SCHEMA = {
    "customer_id": "str",
    "age": "int64",
    "gender": "str",
    "tenure_months": "int64",
    "contract": "str",
    "monthly_charges": "float64",
    "support_calls": "int64",
    "paperless_billing": "str",
    "churned": "str",
}


def _unexpected(values: Any, bad: Any) -> tuple[int, list[Any]]:
    return int(bad.sum()), values[bad].head(SAMPLE).tolist()


def pandas_checks(frames: dict[str, Any]) -> dict[str, Any]:
    """The reference check set (examples/churn/spec.yaml), by hand: the same verdicts, counts and samples."""
    raw, train, test = frames["raw"], frames["train"], frames["test"]
    out: dict[str, Any] = {}
    out["columns"] = sorted(set(SCHEMA) - set(raw.columns))
    for column, dtype in SCHEMA.items():
        out[f"dtype {column}"] = str(raw[column].dtype) == dtype
    out["rows"] = bool(len(raw) >= 1000)
    target = raw["churned"]
    out["target exists"] = "churned" in raw.columns
    out["target not null"] = _unexpected(target, target.isna())
    out["target classes"] = _unexpected(target, target.notna() & ~target.isin(["yes", "no"]))
    ids = raw["customer_id"]
    out["unique ids"] = _unexpected(ids, ids.notna() & ids.duplicated(keep=False))
    # A merge: isin against an 800k-row pyarrow string column walks it in Python (about 8x slower).
    shared = test[["customer_id"]].merge(train[["customer_id"]].dropna().drop_duplicates(), on="customer_id")
    out["leakage"] = (len(shared), shared["customer_id"].head(SAMPLE).tolist())
    out["ids not null"] = _unexpected(ids, ids.isna())
    age = raw["age"]
    count, sample = _unexpected(age, age.notna() & ~age.between(18, 120))
    out["age"] = (count / max(int(age.notna().sum()), 1) <= 0.01, count, sample)
    contract = raw["contract"]
    out["contract"] = _unexpected(contract, contract.notna() & ~contract.isin(["month-to-month", "one-year", "two-year"]))
    for name, frame in frames.items():
        out[f"mean {name}"] = bool(50 <= frame["monthly_charges"].mean() <= 90)
    return out


def main() -> None:
    args = parse_args(
        __doc__.splitlines()[0], default_repeat=5, extra=lambda p: p.add_argument("--rows", type=int, default=1_000_000)
    )
    header(f"data checks on {args.rows:,} rows: mlflowkit checks (Great Expectations) vs hand-written pandas", args.repeat)

    from make_data import make
    from sklearn.model_selection import train_test_split

    import mlflowkit
    from mlflowkit.kinds import _gx_run
    from mlflowkit.kinds.checks import expand

    spec = mlflowkit.load_spec(REPO / "examples" / "churn" / "spec.yaml")
    planned = expand(spec.checks, target=spec.data.target, spec_dir=spec.spec_dir)
    raw = make(args.rows)
    train, test = train_test_split(raw, test_size=0.2, random_state=42, stratify=raw["churned"])
    frames = {"raw": raw, "train": train.reset_index(drop=True), "test": test.reset_index(drop=True)}
    print(
        f"{len(planned)} checks ({len(spec.checks.expectations)} entries in the spec) "
        f"on raw {len(raw):,} / train {len(train):,} / test {len(test):,} rows"
    )

    probe = "import time; t = time.perf_counter(); import great_expectations; print(time.perf_counter() - t)"
    imports = Timing("import great_expectations (once per process)")
    for _ in range(min(args.repeat, 3)):
        out = subprocess.run([sys.executable, "-W", "ignore", "-c", probe], capture_output=True, text=True, check=True)
        imports.samples.append(float(out.stdout.strip()))
    _gx_run.import_gx()

    outcome = _gx_run.run_checks(frames, planned, sample=SAMPLE)
    assert outcome.passed, _gx_run.failure_message(outcome.failed)  # the example's data passes its checks
    assert all(pandas_checks(frames)[k] is True for k in ("rows", "target exists", "mean raw"))

    baseline = time_call("pandas, hand-written", lambda: pandas_checks(frames), args.repeat)
    checks = time_call("mlflowkit checks (GX)", lambda: _gx_run.run_checks(frames, planned, sample=SAMPLE), args.repeat)

    # GX's default: every batch fingerprinted by hashing every cell (twice per validation).
    def with_fingerprint() -> None:
        saved = _gx_run._without_batch_fingerprint
        _gx_run._without_batch_fingerprint = _noop_context  # type: ignore[assignment]
        try:
            _gx_run.run_checks(frames, planned, sample=SAMPLE)
        finally:
            _gx_run._without_batch_fingerprint = saved

    default = time_call("GX with its batch fingerprint (GX default)", with_fingerprint, max(1, min(args.repeat, 2)), warmup=0)

    print_table(TIMING_HEADERS, timing_rows([baseline, checks, default], baseline))
    print_table(
        ("one-off", "median", "min", "max"),
        [[imports.label, fmt_seconds(imports.median), fmt_seconds(imports.low), fmt_seconds(imports.high)]],
    )
    verdict = "meets" if checks.median <= 3 * baseline.median else "misses"
    print(f"\nGX / pandas = {ratio(checks.median, baseline.median)} (goal <= 3x: {verdict} it)")


class _noop_context:
    def __init__(self) -> None:
        pass

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"(benchmark took {time.perf_counter() - start:.0f} s)")
