"""Signed versions on a real Triton started with a trusted key: the generated model.py loads only what that key signed.

The deploy writes the edge bundle's manifest (model.onnx, contract.json, lineage.json, with their sha256)
and its ed25519 signature beside the model, and checks the folder as written. The server (``triton up
--trusted-key``) checks it again in the model's ``initialize``, from the bytes it is about to load, so a
model swapped in the repository afterwards, an unsigned version, or one signed by another key never loads.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helpers"))
from edge_helpers import Exported, keypair, shared_models
from triton_helpers import ask_http, local_triton

from mlflowkit.targets import triton_local
from mlflowkit.targets.triton import TritonDeployError, TritonTarget, deploy

pytestmark = [pytest.mark.triton, pytest.mark.slow]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("keys")
    return {"ours": keypair(folder, "ours"), "theirs": keypair(folder, "theirs")}


@pytest.fixture(scope="module")
def triton(
    tmp_path_factory: pytest.TempPathFactory, keys: dict[str, tuple[Path, Path]]
) -> Iterator[triton_local.LocalTriton]:
    """A real server that trusts only our public key."""
    yield from local_triton(tmp_path_factory, "triton-signed", trusted_key=keys["ours"][1])


def target(server: triton_local.LocalTriton, key: Path | None, **kw: object) -> TritonTarget:
    return TritonTarget.model_validate(
        {
            "target": "triton",
            "url": server.http_url,
            "model_repository": server.model_repository,
            "backend": "python",
            "signing": {"key_file": str(key)} if key else None,
            **kw,
        }
    )


def serving(server: triton_local.LocalTriton, name: str, exported: Exported, rows: pd.DataFrame) -> str:
    return str(ask_http(server, name, exported[1], rows).get_response()["model_version"])


def test_a_signed_version_loads_and_answers(triton: triton_local.LocalTriton, keys: dict[str, tuple[Path, Path]]) -> None:
    exported, test = shared_models()
    lineage = {"model": "churn", "version": 1, "spec_hash": "abc", "run_id": "r1"}
    record = deploy(target(triton, keys["ours"][0]), name="signed", version=1, model=exported[0][0],
                    contract=exported[0][1], smoke=test, lineage=lineage)  # fmt: skip
    assert record["candidate"]["smoke"]["http"]["rows"] > 0
    folder = Path(triton.model_repository) / "signed" / "1"
    assert sorted(p.name for p in folder.iterdir() if p.name != "__pycache__") == [
        "contract.json", "lineage.json", "manifest.json", "manifest.sig", "model.onnx", "model.py"
    ]  # fmt: skip
    assert '"spec_hash": "abc"' in (folder / "lineage.json").read_text()
    assert serving(triton, "signed", exported[0], test.head(4)) == "1"
    # v2, then a rollback to v1 (no held-out rows: readiness only), into a folder the server has used.
    ours = target(triton, keys["ours"][0])
    deploy(ours, name="signed", version=2, model=exported[1][0], contract=exported[1][1], smoke=test)
    assert serving(triton, "signed", exported[1], test.head(4)) == "2"
    back = deploy(ours, name="signed", version=1, model=exported[0][0], contract=exported[0][1], smoke=None)
    assert back["previous"] == 2 and back["candidate"] is None
    assert serving(triton, "signed", exported[0], test.head(4)) == "1"


def test_a_model_swapped_in_the_repository_does_not_load(
    triton: triton_local.LocalTriton, keys: dict[str, tuple[Path, Path]]
) -> None:
    import tritonclient.http as triton_http
    from tritonclient.utils import InferenceServerException

    exported, test = shared_models()
    deploy(target(triton, keys["ours"][0]), name="swapped", version=1, model=exported[0][0], contract=exported[0][1],
           smoke=test)  # fmt: skip
    # Someone with write access to the repository swaps the model; the next load (a restart, a reload) sees it.
    (Path(triton.model_repository) / "swapped" / "1" / "model.onnx").write_bytes(exported[1][0])
    http = triton_http.InferenceServerClient(triton.http_url.removeprefix("http://"))
    with pytest.raises(InferenceServerException) as info:
        http.load_model("swapped")
    assert "mlflowkit refused swapped v1: model.onnx has sha256" in str(info.value)
    assert "the manifest says" in str(info.value)
    # Triton keeps the copy it had loaded: still the signed model.
    assert serving(triton, "swapped", exported[0], test.head(4)) == "1"


@pytest.mark.parametrize("signer", [None, "theirs"], ids=["unsigned", "another-key"])
def test_unsigned_or_foreign_versions_never_take_traffic(
    triton: triton_local.LocalTriton, keys: dict[str, tuple[Path, Path]], signer: str | None
) -> None:
    exported, test = shared_models()
    name = f"refused-{signer}".lower()
    deploy(target(triton, keys["ours"][0]), name=name, version=1, model=exported[0][0], contract=exported[0][1],
           smoke=test)  # fmt: skip
    key = keys[signer][0] if signer else None
    with pytest.raises(TritonDeployError) as info:
        deploy(target(triton, key), name=name, version=2, model=exported[1][0], contract=exported[1][1], smoke=test)
    message = str(info.value)
    if signer is None:
        assert f"mlflowkit refused {name} v2: manifest.json is missing; this server loads only signed versions" in message
    else:
        assert f"mlflowkit refused {name} v2: it is signed by key " in message and "this server trusts key" in message
    assert message.endswith(f"it was checked as {name}__candidate and never took traffic; v1 kept serving")
    assert serving(triton, name, exported[0], test.head(4)) == "1"


def test_the_deploy_checks_the_folder_it_wrote(triton: triton_local.LocalTriton, keys: dict[str, tuple[Path, Path]]) -> None:
    """Bytes that differ from the signed ones (here through the test seam) are refused before the server loads them."""
    exported, test = shared_models()
    with pytest.raises(TritonDeployError) as info:
        deploy(target(triton, keys["ours"][0]), name="written", version=1, model=exported[0][0], contract=exported[0][1],
               smoke=test, test_serve_instead=exported[1][0])  # fmt: skip
    message = str(info.value)
    assert "the version folder as written does not verify (modified-file): model.onnx has sha256" in message
    assert message.endswith("never took traffic; nothing was serving")
    assert not (Path(triton.model_repository) / "written").exists()
    assert not (Path(triton.model_repository) / "written__candidate").exists()


def test_a_missing_signing_key_deploys_nothing(triton: triton_local.LocalTriton, tmp_path: Path) -> None:
    exported, test = shared_models()
    with pytest.raises(TritonDeployError, match=r"deploy of nokey v1: .*nothing was deployed"):
        deploy(target(triton, tmp_path / "absent.pem"), name="nokey", version=1, model=exported[0][0],
               contract=exported[0][1], smoke=test)  # fmt: skip
    assert not (Path(triton.model_repository) / "nokey").exists()
