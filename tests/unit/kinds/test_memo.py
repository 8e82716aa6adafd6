"""A model the run stored is read back as the object it holds, only for the very bytes it wrote: after they
verify and their types are judged as for any file; a model it did not keep is rebuilt from the store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from mlflowkit.errors import IntegrityError
from mlflowkit.kinds.memo import ModelMemo
from mlflowkit.kinds.model_files import UntrustedModel, load_model, save_model
from mlflowkit.store import ArtifactStore

X = np.arange(40, dtype=float).reshape(20, 2)
Y = np.arange(20) % 2


def test_a_kept_model_is_the_object_for_its_own_bytes_only(tmp_path: Path) -> None:
    store, memo = ArtifactStore(tmp_path), ModelMemo()
    kept = LogisticRegression().fit(X, Y)
    ref = save_model(store, kept, keep_in=memo)
    other = save_model(store, DecisionTreeClassifier(random_state=0).fit(X, Y))  # stored, not kept
    assert load_model(store, ref, kept=memo) is kept
    rebuilt = load_model(store, other, kept=memo)
    assert isinstance(rebuilt, DecisionTreeClassifier) and (rebuilt.predict(X) == Y).all()
    assert load_model(store, ref) is not kept  # without the memo: rebuilt from the bytes, as before
    memo.keep_only({other.sha256})
    assert len(memo) == 0 and load_model(store, ref, kept=memo) is not kept


def test_a_kept_model_whose_bytes_changed_is_refused(tmp_path: Path) -> None:
    store, memo = ArtifactStore(tmp_path), ModelMemo()
    ref = save_model(store, LogisticRegression().fit(X, Y), keep_in=memo)
    path = next(p for p in (tmp_path / "objects").rglob("*") if p.is_file())
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(IntegrityError):
        load_model(store, ref, kept=memo)


def test_a_kept_model_is_judged_by_the_types_its_reference_names(tmp_path: Path) -> None:
    store, memo = ArtifactStore(tmp_path), ModelMemo()
    ref = save_model(store, LogisticRegression().fit(X, Y), keep_in=memo)
    named = ref.model_copy(update={"meta": {**ref.meta, "skops_types": ["subprocess.Popen"]}})
    with pytest.raises(UntrustedModel, match=r"subprocess\.Popen"):
        load_model(store, named, kept=memo)
