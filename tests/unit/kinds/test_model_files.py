"""Fitted models in the store and the registry without unverified pickles: skops with a trusted-type list,
registered versions scored through ONNX, and old pickles only from a version a trusted key signed.

The store-writer tampers (a pickle put in place of a model, a forged reference to it) run on a local
folder and on S3 (moto)."""

from __future__ import annotations

import gc
import io
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlflowkit.edge.signing import generate_keypair
from mlflowkit.kinds.model_files import (
    JOBLIB,
    SKOPS,
    OnnxClassifier,
    UntrustedModel,
    load_model,
    model_file_name,
    registered_model,
    save_model,
)
from mlflowkit.store import ArtifactStore, ModelRegistry, Ref, Trust

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "helpers"))
from forged_models import datasource_model, memmap_model, popen_model


class _Payload:
    """Unpickling it creates a marker file: the proof that a pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def fitted() -> tuple[Any, pd.DataFrame]:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=300), "b": rng.choice(["x", "y"], 300)})
    y = np.where(frame["a"] + (frame["b"] == "x") > 0.5, "yes", "no")
    pre = ColumnTransformer([("num", "passthrough", ["a"]), ("cat", OneHotEncoder(handle_unknown="ignore"), ["b"])])
    model = Pipeline([("pre", pre), ("rf", RandomForestClassifier(n_estimators=10, random_state=0))]).fit(frame, y)
    return model, frame.assign(label=y)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(request.getfixturevalue("s3_root") if request.param == "s3" else tmp_path / "store")


def test_models_are_stored_with_skops_and_read_back(store: ArtifactStore, fitted: tuple[Any, pd.DataFrame]) -> None:
    model, frame = fitted
    ref = save_model(store, model, target="label")
    assert ref.media_type == SKOPS and model_file_name(ref) == "model.skops"
    assert store.get_bytes(ref)[:2] == b"PK"  # a zip of JSON and arrays: no pickle inside
    back = load_model(store, ref)
    assert (back.predict(frame) == model.predict(frame)).all()


def test_a_pickle_behind_a_forged_reference_is_never_unpickled(store: ArtifactStore, tmp_path: Path) -> None:
    # A store writer replaces the train step's output and rewrites the cache entry with the payload's true
    # hash: every hash checks out, so only the format stands between the bytes and a pickle load.
    marker = tmp_path / "PWNED"
    forged = store.put_bytes(pickle.dumps(_Payload(marker)), SKOPS)
    with pytest.raises(UntrustedModel, match=f"{forged.key} is not a model file mlflowkit can read"):
        load_model(store, forged)
    as_joblib = forged.model_copy(update={"media_type": JOBLIB})
    with pytest.raises(UntrustedModel, match=r"pickled model from an older mlflowkit.*--from train"):
        load_model(store, as_joblib)
    assert not marker.exists()


def test_a_skops_file_may_name_classes_of_allowed_modules_only(store: ArtifactStore) -> None:
    from sklearn.datasets import clear_data_home
    from sklearn.preprocessing import FunctionTransformer

    # A function would be called later with the file's arguments (clear_data_home deletes a folder).
    ref = save_model(store, FunctionTransformer(func=clear_data_home, kw_args={"data_home": "/tmp/x"}))
    with pytest.raises(UntrustedModel, match=r"names sklearn\.datasets\._base\.clear_data_home \(not a class: a function"):
        load_model(store, ref)
    ref = save_model(store, FunctionTransformer(func=io.open))
    with pytest.raises(UntrustedModel, match=r"io\.open"):
        load_model(store, ref)


def test_the_types_a_reference_declares_are_judged_and_bind_the_file(
    store: ArtifactStore, fitted: tuple[Any, pd.DataFrame]
) -> None:
    model, frame = fitted
    ref = save_model(store, model)
    assert "sklearn.tree._tree.Tree" in ref.meta["skops_types"]  # declared, so a reader parses the file once
    assert (load_model(store, ref).predict(frame) == model.predict(frame)).all()
    # A store writer who rewrites the declaration cannot widen what is loaded: fewer names, and skops refuses...
    fewer = ref.model_copy(update={"meta": {**ref.meta, "skops_types": []}})
    with pytest.raises(UntrustedModel, match=r"sklearn\.tree\._tree\.Tree"):
        load_model(store, fewer)
    # ... a function among them, and the judge refuses.
    more = ref.model_copy(update={"meta": {**ref.meta, "skops_types": [*ref.meta["skops_types"], "os.system"]}})
    with pytest.raises(UntrustedModel, match=r"names os\.system \(outside the allowed modules\)"):
        load_model(store, more)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # as outside pytest: numpy.distutils only warns on import
@pytest.mark.parametrize("forge", ["popen", "memmap"])
def test_a_skops_file_cannot_call_a_class_under_an_allowed_name(store: ArtifactStore, tmp_path: Path, forge: str) -> None:
    # `numpy.distutils.fcompiler.gnu.Popen` lies under numpy by name, and is subprocess.Popen: a class, which
    # skops calls with the file's arguments. numpy.memmap is numpy's own, and creates the file it is given.
    marker = tmp_path / "PWNED"
    data = popen_model(str(marker)) if forge == "popen" else memmap_model(str(marker))
    ref = store.put_bytes(data, SKOPS)
    with pytest.raises(UntrustedModel, match=r"Popen|memmap") as refused:
        load_model(store, ref)
    assert "it was not loaded" in str(refused.value)
    time.sleep(0.2)  # a Popen would have touched it by now
    assert not marker.exists()


@pytest.mark.parametrize("module", ["numpy.lib.npyio", "numpy.lib._datasource"])
def test_a_skops_file_cannot_rebuild_a_numpy_object_that_deletes_on_collection(
    store: ArtifactStore, tmp_path: Path, module: str
) -> None:
    # numpy's DataSource removes the folder its state names when it is garbage-collected.
    victim = tmp_path / "victim"
    (victim / "sub").mkdir(parents=True)
    (victim / "sub" / "precious.txt").write_text("keep")
    ref = store.put_bytes(datasource_model(str(victim), module), SKOPS)
    with pytest.raises(UntrustedModel, match=rf"{module}\.DataSource \((a numpy or scipy class that is not a data type|it is)"):
        load_model(store, ref)
    gc.collect()
    assert (victim / "sub" / "precious.txt").read_text() == "keep"


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # default settings on a toy table
@pytest.mark.parametrize(
    "estimator",
    [
        "sklearn.ensemble.HistGradientBoostingClassifier",
        "sklearn.gaussian_process.GaussianProcessClassifier",
        "sklearn.neighbors.KNeighborsClassifier",
        "sklearn.neural_network.MLPClassifier",
        "sklearn.linear_model.LogisticRegression",
        "sklearn.calibration.CalibratedClassifierCV",
    ],
)
def test_models_whose_files_name_internal_types_still_load(
    tmp_path: Path, fitted: tuple[Any, pd.DataFrame], estimator: str
) -> None:
    # Kernels, losses, KD-trees, optimizers, binners: classes of scikit-learn that are not estimators.
    import importlib

    _, frame = fitted
    module, _, name = estimator.rpartition(".")
    x, y = frame[["a"]].to_numpy(), frame["label"]
    model = getattr(importlib.import_module(module), name)().fit(x, y)
    back = load_model(ArtifactStore(tmp_path / "store"), save_model(ArtifactStore(tmp_path / "store"), model))
    assert (back.predict(x) == model.predict(x)).all()


@pytest.mark.parametrize("estimator", ["KNeighborsClassifier", "SVC"])
def test_models_that_keep_sparse_training_rows_still_load(
    tmp_path: Path, fitted: tuple[Any, pd.DataFrame], estimator: str
) -> None:
    # A one-hot encoding of many categories is sparse, and a KNN (or an SVC's support vectors) keeps those rows.
    from scipy import sparse
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.svm import SVC

    _, frame = fitted
    x, y = sparse.csr_matrix(np.eye(len(frame))[:, :40]), frame["label"]
    model = {"KNeighborsClassifier": KNeighborsClassifier, "SVC": SVC}[estimator]().fit(x, y)
    ref = save_model(ArtifactStore(tmp_path / "store"), model)
    assert any(t.startswith("scipy.sparse.") for t in ref.meta["skops_types"])
    back = load_model(ArtifactStore(tmp_path / "store"), ref)
    assert (back.predict(x) == model.predict(x)).all()


@pytest.mark.parametrize("location", ["absolute", "secret.txt", "../work/secret.txt"])
def test_an_onnx_graph_cannot_read_a_file_through_external_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, location: str
) -> None:
    # A graph may keep a tensor's bytes in an outside file by path; one planted in the store or the registry
    # would output the file it names (a key, a credential). Sessions are built from bytes, and ONNX Runtime
    # then refuses any external data.
    from onnx import TensorProto, helper

    from mlflowkit.kinds.model_files import OnnxModel
    from mlflowkit.targets.contract import Contract

    (tmp_path / "work").mkdir()
    secret = tmp_path / "work" / "secret.txt"
    secret.write_text("SECRET-KEY-MATERIAL-1234")
    monkeypatch.chdir(tmp_path / "work")  # where a relative location would be looked up
    tensor = TensorProto(name="W", data_type=TensorProto.INT32, dims=[6], data_location=TensorProto.EXTERNAL)
    where = str(secret) if location == "absolute" else location
    for key, value in (("location", where), ("offset", "0"), ("length", "24")):
        tensor.external_data.add(key=key, value=value)
    graph = helper.make_graph(
        [helper.make_node("Identity", ["W"], ["y"])],
        "leak",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [6])],
        initializer=[tensor],
    )
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    contract = Contract(
        layout="matrix",
        inputs=({"name": "x", "dtype": "float32", "shape": [1]},),
        outputs=({"name": "y", "dtype": "int32", "shape": [6]},),
        features=("x",),
        opset={"": 17},
    )
    with pytest.raises(Exception, match="ONNXRuntimeError") as refused:  # ORT raises its own Fail class
        OnnxModel(data, contract)
    assert "SECRET" not in str(refused.value)


def _registry(tmp_path: Path, **env: str) -> ModelRegistry:
    return ModelRegistry(tmp_path / "registry", trust=Trust.load(environ=env))


def test_a_registered_version_is_scored_through_its_onnx_graph(tmp_path: Path, fitted: tuple[Any, pd.DataFrame]) -> None:
    from mlflowkit.kinds.export import export_onnx

    model, frame = fitted
    onnx, contract = export_onnx(model, frame, features=["a", "b"], classes=["no", "yes"], target="label")
    registry = _registry(tmp_path)
    files = {"model.onnx": onnx, "contract.json": contract.model_dump_json().encode(), "model.skops": b"not read"}
    version = registry.register("churn", files, {})
    scorer = registered_model(registry, version)
    assert isinstance(scorer, OnnxClassifier)
    assert list(scorer.classes_) == ["no", "yes"]
    features = frame.drop(columns=["label"])
    assert (scorer.predict(features) == model.predict(features)).all()
    proba = scorer.predict_proba(features)
    assert np.allclose(proba, model.predict_proba(features), atol=1e-5) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("file", ["model.onnx", "contract.json"])
def test_a_replaced_onnx_version_without_keys_is_a_registry_error_naming_the_file(
    tmp_path: Path, fitted: tuple[Any, pd.DataFrame], file: str
) -> None:
    # Without trusted keys a registry writer's replacement (its digest rewritten too) passes read_file: the parser
    # is what notices, and it must say which file, not raise ONNX Runtime's or pydantic's own error.
    from mlflowkit.errors import RegistryError
    from mlflowkit.kinds.export import export_onnx

    model, frame = fitted
    onnx, contract = export_onnx(model, frame, features=["a", "b"], classes=["no", "yes"], target="label")
    files = {"model.onnx": onnx, "contract.json": contract.model_dump_json().encode()}
    files[file] = files[file][:-7] + b"\x00garbage"
    registry = _registry(tmp_path)
    version = registry.register("churn", files, {})
    with pytest.raises(RegistryError) as refused:
        registered_model(registry, version)
    message = str(refused.value)
    assert message.startswith("churn v1: ") and registry.file_path("churn", 1, file) in message
    assert "damaged or replaced" in message and "mlflowkit store verify" in message
    assert "\n" not in message


def test_a_registered_skops_model_without_onnx(tmp_path: Path, fitted: tuple[Any, pd.DataFrame]) -> None:
    model, frame = fitted
    store = ArtifactStore(tmp_path / "store")
    data = store.get_bytes(save_model(store, model))
    registry = _registry(tmp_path)
    scorer = registered_model(registry, registry.register("churn", {"model.skops": data}, {}))
    assert (scorer.predict(frame) == model.predict(frame)).all()


def test_an_old_pickled_version_loads_only_when_a_trusted_key_signed_it(tmp_path: Path, fitted: tuple[Any, pd.DataFrame]) -> None:
    import joblib

    model, frame = fitted
    buf = io.BytesIO()
    joblib.dump(model, buf)
    old = _registry(tmp_path).register("churn", {"model.joblib": buf.getvalue()}, {})  # before skops and signing
    with pytest.raises(UntrustedModel, match=r"only as a pickle \(model.joblib\) and unsigned.*mlflowkit models sign churn 1"):
        registered_model(_registry(tmp_path), old)

    marker = tmp_path / "PWNED"
    forged = _registry(tmp_path).register("churn", {"model.joblib": pickle.dumps(_Payload(marker))}, {})
    with pytest.raises(UntrustedModel, match="only as a pickle"):
        registered_model(_registry(tmp_path), forged)
    assert not marker.exists()

    generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub")
    owner = _registry(tmp_path, MLFLOWKIT_SIGNING_KEY=str(tmp_path / "k.pem"))
    owner.sign("churn", 1)  # reviewed, then vouched for
    scorer = registered_model(owner, owner.get("churn", 1))
    assert (scorer.predict(frame) == model.predict(frame)).all()


def test_model_file_names() -> None:
    ref = Ref(key="objects/ab/" + "ab" * 32, sha256="ab" * 32, size=1, media_type=JOBLIB)
    assert model_file_name(ref) == "model.joblib"
