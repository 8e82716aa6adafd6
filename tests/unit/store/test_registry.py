"""ModelRegistry in one process: versions, references, aliases with their audit log, and clear errors.

Each test that takes ``reg`` or ``two`` runs on both backends: a local folder, and an S3 server on
loopback (moto), where ``ModelRegistry("s3://...")`` keeps its bytes in an `ObjectStorage`. Tests of one
backend's layout take ``local`` or ``s3reg``.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import fsspec
import pytest

from mlflowkit.errors import RegistryError
from mlflowkit.store import ModelRegistry, ModelVersion
from mlflowkit.store.folder_storage import FolderStorage
from mlflowkit.store.object_storage import ObjectStorage


@pytest.fixture(params=["local", "s3"])
def reg(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModelRegistry:
    monkeypatch.setenv("MLFLOWKIT_USER", "ada")
    if request.param == "s3":
        return ModelRegistry(request.getfixturevalue("s3_root") + "/registry")
    return ModelRegistry(tmp_path / "registry")


@pytest.fixture
def local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModelRegistry:
    monkeypatch.setenv("MLFLOWKIT_USER", "ada")
    return ModelRegistry(tmp_path / "registry")


@pytest.fixture
def s3reg(s3_root: str, monkeypatch: pytest.MonkeyPatch) -> ModelRegistry:
    monkeypatch.setenv("MLFLOWKIT_USER", "ada")
    registry = ModelRegistry(s3_root + "/registry")
    assert isinstance(registry.storage, ObjectStorage)
    return registry


def _on_s3(registry: ModelRegistry) -> bool:
    return isinstance(registry.storage, ObjectStorage)


def _raw(registry: ModelRegistry, rel: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and path of ``rel`` (``churn/versions/1/version.json``) inside either backend."""
    storage = registry.storage
    if isinstance(storage, ObjectStorage):
        return storage.fs, storage.path(rel)
    assert isinstance(storage, FolderStorage)
    return fsspec.filesystem("file"), storage.path(rel)


def _read(registry: ModelRegistry, rel: str) -> bytes:
    fs, path = _raw(registry, rel)
    return bytes(fs.cat_file(path))


def _write(registry: ModelRegistry, rel: str, data: bytes) -> None:
    fs, path = _raw(registry, rel)
    fs.pipe_file(path, data)


def _local_two(reg: ModelRegistry, tmp_path: Path) -> ModelRegistry:
    reg.register("churn", {"model.onnx": b"onnx-1", "card.json": b"{}"}, {"spec_hash": "s1", "metrics": {"f1": 0.8}})
    src = tmp_path / "model2.onnx"
    src.write_bytes(b"onnx-2")
    reg.register("churn", {"model.onnx": src}, {"spec_hash": "s2", "metrics": {"f1": 0.9}})
    return reg


@pytest.fixture
def two(reg: ModelRegistry, tmp_path: Path) -> ModelRegistry:
    return _local_two(reg, tmp_path)


@pytest.fixture
def local_two(local: ModelRegistry, tmp_path: Path) -> ModelRegistry:
    return _local_two(local, tmp_path)


@pytest.fixture
def s3_two(s3reg: ModelRegistry, tmp_path: Path) -> ModelRegistry:
    _local_two(s3reg, tmp_path)
    return s3reg


def test_register_numbers_versions_and_keeps_files_and_lineage(two: ModelRegistry) -> None:
    v1, v2 = two.versions("churn")
    assert (v1.version, v2.version) == (1, 2)
    assert v1.files == ("card.json", "model.onnx")
    assert v2.files == ("model.onnx",)
    assert v2.lineage == {"spec_hash": "s2", "metrics": {"f1": 0.9}}
    assert datetime.fromisoformat(v1.created_at).utcoffset() == UTC.utcoffset(None)
    assert two.read_file("churn", 1, "model.onnx") == b"onnx-1"
    assert two.read_file("churn", 2, "model.onnx") == b"onnx-2"
    with fsspec.open(two.file_path("churn", 2, "model.onnx"), "rb") as fh:  # a path, or an s3:// URI
        assert fh.read() == b"onnx-2"
    assert two.models() == ["churn"]
    assert json.loads(_read(two, "churn/versions/2/version.json"))["version"] == 2
    assert _read(two, "churn/versions/2/model.onnx") == b"onnx-2"
    # No derived index: the version records themselves are read (nothing unverified stands in for them).
    assert not _raw(two, "churn/index.json")[0].exists(_raw(two, "churn/index.json")[1])


def test_register_unless_equal_returns_the_equal_version_and_writes_nothing(reg: ModelRegistry) -> None:
    first, new = reg.register_unless_equal("churn", {"model.onnx": b"m", "run.txt": b"1"}, {"run": 1}, ["model.onnx"])
    assert new and first.version == 1
    again, new = reg.register_unless_equal("churn", {"model.onnx": b"m", "run.txt": b"2"}, {"run": 2}, ["model.onnx"])
    assert not new and again.version == 1 and again.lineage == {"run": 1}
    other, new = reg.register_unless_equal("churn", {"model.onnx": b"n", "run.txt": b"3"}, {"run": 3}, ["model.onnx"])
    assert new and other.version == (3 if _on_s3(reg) else 2)  # an object store never hands a claimed number out again
    assert [v.lineage["run"] for v in reg.versions("churn")] == [1, 3]
    if _on_s3(reg):
        assert reg.storage.names("churn/versions/2") == [".claim"]  # only the claim: its files were removed
    with pytest.raises(RegistryError, match=r"compare names files it is not given: model\.bin"):
        reg.register_unless_equal("churn", {"model.onnx": b"m"}, {}, ["model.bin"])


def test_get_by_number_string_v_and_alias(two: ModelRegistry) -> None:
    assert two.get("churn", 2).version == 2
    assert two.get("churn", "2").version == 2
    assert two.get("churn", "v2").version == 2
    two.set_alias("churn", "champion", 1, reason="first good model")
    got = two.get("churn", "champion")
    assert (got.version, got.aliases) == (1, ("champion",))
    assert two.get("churn", 2).aliases == ()


def test_alias_moves_are_recorded_with_actor_and_reason(two: ModelRegistry) -> None:
    e1 = two.set_alias("churn", "champion", 1, reason="initial")
    e2 = two.set_alias("churn", "champion", 2, reason="f1 0.9 beats 0.8", actor="ci-bot")
    e3 = two.set_alias("churn", "previous", 1, reason="rollback target")
    e4 = two.remove_alias("churn", "previous", reason="cleanup")

    assert (e1.version, e1.previous, e1.actor) == (1, None, "ada")
    assert (e2.version, e2.previous, e2.actor, e2.reason) == (2, 1, "ci-bot", "f1 0.9 beats 0.8")
    assert (e4.version, e4.previous) == (None, 1)
    assert two.history("churn") == [e1, e2, e3, e4]
    assert two.aliases("churn") == {"champion": 2}
    assert [v.aliases for v in two.versions("churn")] == [(), ("champion",)]
    for event in two.history("churn"):
        assert datetime.fromisoformat(event.at).utcoffset() == UTC.utcoffset(None)

    if _on_s3(two):  # one object per move, numbered
        entries = [json.loads(_read(two, f"churn/events/{n:012d}.json"))["entry"] for n in range(1, 5)]
    else:
        entries = [json.loads(line) for line in Path(two.root, "churn", "events.jsonl").read_text().splitlines()]
    assert [entry["reason"] for entry in entries] == [
        "initial",
        "f1 0.9 beats 0.8",
        "rollback target",
        "cleanup",
    ]


def test_actor_falls_back_to_login_name(two: ModelRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOWKIT_USER")
    assert two.set_alias("churn", "champion", 1, reason="r").actor


def test_errors_name_the_missing_thing_and_what_exists(two: ModelRegistry) -> None:
    two.set_alias("churn", "previous", 1, reason="r")
    with pytest.raises(RegistryError, match=r"model 'churn' has no alias 'champion'; aliases: previous -> v1"):
        two.get("churn", "champion")
    with pytest.raises(RegistryError, match=r"model 'churn' has no version 9; versions: v1, v2"):
        two.get("churn", 9)
    with pytest.raises(RegistryError, match=r"model 'churn' has no version 9; versions: v1, v2"):
        two.set_alias("churn", "champion", 9, reason="r")
    with pytest.raises(RegistryError, match=r"no model 'fraud' in registry .*; models: churn"):
        two.get("fraud", 1)
    with pytest.raises(RegistryError, match=r"no model 'fraud'"):
        two.versions("fraud")
    with pytest.raises(RegistryError, match=r"model 'churn' v1 has no file 'x.onnx'; files: card.json, model.onnx"):
        two.read_file("churn", 1, "x.onnx")
    with pytest.raises(RegistryError, match=r"model 'churn' has no alias 'challenger'; aliases: previous -> v1"):
        two.remove_alias("churn", "challenger", reason="r")


def test_errors_in_an_empty_registry(reg: ModelRegistry) -> None:
    assert reg.models() == []
    with pytest.raises(RegistryError, match=r"no model 'churn' in registry .*; models: \(none\)"):
        reg.aliases("churn")


@pytest.mark.parametrize("name", ["Churn", "-churn", "", "a/b", "..", "x" * 129, "churn model"])
def test_bad_model_names(reg: ModelRegistry, name: str) -> None:
    with pytest.raises(RegistryError, match="invalid model name"):
        reg.register(name, {"m": b"x"}, {})


@pytest.mark.parametrize("name", ["a/b", "..", "../escape", ".hidden", "version.json", ""])
def test_bad_file_names(reg: ModelRegistry, name: str) -> None:
    with pytest.raises(RegistryError, match="invalid file name"):
        reg.register("churn", {name: b"x"}, {})
    assert not Path(reg.root, "churn", "versions").exists() or reg.models() == []


def test_bad_file_name_on_read(two: ModelRegistry) -> None:
    with pytest.raises(RegistryError, match="invalid file name"):
        two.file_path("churn", 1, "../../etc/passwd")


@pytest.mark.parametrize("alias", ["Champion", "1st", "v3", "a b", ""])
def test_bad_alias_names(two: ModelRegistry, alias: str) -> None:
    with pytest.raises(RegistryError, match="invalid alias"):
        two.set_alias("churn", alias, 1, reason="r")


def test_other_refusals(two: ModelRegistry) -> None:
    with pytest.raises(RegistryError, match="a reason is required"):
        two.set_alias("churn", "champion", 1, reason=" ")
    with pytest.raises(RegistryError, match="no files given"):
        two.register("churn", {}, {})
    with pytest.raises(RegistryError, match="lineage must be plain JSON"):
        two.register("churn", {"m": b"x"}, {"f1": float("nan")})
    with pytest.raises(RegistryError, match="lineage must be plain JSON"):
        two.register("churn", {"m": b"x"}, {"when": datetime.now(UTC)})
    with pytest.raises(RegistryError, match="invalid version reference"):
        two.get("churn", "v2.1")
    assert [v.version for v in two.versions("churn")] == [1, 2]
    if not _on_s3(two):
        assert list(Path(two.root, "churn", ".staging").iterdir()) == []
    else:  # refused before a number was claimed: none is burnt
        assert two.register("churn", {"m": b"x"}, {}).version == 3


def test_versions_are_immutable(two: ModelRegistry) -> None:
    version = two.get("churn", 1)
    with pytest.raises(ValueError):
        version.lineage = {}  # type: ignore[misc, unused-ignore]  # frozen only to the pydantic plugin
    assert not hasattr(two, "update_lineage")


def test_read_file_detects_a_damaged_file(two: ModelRegistry) -> None:
    _write(two, "churn/versions/1/model.onnx", b"onnx-X")
    with pytest.raises(RegistryError, match="is damaged"):
        two.read_file("churn", 1, "model.onnx")


def test_a_numbered_dir_without_version_json_is_no_version(local_two: ModelRegistry) -> None:
    two = local_two
    # An index.json left by an older mlflowkit is not read: the version records are.
    Path(two.root, "churn", "index.json").write_text('{"model": "churn", "versions": []}')
    assert [v.version for v in two.versions("churn")] == [1, 2]
    # A numbered dir without version.json (never made by the registry) is not a version.
    os.makedirs(Path(two.root, "churn", "versions", "3"))
    assert [v.version for v in two.versions("churn")] == [1, 2]
    with pytest.raises(RegistryError, match="has no version 3"):
        two.get("churn", 3)
    # ... and the next version skips its number rather than colliding with it.
    assert two.register("churn", {"m": b"x"}, {}).version == 4


def test_alias_log_wins_over_a_stale_aliases_json(two: ModelRegistry) -> None:
    two.set_alias("churn", "champion", 1, reason="first")
    stale = _read(two, "churn/aliases.json")
    two.set_alias("churn", "champion", 2, reason="second")
    # As if the writer died after appending the event but before rewriting aliases.json.
    _write(two, "churn/aliases.json", stale)
    assert two.aliases("churn") == {"champion": 2}
    fs, path = _raw(two, "churn/aliases.json")
    fs.rm_file(path)
    assert two.aliases("churn") == {"champion": 2}
    assert two.set_alias("churn", "previous", 1, reason="r").previous is None
    assert two.aliases("churn") == {"champion": 2, "previous": 1}


def test_a_torn_last_event_line_is_skipped(local_two: ModelRegistry) -> None:
    two = local_two
    two.set_alias("churn", "champion", 1, reason="first")
    with open(Path(two.root, "churn", "events.jsonl"), "ab") as fh:
        fh.write(b'{"model": "churn", "alias": "champ')  # a crash mid-write
    assert [e.reason for e in two.history("churn")] == ["first"]
    two.set_alias("churn", "champion", 2, reason="second")
    assert [e.reason for e in two.history("churn")] == ["first", "second"]
    assert two.aliases("churn") == {"champion": 2}


def test_model_version_round_trips_through_version_json(two: ModelRegistry) -> None:
    raw = _read(two, "churn/versions/1/version.json").decode()
    assert ModelVersion.model_validate_json(raw) == two.get("churn", 1)
    assert "aliases" not in json.loads(raw)


def test_file_uri_root(tmp_path: Path) -> None:
    reg = ModelRegistry((tmp_path / "r").as_uri())
    assert reg.register("m", {"f": b"x"}, {}).version == 1
    assert ModelRegistry(tmp_path / "r").get("m", "v1").files == ("f",)
    # An object store opens the object-store backend; a filesystem without a verified atomic
    # create-if-absent is refused rather than given a registry that two writers could corrupt.
    assert isinstance(ModelRegistry("memory://somewhere/registry").storage, ObjectStorage)
    with pytest.raises(NotImplementedError, match="atomic create-if-absent"):
        ModelRegistry("https://example.invalid/registry")


def test_registry_survives_being_copied(local_two: ModelRegistry, tmp_path: Path) -> None:
    two = local_two
    # Everything lives in the folder: a copy is a working registry (backups, moving machines).
    shutil.copytree(two.root, tmp_path / "copy")
    assert [v.version for v in ModelRegistry(tmp_path / "copy").versions("churn")] == [1, 2]


# ------------------------------------------------------------------ the object-store layout (S3)


def test_s3_a_claimed_number_without_version_json_is_no_version(s3_two: ModelRegistry) -> None:
    # A writer that died after claiming v3 (and uploading part of it): v3 is not listed, not readable,
    # and not handed out again.
    _write(s3_two, "churn/versions/3/.claim", b"{}")
    _write(s3_two, "churn/versions/3/model.onnx", b"half")
    assert [v.version for v in s3_two.versions("churn")] == [1, 2]
    with pytest.raises(RegistryError, match="has no version 3"):
        s3_two.get("churn", 3)
    assert s3_two.register("churn", {"m": b"x"}, {}).version == 4
    # Once stale, its files go and its claim stays.
    s3_two.storage.stale_after = 0.0  # type: ignore[misc]
    s3_two.register("churn", {"m": b"y"}, {})
    fs, path = _raw(s3_two, "churn/versions/3")
    assert [p.rsplit("/", 1)[-1] for p in fs.find(path)] == [".claim"]


def test_s3_a_damaged_event_object_is_skipped_and_reported(s3_two: ModelRegistry) -> None:
    s3_two.set_alias("churn", "champion", 1, reason="first")
    s3_two.set_alias("churn", "champion", 2, reason="second")
    assert s3_two.verify_audit("churn") == []
    _write(s3_two, "churn/events/000000000002.json", b"{not json")
    fs, path = _raw(s3_two, "churn/aliases.json")
    fs.rm_file(path)
    assert [e.reason for e in s3_two.history("churn")] == ["first"]
    assert s3_two.aliases("churn") == {"champion": 1}
    assert any("000000000002.json: unreadable" in p for p in s3_two.verify_audit("churn"))


def test_two_movers_never_take_the_same_place_in_the_log(two: ModelRegistry) -> None:
    # Both read the log up to entry 1; the second to append finds the log moved on, reads again, appends
    # after the first mover's entry, and its `previous` is the first mover's version, not the stale one.
    two.set_alias("churn", "champion", 1, reason="first")
    storage = two.storage
    stale = storage.log_end("churn", "events")
    original = storage.log_end
    calls = {"n": 0}

    def racing(model: str, log: str) -> int:
        calls["n"] += 1
        if calls["n"] == 1:  # as if another process moved the alias right after we looked
            other = ModelRegistry(two.root)
            other.set_alias("churn", "champion", 2, reason="the other writer", actor="bob")
            return stale
        return original(model, log)

    storage.log_end = racing  # type: ignore[method-assign]
    event = two.set_alias("churn", "previous", 2, reason="mine")
    storage.log_end = original  # type: ignore[method-assign]
    assert calls["n"] >= 2  # it looked again
    assert [e.reason for e in two.history("churn")] == ["first", "the other writer", "mine"]
    assert event.previous is None and two.aliases("churn") == {"champion": 2, "previous": 2}
    assert two.verify_audit("churn") == []


def test_s3_file_path_is_a_uri_and_root_is_the_uri(s3_two: ModelRegistry, s3_root: str) -> None:
    assert s3_two.root.startswith("s3://") and s3_two.file_path("churn", 1, "card.json").startswith("s3://")
    assert repr(s3_two).startswith("ModelRegistry('s3://")
