"""``mlflowkit store verify [--repair]`` on a local folder and on S3 (moto): each tamper is reported with the
file, what was expected and what was found; what a rerun rebuilds is removed by --repair; exit 1 while damage remains."""

from __future__ import annotations

import hashlib
import json
import pickle
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mlflowkit.cli import app
from mlflowkit.edge.signing import generate_keypair
from mlflowkit.store import ArtifactStore, ModelRegistry, Ref, Trust
from mlflowkit.store.trust import SIGNING_KEY_ENV, TRUSTED_KEYS_ENV

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "helpers"))
from forged_models import popen_model


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ArtifactStore:
    for var in (SIGNING_KEY_ENV, TRUSTED_KEYS_ENV):
        monkeypatch.delenv(var, raising=False)
    return ArtifactStore(request.getfixturevalue("s3_root") if request.param == "s3" else tmp_path / "store")


def _cached_step(store: ArtifactStore, step: str, outputs: dict[str, Ref]) -> str:
    """A cache entry and a run record as a run writes them; the cache entry's key."""
    key = f"cache/{hashlib.sha256(step.encode()).hexdigest()}.json"
    raw = {k: r.model_dump(mode="json") for k, r in outputs.items()}
    store.write_json(key, {"step": step, "kind": step, "run_id": "r1", "outputs": raw})
    store.write_json("runs/r1.json", {"run_id": "r1", "steps": [{"name": step, "outputs": raw}]})
    return key


def _verify(store: ArtifactStore, *args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(app, ["store", "verify", "--json", "--store", store.uri, *args])
    return result.exit_code, json.loads(result.stdout)


def _skops_model() -> bytes:
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    return sio.dumps(LogisticRegression().fit([[0.0], [1.0]], [0, 1]))


def test_a_clean_store_verifies(store: ArtifactStore) -> None:
    _cached_step(store, "train", {"model": store.put_bytes(_skops_model(), "application/vnd.skops")})
    ModelRegistry(store.uri.rstrip("/") + "/registry").register("churn", {"m": b"1"}, {})
    code, report = _verify(store)
    assert code == 0 and report["findings"] == [] and report["unsigned"] == ["churn v1"]
    assert report["checked"] == {"objects": 1, "cache": 1, "registry": 1, "runs": 1}
    result = CliRunner().invoke(app, ["store", "verify", "--store", store.uri])
    assert result.exit_code == 0 and "every byte verified" in result.output


@pytest.mark.parametrize("tamper", ["pickle in place of the model", "a flipped byte in a table"])
def test_a_damaged_object_is_found_and_repair_drops_it_and_its_cache_entry(store: ArtifactStore, tamper: str) -> None:
    good = b"PK-model" if "model" in tamper else b"PAR1" + bytes(range(200)) + b"PAR1"
    ref = store.put_bytes(good, "application/octet-stream")
    entry = _cached_step(store, "train", {"out": ref})
    bad = pickle.dumps(print) if "model" in tamper else good[:50] + b"\xff" + good[51:]
    store.fs.pipe_file(store.where(ref), bad)

    code, report = _verify(store)
    found = hashlib.sha256(bad).hexdigest()
    assert code == 1
    by_area = {f["area"]: f for f in report["findings"]}
    assert by_area["objects"]["where"] == store.where(ref)
    assert (by_area["objects"]["expected"], by_area["objects"]["found"]) == (f"sha256 {ref.sha256}", f"sha256 {found}")
    assert by_area["cache"]["where"] == store.where(entry) and ref.key in by_area["cache"]["found"]
    assert not any(f["repaired"] for f in report["findings"])

    said = CliRunner().invoke(app, ["store", "verify", "--store", store.uri])
    assert said.exit_code == 1 and "--repair` removes what a rerun rebuilds" in said.stderr

    code, report = _verify(store, "--repair")
    assert code == 0 and all(f["repaired"] for f in report["findings"])
    assert not store.exists(ref) and not store.exists(entry)  # the next run recomputes the step
    assert store.exists("runs/r1.json")  # history stays
    code, report = _verify(store)
    assert code == 0 and report["findings"] == []


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # as outside pytest: numpy.distutils only warns on import
def test_a_planted_model_with_true_hashes_is_found_and_repair_drops_it(store: ArtifactStore, tmp_path: Path) -> None:
    # Every hash checks out (the store writer wrote the cache entry too); what the file names does not.
    marker = tmp_path / "PWNED"
    planted = store.put_bytes(popen_model(str(marker)), "application/vnd.skops")
    entry = _cached_step(store, "train", {"model": planted})
    code, report = _verify(store)
    assert code == 1
    (finding,) = report["findings"]
    assert finding["area"] == "cache" and finding["where"] == store.where(entry)
    assert finding["expected"] == f"{planted.key}: a model mlflowkit may load"
    assert "numpy.distutils.fcompiler.gnu.Popen (it is subprocess.Popen, under another name)" in finding["found"]
    code, report = _verify(store, "--repair")
    assert code == 0 and report["findings"][0]["repaired"]
    assert not store.exists(entry) and not store.exists(planted)
    assert not marker.exists()


def test_a_store_that_is_not_there_is_an_error_not_an_all_clear(store: ArtifactStore) -> None:
    missing = store.uri.rstrip("/") + "-typo"
    for args in ([], ["--json"], ["--repair"]):
        result = CliRunner().invoke(app, ["store", "verify", "--store", missing, *args])
        assert result.exit_code == 2, result.output
        assert f"no store at {missing}" in result.stderr and "every byte verified" not in result.output
    assert not store.fs.exists(missing.split("://", 1)[1] if store.uri.startswith("s3://") else missing.removeprefix("file://"))
    # A store that exists but holds nothing (a project that never ran) verified nothing either.
    result = CliRunner().invoke(app, ["store", "verify", "--store", store.uri])
    assert result.exit_code == 2 and "no store at" in result.stderr


def test_unreadable_cache_entries_and_run_records(store: ArtifactStore) -> None:
    for key, data in (("cache/" + "0" * 64 + ".json", b"{torn"), ("runs/r9.json", b"not json")):
        store.fs.makedirs(store.where(key).rsplit("/", 1)[0], exist_ok=True)
        store.fs.pipe_file(store.where(key), data)
    code, report = _verify(store, "--repair")
    assert code == 1  # the run record cannot be rebuilt
    assert [(f["area"], f["repaired"]) for f in report["findings"]] == [("cache", True), ("runs", False)]
    assert report["findings"][1]["where"] == store.where("runs/r9.json")


def test_a_forged_registry_version_is_reported_and_never_repaired(
    store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub")
    root = store.uri.rstrip("/") + "/registry"
    signer = ModelRegistry(root, trust=Trust.load(environ={SIGNING_KEY_ENV: str(tmp_path / "k.pem")}))
    signer.register("churn", {"model.skops": b"good"}, {"metrics": {"auc": 0.8}})
    signer.set_alias("churn", "champion", 1, reason="first")
    storage = signer.storage
    storage.write("churn/versions/1/model.skops", b"payload")
    doc = json.loads(storage.read("churn/versions/1/version.json"))
    doc["digests"]["model.skops"] = hashlib.sha256(b"payload").hexdigest()
    storage.write("churn/versions/1/version.json", json.dumps(doc).encode())

    code, report = _verify(store)  # without a trusted key the forgery is consistent: nothing to see
    assert code == 0
    monkeypatch.setenv(TRUSTED_KEYS_ENV, str(tmp_path / "k.pub"))
    code, report = _verify(store, "--repair")
    assert code == 1
    (finding,) = report["findings"]
    assert finding["area"] == "registry" and not finding["repaired"]
    assert "churn v1 is forged or damaged" in finding["found"] and storage.where("churn/versions/1/version.json") in finding["found"]
    said = CliRunner().invoke(app, ["store", "verify", "--store", store.uri])  # --repair would change nothing here
    assert said.exit_code == 1 and "--repair" not in said.stderr and "registry damage is never repaired" in said.stderr

    # An edited audit entry breaks its hash chain: reported where it is.
    monkeypatch.delenv(TRUSTED_KEYS_ENV)
    (first,) = storage.log_read("churn", "events")
    raw_key = "churn/events.jsonl" if first.label.startswith("events.jsonl") else "churn/events/000000000001.json"
    storage.write(raw_key, storage.read(raw_key).replace(b"first", b"forged"))
    code, report = _verify(store)
    assert code == 1
    assert [f["found"].split(":")[0] for f in report["findings"]] == [first.label]
