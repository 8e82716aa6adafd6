"""ArtifactStore on real filesystems: a local folder (as a path and as file://), memory://, and S3 (moto on loopback)."""

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


@pytest.fixture(params=["memory", "s3"])
def remote(request: pytest.FixtureRequest) -> ArtifactStore:
    """A store that is not a local folder: fsspec's memory://, or S3 on the session's moto server."""
    if request.param == "s3":
        return ArtifactStore(str(request.getfixturevalue("s3_root")) + "/store")
    return ArtifactStore(f"memory://mlflowkit-test-{uuid.uuid4().hex}/store")


def test_remote_store(remote: ArtifactStore) -> None:
    store = remote
    assert not store.is_local
    assert store.uri.startswith(("memory://", "s3://"))
    ref = store.put_bytes(b"in memory", "text/plain", {"k": "v"})
    assert store.put_bytes(b"in memory", "text/plain").key == ref.key
    assert store.get_bytes(ref) == b"in memory"
    assert store.exists(ref) and store.verify(ref)
    assert store.local_path(ref) is None
    store.write_json("runs/r/x.json", {"b": 1, "a": 2})
    assert store.read_json("runs/r/x.json") == {"a": 2, "b": 1}
    store.write_json("runs/r/x.json", {"replaced": True})
    assert store.read_json("runs/r/x.json") == {"replaced": True}
    assert store.list_keys("") == sorted([ref.key, "runs/r/x.json"])
    assert store.list_keys("runs/") == ["runs/r/x.json"]
    assert store.list_keys("nothing/") == []
    with pytest.raises(FileNotFoundError):
        store.read_json("runs/r/absent.json")
    with pytest.raises(ValueError, match="invalid store key"):
        store.write_json("a/../b", {})


def test_remote_put_file(remote: ArtifactStore, tmp_path: Path) -> None:
    data = os.urandom(2_500_000)
    src = tmp_path / "f.bin"
    src.write_bytes(data)
    ref = remote.put_file(src, "application/octet-stream")
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert remote.get_bytes(ref) == data
    assert remote.verify(ref)
    assert remote.put_bytes(data, "application/octet-stream").key == ref.key


def test_remote_store_sees_what_another_process_wrote(s3_root: str) -> None:
    # No listing cache: a key written by another client (here: a second filesystem instance) is listed at once.
    import s3fs

    store = ArtifactStore(s3_root + "/store")
    assert store.list_keys("runs/") == []
    other = s3fs.S3FileSystem(skip_instance_cache=True)
    other.pipe_file(f"{s3_root.removeprefix('s3://')}/store/runs/r/late.json", b"{}")
    assert store.list_keys("runs/") == ["runs/r/late.json"]
    assert store.exists("runs/r/late.json")


def test_remote_lock_is_a_lease(remote: ArtifactStore) -> None:
    with remote.lock("train"):
        assert remote.exists("locks/train.lock")
        with pytest.raises(TimeoutError, match="held by another"), remote.lock("train", timeout=0.2):
            pass
    assert not remote.exists("locks/train.lock")
    with remote.lock("train", timeout=1):
        pass
    with pytest.raises(ValueError, match="invalid lock name"):
        remote.lock("../escape")


def test_remote_lock_of_a_dead_holder_is_taken_over_once_expired(remote: ArtifactStore) -> None:
    from mlflowkit.store._s3 import lease

    path = f"{remote.root}/locks/train.lock"
    expired = {"token": "dead", "expires": 0, "host": "gone", "pid": 1}
    remote.fs.pipe_file(path, json.dumps(expired).encode())  # as left by a holder killed long ago
    with remote.lock("train", timeout=5):
        assert json.loads(remote.fs.cat_file(path))["token"] != "dead"
    # A live lease is not taken over.
    with lease(remote.fs, path, timeout=1, ttl=60), pytest.raises(TimeoutError), remote.lock("train", timeout=0.3):
        pass


def test_lock_is_refused_where_no_atomic_create_is_known(tmp_path: Path) -> None:
    from fsspec.implementations.dirfs import DirFileSystem

    store = ArtifactStore(f"memory://mlflowkit-test-{uuid.uuid4().hex}")
    store.fs = DirFileSystem(path="/", fs=store.fs)  # a filesystem the lease does not vouch for
    with pytest.raises(NotImplementedError, match="atomic create-if-absent"):
        store.lock("x")
