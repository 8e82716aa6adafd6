"""Every read of a stored object checks its hash, on a local folder and on S3 (moto): a store writer's
replacement or a flipped bit is a named error, and a rewrite replaces the damaged bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from mlflowkit.errors import IntegrityError
from mlflowkit.store import ArtifactStore


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(request.getfixturevalue("s3_root") if request.param == "s3" else tmp_path / "store")


def _overwrite(store: ArtifactStore, key: str, data: bytes) -> None:
    """What someone with write access to the store can do."""
    store.fs.pipe_file(store.where(key), data)


def test_a_replaced_object_is_refused_naming_it_with_both_hashes(store: ArtifactStore) -> None:
    ref = store.put_bytes(b"the model", "application/octet-stream")
    payload = b"cos\nsystem\n(S'touch /tmp/pwned'\ntR."  # a pickle that would run a command
    _overwrite(store, ref.key, payload)
    found = hashlib.sha256(payload).hexdigest()
    for read in (ref, ref.key):  # by ref, and by the object's key alone (its name is its hash)
        with pytest.raises(IntegrityError) as caught:
            store.get_bytes(read)
        assert (caught.value.where, caught.value.expected, caught.value.found) == (store.where(ref.key), ref.sha256, found)
        assert f"expected SHA-256 {ref.sha256}, found {found}" in str(caught.value)
    assert store.problem(ref) == found and not store.verify(ref)
    if store.is_local:  # a path handed to a reader (pandas, ONNX Runtime) is checked first
        with pytest.raises(IntegrityError, match=ref.sha256):
            store.local_path(ref)


def test_a_flipped_bit_of_the_same_size_is_found_and_a_rewrite_replaces_it(store: ArtifactStore) -> None:
    data = bytes(range(256)) * 64
    ref = store.put_bytes(data, "application/vnd.apache.parquet")
    damaged = bytearray(data)
    damaged[1000] ^= 0x01
    _overwrite(store, ref.key, bytes(damaged))
    assert store.problem(ref) == hashlib.sha256(bytes(damaged)).hexdigest()
    again = store.put_bytes(data, "application/vnd.apache.parquet")  # a rerun writing the same output
    assert again == ref
    assert store.get_bytes(ref) == data and store.problem(ref) is None


def test_put_file_replaces_a_damaged_object_too(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "table.parquet"
    src.write_bytes(b"x" * 5000)
    ref = store.put_file(src, "application/vnd.apache.parquet")
    _overwrite(store, ref.key, b"y" * 5000)
    assert store.put_file(src, "application/vnd.apache.parquet") == ref
    assert store.get_bytes(ref) == b"x" * 5000


def test_missing_objects_and_documents(store: ArtifactStore) -> None:
    ref = store.put_bytes(b"gone", "text/plain")
    store.delete(ref)
    store.delete(ref)  # nothing there: nothing happens
    assert store.problem(ref) == "missing"
    with pytest.raises(FileNotFoundError):
        store.get_bytes(ref)
    store.write_json("runs/r1.json", {"run_id": "r1"})
    assert store.problem("runs/r1.json") is None  # a document has no hash to check, only presence
    assert store.get_bytes("runs/r1.json").startswith(b"{")


def test_no_reader_in_mlflowkit_is_handed_a_store_path() -> None:
    # A path is hashed, then reopened by its reader: a swap between the two goes unseen. Readers get the
    # checked bytes instead (get_bytes, read_file); only the store itself may offer a path, for other callers.
    import mlflowkit

    package = Path(mlflowkit.__file__).parent
    users = [
        str(p.relative_to(package))
        for p in package.rglob("*.py")
        if ".local_path(" in p.read_text(encoding="utf-8") and p.name != "artifacts.py"
    ]
    assert users == []
