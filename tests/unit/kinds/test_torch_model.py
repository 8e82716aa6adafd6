"""The torch kind without Ray: its spec checks, the stored model, and its ONNX export's parity and contract."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import mlflowkit
from mlflowkit.errors import SpecError, StepFailed
from mlflowkit.kinds.torch_train import TorchTrain

REPO = Path(__file__).resolve().parents[3]
CHURN = REPO / "examples" / "churn" / "data" / "churn.csv"
EXAMPLE = REPO / "examples" / "churn-torch"


def _trained(rows: int = 1500, seed: int = 0) -> tuple[Any, Any]:
    """A TorchTabularModel trained briefly in process on the shipped churn data, and held-out rows."""
    import numpy as np
    import pandas as pd
    import torch

    from mlflowkit.kinds._torch_model import TorchTabularModel, build_network, preprocessor

    frame = pd.read_csv(CHURN).drop(columns=["customer_id"])
    train, test = frame.iloc[:rows], frame.iloc[rows : rows + 500]
    x, y = train.drop(columns=["churned"]), train["churned"]
    pre = preprocessor(x)
    xs = torch.from_numpy(np.asarray(pre.fit_transform(x), dtype=np.float32))
    ys = torch.from_numpy((y == "yes").to_numpy().astype(np.int64))
    kwargs = {"in_features": xs.shape[1], "out_features": 2, "params": {"hidden": [16], "dropout": 0.1}}
    torch.manual_seed(seed)
    net = build_network("mlp", **kwargs)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(30):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(xs), ys).backward()
        optimizer.step()
    weights = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    model = TorchTabularModel(
        preprocess=pre, features=list(x.columns), classes=["no", "yes"], model="mlp", network_kwargs=kwargs, weights=weights
    )
    return model, test


def test_the_stored_model_takes_raw_columns_and_is_stored_without_its_network_or_pickle(tmp_path: Path) -> None:
    from mlflowkit.kinds.model_files import SKOPS, load_model, save_model
    from mlflowkit.store import ArtifactStore

    model, test = _trained()
    proba = model.predict_proba(test)
    assert proba.shape == (len(test), 2) and abs(float(proba.sum(axis=1).max()) - 1) < 1e-6
    store = ArtifactStore(tmp_path / "store")
    model.predict(test)  # builds the network: it must not be stored
    ref = save_model(store, model)
    assert ref.media_type == SKOPS and store.get_bytes(ref)[:2] == b"PK"  # a skops zip, not a pickle
    again = load_model(store, ref, spec_dir=str(tmp_path))
    assert again._net is None
    assert (again.predict(test) == model.predict(test)).all()
    assert list(again.classes_) == ["no", "yes"]


def test_a_stored_torch_model_cannot_name_any_callable_as_its_network(tmp_path: Path) -> None:
    from mlflowkit.kinds.model_files import UntrustedModel, load_model, save_model
    from mlflowkit.store import ArtifactStore

    model, _ = _trained()
    store = ArtifactStore(tmp_path / "store")
    # As a store writer could make it: a network path outside the allowed modules, and a folder of theirs.
    model.model, model.search_dir = "os:system", "/somewhere/theirs"
    with pytest.raises(UntrustedModel, match="'os:system' is outside the allowed modules"):
        load_model(store, save_model(store, model), spec_dir=str(tmp_path))


def test_onnx_export_matches_torch_on_held_out_rows_with_the_sklearn_contract() -> None:
    import numpy as np

    from mlflowkit.kinds.export import export_onnx
    from mlflowkit.targets.contract import feeds, run_onnx

    model, test = _trained()
    data, contract = export_onnx(model, test, features=model.features, classes=["no", "yes"], target="churned")
    parity = contract.parity
    assert parity["ok"], parity["describe"]
    assert parity["rows"] == len(test) and parity["disagreeing_rows"] == 0 and parity["max_abs_diff"] <= 1e-5
    # The same raw-column inputs as a scikit-learn pipeline's export: numbers float32, text strings.
    assert contract.layout == "columns"
    types = {t.name: (t.dtype, t.shape) for t in contract.inputs}
    assert types["age"] == ("float32", (-1, 1)) and types["contract"] == ("string", (-1, 1))
    assert [o.name for o in contract.outputs] == ["label", "probabilities"]
    assert {o.name: o.dtype for o in contract.outputs} == {"label": "string", "probabilities": "float32"}
    assert contract.classes == ("no", "yes") and contract.max_opset >= 18
    assert contract.producer["torch"].startswith("2.13")
    # Dynamic batch: one row and many rows run through the same graph.
    for rows in (test.iloc[:1], test):
        out = run_onnx(data, feeds(contract, rows))
        assert out["probabilities"].shape == (len(rows), 2)
        assert np.allclose(out["probabilities"], model.predict_proba(rows), atol=1e-5)


def test_export_refuses_an_opset_the_torch_exporter_cannot_write() -> None:
    from mlflowkit.kinds.export import export_onnx

    model, test = _trained(rows=300)
    with pytest.raises(StepFailed, match=r"torch.onnx.export cannot export mlp: ValueError: .*opset 18 or newer"):
        export_onnx(model, test, features=model.features, classes=["no", "yes"], target="churned", opset=15)
    with pytest.raises(StepFailed, match=r"opset 99 is not supported here: .*torch.onnx up to \d+"):
        export_onnx(model, test, features=model.features, classes=["no", "yes"], target="churned", opset=99)


def test_a_skewed_export_fails_parity() -> None:
    from mlflowkit.kinds.export import export_onnx

    model, test = _trained(rows=300)
    _, contract = export_onnx(model, test, features=model.features, classes=["no", "yes"], target="churned", skew=1e-3)
    assert not contract.parity["ok"] and contract.parity["max_abs_diff"] > 1e-5


def test_the_example_and_the_docstring_validate() -> None:
    spec = mlflowkit.load_spec(EXAMPLE / "spec.yaml")
    assert spec.section("train").num_workers == 2
    example = (TorchTrain.__doc__ or "").split("```yaml")[1].split("```")[0]
    assert "kind: torch" in example and "target_loss" in example


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ("model: mlp\nmodel_params: {width: 3}", "model_params apply to a `module:Class` model"),
        ("model: mypkg.nets:Net", "model 'mypkg.nets:Net' is outside the allowed modules"),
        ("min_delta: 0.1", "min_delta applies to early stopping"),
        ("exclude: [churned]", "'churned' is the target"),
        ("epochs: 2\ncheckpoint_every: 3", "checkpoint_every (3) is more than epochs"),
        ("model: not a path", "String should match pattern"),
    ],
)
def test_bad_torch_sections_are_spec_errors(tmp_path: Path, train: str, message: str) -> None:
    spec = """\
        spec: mlflowkit/v1
        name: bad
        recipe: torch-tabular-classification
        data: {source: data.csv, target: churned}
        train:
        """
    section = "".join(f"  {line}\n" for line in train.splitlines())
    (tmp_path / "spec.yaml").write_text(textwrap.dedent(spec) + section)
    with pytest.raises(SpecError) as caught:
        mlflowkit.load_spec(tmp_path / "spec.yaml")
    assert message in str(caught.value)


def test_validating_a_torch_spec_loads_neither_torch_nor_ray() -> None:
    code = textwrap.dedent(
        f"""
        import sys, mlflowkit
        mlflowkit.load_spec({str(EXAMPLE / "spec.yaml")!r})
        heavy = sorted(m for m in ("torch", "ray", "onnx", "onnxscript", "sklearn") if m in sys.modules)
        print(",".join(heavy))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
