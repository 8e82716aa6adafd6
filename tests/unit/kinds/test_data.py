"""The load and split kinds, driven directly: what they read, the typed table meta they write, their refusals."""

from __future__ import annotations

import hashlib
import re

import pytest
from kind_harness import Harness, write_table

from mlflowkit.errors import StepFailed
from mlflowkit.handoff import PARQUET, TableMeta
from mlflowkit.kinds._frames import load_frame
from mlflowkit.kinds.data import Load, Split


def test_load_reads_the_table_and_fingerprints_it(harness: Harness) -> None:
    csv = write_table(harness.spec_dir / "data" / "churn.csv", rows=120)
    (ref,) = harness.run(Load, {"source": "data/churn.csv", "target": "churned"}).values()
    meta = TableMeta.model_validate(ref.meta)
    assert ref.media_type == PARQUET and meta.rows == 120 and meta.target == "churned"
    assert meta.columns[-1] == "churned" and "customer_id" in meta.columns
    assert meta.data_fingerprint is not None
    assert meta.data_fingerprint.content_hash == hashlib.sha256(csv.read_bytes()).hexdigest()
    assert load_frame(harness.store, ref).shape == (120, 6)

    kept = harness.run(Load, {"source": "data/churn.csv", "target": "churned", "columns": ["tenure_months"]})["dataset"]
    assert TableMeta.model_validate(kept.meta).columns == ("tenure_months", "churned")  # the target is always kept


def test_the_fingerprint_follows_the_file(harness: Harness) -> None:
    csv = write_table(harness.spec_dir / "t.csv", rows=50)
    params = Load.Params.model_validate({"source": "t.csv", "target": "churned"})
    before = Load().fingerprint(harness.context(), params)
    csv.write_text(csv.read_text() + "999,1,1.0,one-year,female,no\n")
    assert Load().fingerprint(harness.context(), params) != before


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"source": "missing.csv", "target": "churned"}, "data.source missing.csv: no file at "),
        ({"source": "t.csv", "target": "churn"}, "target column 'churn' is not in t.csv (did you mean 'churned'?)"),
        ({"source": "t.csv", "target": "churned", "columns": ["nope"]}, "columns ['nope'] are not in t.csv"),
        ({"source": "empty.csv", "target": "churned"}, "data.source empty.csv: "),
        ({"source": "t.csv", "target": "churned", "positive": "Yes"}, "data.positive 'Yes' is not a value of 'churned' (no, yes)"),
    ],
)
def test_load_refuses_with_a_message_naming_the_problem(harness: Harness, params: dict[str, object], message: str) -> None:
    write_table(harness.spec_dir / "t.csv", rows=20)
    (harness.spec_dir / "empty.csv").write_text("")
    with pytest.raises(StepFailed, match="^" + re.escape(f"step 'load' failed: {message}")):
        harness.run(Load, params, step="load")


def test_split_holds_out_a_stratified_test_set_and_keeps_the_meta(harness: Harness) -> None:
    write_table(harness.spec_dir / "t.csv", rows=200)
    dataset = harness.run(Load, {"source": "t.csv", "target": "churned", "positive": "no"})["dataset"]
    parts = harness.run(Split, {"test_size": 0.25, "seed": 1}, {"dataset": dataset})
    train, test = (TableMeta.model_validate(parts[p].meta) for p in ("train", "test"))
    assert (train.rows, test.rows, train.part, test.part) == (150, 50, "train", "test")
    assert train.target == test.target == "churned"
    assert parts["train"].meta["positive"] == parts["test"].meta["positive"] == "no"  # data.positive reaches train and evaluate
    assert train.data_fingerprint == TableMeta.model_validate(dataset.meta).data_fingerprint
    whole, held = load_frame(harness.store, dataset), load_frame(harness.store, parts["test"])
    assert abs((held.churned == "yes").mean() - (whole.churned == "yes").mean()) < 0.02  # stratified
    again = harness.run(Split, {"test_size": 0.25, "seed": 1}, {"dataset": dataset})
    assert again["test"].sha256 == parts["test"].sha256  # the same seed splits the same way


def test_split_refuses_what_it_cannot_stratify(harness: Harness) -> None:
    (harness.spec_dir / "t.csv").write_text("x,y\n1,a\n2,a\n3,a\n4,b\n")
    dataset = harness.run(Load, {"source": "t.csv", "target": "y"})["dataset"]
    with pytest.raises(StepFailed, match=r"cannot split 4 rows \(stratify=True\)"):
        harness.run(Split, {"test_size": 0.25}, {"dataset": dataset})
