"""ArtifactStore on real filesystems: a local folder (as a path and as file://) and fsspec's memory://."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from pathlib import Path

import pytest

from mlflowkit.store import ArtifactStore, Ref


@pytest.fixture(params=["path", "file_uri"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    root = tmp_path / "store"
    return ArtifactStore(root if request.param == "path" else root.as_uri())


def _temp_files(root: str) -> list[str]:
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files if f.startswith(".tmp-")]


def test_root_is_created_and_local(store: ArtifactStore, tmp_path: Path) -> None:
    assert store.is_local
    assert Path(store.root) == tmp_path / "store"
    assert (tmp_path / "store").is_dir()
    assert store.uri == (tmp_path / "store").as_uri()


def test_put_bytes_is_content_addressed_and_idempotent(store: ArtifactStore) -> None:
    data = b"a,b\n1,2\n"
    sha = hashlib.sha256(data).hexdigest()
    ref = store.put_bytes(data, "text/csv", {"columns": ["a", "b"]})
    assert ref == Ref(
        key=f"objects/{sha[:2]}/{sha}",
        sha256=sha,
        size=len(data),
        media_type="text/csv",
        meta={"columns": ["a", "b"]},
    )
    path = store.local_path(ref)
    assert path is not None
    before = os.stat(path)

    again = store.put_bytes(data, "text/csv")
    after = os.stat(path)
    assert again.key == ref.key
    # Same bytes: the object is not rewritten (same inode, same mtime).
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert store.get_bytes(ref) == store.get_bytes(ref.key) == data
    assert Path(path).read_bytes() == data
    assert store.exists(ref) and store.exists(ref.key)


def test_put_file_streams_and_matches_put_bytes(store: ArtifactStore, tmp_path: Path) -> None:
    # Larger than one 1 MiB chunk, so hashing and copying go through several chunks.
    data = os.urandom(2_500_000)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    ref = store.put_file(src, "application/octet-stream")
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert ref.size == len(data)
    assert store.get_bytes(ref) == data
    assert store.put_bytes(data, "application/octet-stream").key == ref.key
    assert store.put_file(src, "application/octet-stream").key == ref.key
    assert _temp_files(store.root) == []


def test_verify_detects_corruption_and_absence(store: ArtifactStore) -> None:
    ref = store.put_bytes(b"the model", "application/octet-stream")
    assert store.verify(ref)
    path = store.local_path(ref)
    assert path is not None
    Path(path).write_bytes(b"the modem")  # same size, different bytes
    assert not store.verify(ref)
    os.remove(path)
    assert not store.verify(ref)
    assert not store.exists(ref)
    with pytest.raises(FileNotFoundError):
        store.get_bytes(ref)


def test_put_repairs_an_object_of_the_wrong_size(store: ArtifactStore) -> None:
    ref = store.put_bytes(b"complete", "text/plain")
    path = store.local_path(ref)
    assert path is not None
    Path(path).write_bytes(b"comp")
    assert store.put_bytes(b"complete", "text/plain") == ref
    assert store.verify(ref)


def test_json_round_trip_sorted_and_indented(store: ArtifactStore) -> None:
    doc = {"b": [1, 2], "a": {"y": None, "x": "é"}}
    store.write_json("runs/r1/record.json", doc)
    assert store.read_json("runs/r1/record.json") == doc
    text = Path(store.root, "runs", "r1", "record.json").read_text()
    assert text == json.dumps(doc, sort_keys=True, indent=2) + "\n"
    store.write_json("runs/r1/record.json", {"replaced": True})
    assert store.read_json("runs/r1/record.json") == {"replaced": True}
    with pytest.raises(FileNotFoundError):
        store.read_json("runs/r1/absent.json")


def test_atomic_writes_leave_no_temp_files_and_no_torn_reads(store: ArtifactStore) -> None:
    docs = [{"n": i, "pad": str(i) * 50_000} for i in range(2)]
    store.write_json("state.json", docs[0])
    errors: list[Exception] = []

    def writer() -> None:
        try:
            for i in range(40):
                store.write_json("state.json", docs[i % 2])
        except (OSError, ValueError) as exc:  # surfaced by the assert below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    while thread.is_alive():
        # A reader sees one whole document or the other, never a mix or a truncation.
        doc = store.read_json("state.json")
        assert doc in docs
    thread.join()
    assert errors == []
    assert _temp_files(store.root) == []


def test_list_keys(store: ArtifactStore) -> None:
    store.write_json("runs/r1/a.json", 1)
    store.write_json("runs/r1/b.json", 2)
    store.write_json("runs/r2/a.json", 3)
    ref = store.put_bytes(b"x", "text/plain")
    assert store.list_keys("runs/r1/") == ["runs/r1/a.json", "runs/r1/b.json"]
    assert store.list_keys("runs/r") == ["runs/r1/a.json", "runs/r1/b.json", "runs/r2/a.json"]
    assert store.list_keys("objects/") == [ref.key]
    assert store.list_keys("nothing/") == []
    assert store.list_keys("") == sorted([ref.key, "runs/r1/a.json", "runs/r1/b.json", "runs/r2/a.json"])


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "../x", "a//b", "a\\b", "./a"])
def test_bad_keys_are_refused(store: ArtifactStore, key: str) -> None:
    with pytest.raises(ValueError, match="invalid store key"):
        store.write_json(key, {})


def test_lock_excludes_a_second_holder(store: ArtifactStore) -> None:
    with store.lock("train"):
        assert Path(store.root, "locks", "train.lock").exists()
        with pytest.raises(TimeoutError), store.lock("train", timeout=0.1):
            pass
    with store.lock("train", timeout=1):
        pass
    with pytest.raises(ValueError, match="invalid lock name"):
        store.lock("../escape")


def test_ref_is_frozen_and_strict() -> None:
    ref = Ref(key="objects/aa/aa", sha256="aa", size=1, media_type="text/plain")
    assert ref.meta == {}
    with pytest.raises(ValueError):
        Ref(key="k", sha256="s", size=1, media_type="m", extra=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        ref.size = 2  # type: ignore[misc, unused-ignore]  # frozen only to the pydantic plugin
    assert Ref.model_validate_json(ref.model_dump_json()) == ref


def test_memory_filesystem() -> None:
    store = ArtifactStore(f"memory://mlflowkit-test-{uuid.uuid4().hex}/store")
    assert not store.is_local
    assert store.uri.startswith("memory://")
    ref = store.put_bytes(b"in memory", "text/plain", {"k": "v"})
    assert store.put_bytes(b"in memory", "text/plain").key == ref.key
    assert store.get_bytes(ref) == b"in memory"
    assert store.exists(ref) and store.verify(ref)
    assert store.local_path(ref) is None
    store.write_json("runs/r/x.json", {"b": 1, "a": 2})
    assert store.read_json("runs/r/x.json") == {"a": 2, "b": 1}
    assert store.list_keys("") == sorted([ref.key, "runs/r/x.json"])
    with pytest.raises(FileNotFoundError):
        store.read_json("runs/r/absent.json")
    with pytest.raises(NotImplementedError, match="only supported on local stores"):
        store.lock("x")


def test_memory_put_file(tmp_path: Path) -> None:
    store = ArtifactStore(f"memory://mlflowkit-test-{uuid.uuid4().hex}")
    src = tmp_path / "f.bin"
    src.write_bytes(b"file bytes" * 1000)
    ref = store.put_file(src, "application/octet-stream")
    assert store.get_bytes(ref) == src.read_bytes()
    assert store.verify(ref)
