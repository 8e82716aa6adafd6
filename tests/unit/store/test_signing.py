"""Registry versions signed at registration and verified before they are read, shown or promoted,
on a local folder and on S3 (moto): a registry writer who rewrites a file and its digest is refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlflowkit.cli import app
from mlflowkit.edge.signing import generate_keypair
from mlflowkit.errors import RegistryError
from mlflowkit.policy import load_policy, registry_trust
from mlflowkit.store import ModelRegistry, Trust
from mlflowkit.store.promotion import promote
from mlflowkit.store.trust import SIGNING_KEY_ENV, TRUSTED_KEYS_ENV


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name in ("old", "new", "stranger"):
        generate_keypair(tmp_path / f"{name}.pem", tmp_path / f"{name}.pub")
        out[name], out[f"{name}.pub"] = tmp_path / f"{name}.pem", tmp_path / f"{name}.pub"
    return out


@pytest.fixture(params=["local", "s3"])
def root(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An artifact store root; its registry is <root>/registry."""
    for var in (SIGNING_KEY_ENV, TRUSTED_KEYS_ENV):
        monkeypatch.delenv(var, raising=False)
    return str(request.getfixturevalue("s3_root")) if request.param == "s3" else str(tmp_path / "store")


def _registry(root: str, **env: str) -> ModelRegistry:
    return ModelRegistry(root + "/registry", trust=Trust.load(environ=env))


def _forge(registry: ModelRegistry, version: int, *, file: str, data: bytes, metrics: dict[str, float]) -> None:
    """What a registry writer can do: replace a file, write its hash into version.json, and better metrics."""
    storage = registry.storage
    storage.write(f"churn/versions/{version}/{file}", data)
    doc = json.loads(storage.read(f"churn/versions/{version}/version.json"))
    doc["digests"][file] = hashlib.sha256(data).hexdigest()
    doc["lineage"]["metrics"] = metrics
    storage.write(f"churn/versions/{version}/version.json", (json.dumps(doc, sort_keys=True, indent=2) + "\n").encode())


def test_a_forged_version_is_refused_naming_the_file(root: str, keys: dict[str, Path]) -> None:
    signer = _registry(root, MLFLOWKIT_SIGNING_KEY=str(keys["old"]))
    v1 = signer.register("churn", {"model.onnx": b"good", "card.json": b"{}"}, {"metrics": {"auc": 0.8}})
    signer.register("churn", {"model.onnx": b"also good"}, {"metrics": {"auc": 0.81}})
    assert signer.storage.read("churn/versions/1/version.sig")  # signed at registration
    reader = _registry(root, MLFLOWKIT_TRUSTED_KEYS=str(keys["old.pub"]))  # holds the public key only
    assert reader.signature("churn", 1).state == "verified"
    assert reader.read_file("churn", 1, "model.onnx") == b"good"

    _forge(signer, 2, file="model.onnx", data=b"payload", metrics={"auc": 0.99})
    version_json = reader.storage.where("churn/versions/2/version.json")
    for refused in (
        lambda: reader.get("churn", 2),
        lambda: reader.read_file("churn", 2, "model.onnx"),
        lambda: reader.signature("churn", 2),
        lambda: promote(reader, "churn", 2, reason="better metrics", actor="mallory"),
    ):
        with pytest.raises(RegistryError, match="churn v2 is forged or damaged") as caught:
            refused()
        assert version_json in str(caught.value)
    assert reader.get("churn", 1) == v1.model_copy(update={"aliases": ()})  # the others still read
    assert reader.aliases("churn") == {}  # nothing was promoted

    # Without a trusted key nothing can tell: the registry says the signature went unchecked.
    blind = _registry(root)
    assert blind.get("churn", 2).lineage["metrics"] == {"auc": 0.99}
    assert blind.signature("churn", 2).state == "unchecked"


def test_unsigned_and_foreign_versions_and_signing_after_review(root: str, keys: dict[str, Path]) -> None:
    plain = _registry(root)
    plain.register("churn", {"m": b"1"}, {})
    assert plain.signature("churn", 1).state == "unsigned"
    _registry(root, MLFLOWKIT_SIGNING_KEY=str(keys["stranger"])).register("churn", {"m": b"2"}, {})

    reader = _registry(root, MLFLOWKIT_TRUSTED_KEYS=str(keys["old.pub"]))
    with pytest.raises(RegistryError, match=r"churn v1 is not signed .*version.sig is missing"):
        reader.get("churn", 1)
    with pytest.raises(RegistryError, match=r"churn v2 is signed by key .*, which is not trusted here"):
        reader.get("churn", 2)
    # Listing still works: each version is refused only when it is read.
    assert [v.version for v in reader.versions("churn")] == [1, 2]

    with pytest.raises(RegistryError, match="no signing key"):
        reader.sign("churn", 1)
    owner = _registry(root, MLFLOWKIT_SIGNING_KEY=str(keys["old"]))
    assert owner.sign("churn", 1).state == "verified"
    assert reader.get("churn", 1).version == 1
    # A version whose file was damaged is not signed: signing vouches for what the digests say.
    owner.storage.write("churn/versions/2/m", b"tampered")
    with pytest.raises(RegistryError, match="is damaged"):
        owner.sign("churn", 2)


def test_a_file_without_a_digest_is_neither_read_nor_signed(root: str, keys: dict[str, Path]) -> None:
    # Every file gets a digest at registration. A registry writer who drops one from an unsigned version and
    # replaces the file (an old version's model.joblib, say) would have it vouched for by `models sign --all`,
    # and a signed pickle is loaded.
    plain = _registry(root)
    plain.register("churn", {"model.joblib": b"old pickle", "metrics.json": b"{}"}, {})
    plain.storage.write("churn/versions/1/model.joblib", b"payload")
    doc = json.loads(plain.storage.read("churn/versions/1/version.json"))
    del doc["digests"]["model.joblib"]
    plain.storage.write("churn/versions/1/version.json", json.dumps(doc).encode())
    with pytest.raises(RegistryError, match=r"churn.* v1 file 'model.joblib' has no digest in its version.json"):
        plain.read_file("churn", 1, "model.joblib")
    owner = _registry(root, MLFLOWKIT_SIGNING_KEY=str(keys["old"]))
    with pytest.raises(RegistryError, match=r"has no digest"):
        owner.sign("churn", 1)
    with pytest.raises(FileNotFoundError):
        owner.storage.read("churn/versions/1/version.sig")


def test_a_signed_record_replayed_under_another_version_is_refused(root: str, keys: dict[str, Path]) -> None:
    # The registry writer copies a version.json and its signature, both genuine, into another version's folder:
    # an old or weaker version of the same model, or another model's, would then be read as churn v2.
    signer = _registry(root, MLFLOWKIT_SIGNING_KEY=str(keys["old"]))
    signer.register("churn", {"model.onnx": b"weak"}, {"metrics": {"auc": 0.6}})
    signer.register("churn", {"model.onnx": b"strong"}, {"metrics": {"auc": 0.9}})
    signer.register("fraud", {"model.onnx": b"fraud model"}, {"metrics": {"auc": 0.99}})
    reader = _registry(root, MLFLOWKIT_TRUSTED_KEYS=str(keys["old.pub"]))
    storage = signer.storage
    for source in ("churn/versions/1", "fraud/versions/1"):
        for name in ("version.json", "version.sig"):
            storage.write(f"churn/versions/2/{name}", storage.read(f"{source}/{name}"))
        with pytest.raises(RegistryError, match=r"churn/versions/2/version.json is the record of (churn|fraud) v1, not churn v2"):
            reader.get("churn", 2)
        with pytest.raises(RegistryError, match="not churn v2"):
            reader.read_file("churn", 2, "model.onnx")
    listed = CliRunner().invoke(app, ["models", "list", "--store", root])
    assert listed.exit_code == 1 and "not churn v2" in " ".join(listed.output.split())
    assert listed.exception is None or isinstance(listed.exception, SystemExit)  # said, not a traceback


def test_rotating_keys(root: str, keys: dict[str, Path]) -> None:
    import os

    _registry(root, MLFLOWKIT_SIGNING_KEY=str(keys["old"])).register("churn", {"m": b"1"}, {})
    both = os.pathsep.join([str(keys["old.pub"]), str(keys["new.pub"])])
    during = _registry(root, MLFLOWKIT_SIGNING_KEY=str(keys["new"]), MLFLOWKIT_TRUSTED_KEYS=both)
    during.register("churn", {"m": b"2"}, {})
    assert [during.signature("churn", n).state for n in (1, 2)] == ["verified", "verified"]
    during.sign("churn", 1)  # re-signed with the new key
    after = _registry(root, MLFLOWKIT_TRUSTED_KEYS=str(keys["new.pub"]))
    assert {after.signature("churn", n).key_id for n in (1, 2)} == {during.signature("churn", 2).key_id}


def test_a_policy_requires_signing_and_names_trusted_keys(root: str, keys: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(
        f"policy: mlflowkit/v1\nregistry:\n  require_signing: true\n  trusted_keys: [{keys['old.pub'].name}]\n"
    )
    policy = load_policy(tmp_path / "policy.yaml")
    unsigned = ModelRegistry(root + "/registry", trust=registry_trust(policy, environ={}))
    with pytest.raises(RegistryError, match=r"the policy requires signed versions .*MLFLOWKIT_SIGNING_KEY"):
        unsigned.register("churn", {"m": b"1"}, {})
    signed = ModelRegistry(root + "/registry", trust=registry_trust(policy, environ={SIGNING_KEY_ENV: str(keys["old"])}))
    signed.register("churn", {"m": b"1"}, {})
    assert unsigned.signature("churn", 1).state == "verified"  # the policy's key checks it
    (tmp_path / "policy.yaml").write_text("policy: mlflowkit/v1\nregistry:\n  require_signing: true\n  trusted_keys:\n    - not-there.pub\n")
    missing = load_policy(tmp_path / "policy.yaml")
    with pytest.raises(RegistryError, match=r"policy.yaml:5:7: cannot read key file .*not-there.pub"):
        registry_trust(missing, environ={})


def test_models_show_says_whether_a_version_is_signed(root: str, keys: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    _registry(root).register("churn", {"m": b"1"}, {})
    _registry(root, MLFLOWKIT_SIGNING_KEY=str(keys["old"])).register("churn", {"m": b"2"}, {})

    def show(version: str) -> tuple[int, str]:
        result = CliRunner().invoke(app, ["models", "show", "churn", version, "--store", root])
        return result.exit_code, " ".join(result.output.split())

    code, output = show("1")
    assert code == 0 and "unsigned (nothing vouches for its files" in output
    code, output = show("2")
    assert code == 0 and "not verified (no trusted key configured" in output
    monkeypatch.setenv(TRUSTED_KEYS_ENV, str(keys["old.pub"]))
    code, output = show("2")
    assert code == 0 and "signed by key" in output and "verified" in output
    code, output = show("1")
    assert code == 1 and "churn v1 is not signed" in output


def test_a_verified_version_can_replace_a_forged_champion(root: str, keys: dict[str, Path]) -> None:
    signer = _registry(root, MLFLOWKIT_SIGNING_KEY=str(keys["old"]))
    for n in (1, 2):
        signer.register("churn", {"model.onnx": f"model {n}".encode()}, {"metrics": {"auc": 0.8}})
    promote(signer, "churn", 1, reason="first")
    promote(signer, "churn", 2, reason="second")
    _forge(signer, 2, file="model.onnx", data=b"payload", metrics={"auc": 0.99})
    reader = _registry(root, MLFLOWKIT_TRUSTED_KEYS=str(keys["old.pub"]))
    with pytest.raises(RegistryError, match="forged"):
        reader.get("churn", "champion")
    # The way out: promote a version that verifies; the forged one is only pointed at, never read.
    back = promote(reader, "churn", 1, reason="v2 does not verify", actor="ops", force=True)
    assert back.aliases == ("champion",) and reader.aliases("churn") == {"champion": 1, "previous": 2}
