"""The Triton model repository on S3 (moto on loopback): what the target writes, prunes and restores.

No Triton server here (that is test_triton.py's job): a stand-in answers the target's few HTTP calls, so
this checks the repository side — every object written through fsspec to ``s3://``.
"""

from __future__ import annotations

from typing import Any

import fsspec
import pandas as pd
import pytest

from mlflowkit.targets.triton import TritonDeployError, TritonTarget, deploy


class FakeTriton:
    """Answers like a live server in explicit model-control mode; loads whatever the repository holds."""

    def __init__(self, repository: str, *, fail_load: bool = False) -> None:
        self.repository, self.fail_load, self.loaded = repository, fail_load, 0

    def is_server_live(self) -> bool:
        return True

    def get_model_repository_index(self) -> list[dict[str, Any]]:
        return [{"name": "churn", "version": str(self.loaded), "state": "READY"}] if self.loaded else []

    def load_model(self, name: str) -> None:
        if self.fail_load:
            raise RuntimeError("failed to load 'churn' version 2: broken model")
        fs, root = fsspec.core.url_to_fs(self.repository)
        self.loaded = max(int(p.rsplit("/", 1)[-1]) for p in fs.ls(f"{root}/{name}", detail=False) if p.rsplit("/", 1)[-1].isdigit())

    def is_model_ready(self, name: str, version: str) -> bool:
        return str(self.loaded) == version

    def unload_model(self, name: str) -> None:
        self.loaded = 0


@pytest.fixture(scope="module")
def exported() -> tuple[bytes, Any]:
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    from mlflowkit.kinds.export import export_onnx

    x, y = make_classification(n_samples=200, n_features=4, random_state=0)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(4)])
    model = LogisticRegression().fit(frame, y)
    frame["label"] = y
    return export_onnx(model, frame, features=[f"f{i}" for i in range(4)], classes=[0, 1], target="label")


def test_triton_repository_on_s3(s3_root: str, exported: tuple[bytes, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflowkit.targets.triton import rollout

    data, contract = exported
    repo = f"{s3_root}/triton"
    settings = TritonTarget.model_validate(
        {"target": "triton", "url": "http://127.0.0.1:1", "model_repository": repo, "backend": "python", "keep_versions": 1}
    )
    server = FakeTriton(repo)
    monkeypatch.setattr(rollout, "_http_client", lambda _: server)
    fs, root = fsspec.core.url_to_fs(repo)

    first = deploy(settings, name="churn", version=1, model=data, contract=contract, smoke=None)
    assert first["version"] == 1 and server.loaded == 1
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.find(f"{root}/churn")) == ["config.pbtxt", "model.onnx", "model.py"]
    assert fs.cat_file(f"{root}/churn/1/model.onnx") == data
    assert 'name: "churn"' in fs.cat_file(f"{root}/churn/config.pbtxt").decode()

    second = deploy(settings, name="churn", version=2, model=data, contract=contract, smoke=None)
    assert second["previous"] == 1 and second["removed_versions"] == [1]  # keep_versions: 1, pruned on S3
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls(f"{root}/churn", detail=False)) == ["2", "config.pbtxt"]

    # A failed load puts the repository back as it was, on S3 too.
    config_before = fs.cat_file(f"{root}/churn/config.pbtxt")
    server.fail_load = True
    with pytest.raises(TritonDeployError, match="broken model"):
        deploy(settings, name="churn", version=3, model=data, contract=contract, smoke=None)
    assert not fs.exists(f"{root}/churn/3")
    assert fs.cat_file(f"{root}/churn/config.pbtxt") == config_before
