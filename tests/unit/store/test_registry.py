"""ModelRegistry in one process: versions, references, aliases with their audit log, and clear errors."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlflowkit.errors import RegistryError
from mlflowkit.store import ModelRegistry, ModelVersion


@pytest.fixture
def reg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModelRegistry:
    monkeypatch.setenv("MLFLOWKIT_USER", "ada")
    return ModelRegistry(tmp_path / "registry")


@pytest.fixture
def two(reg: ModelRegistry, tmp_path: Path) -> ModelRegistry:
    reg.register("churn", {"model.onnx": b"onnx-1", "card.json": b"{}"}, {"spec_hash": "s1", "metrics": {"f1": 0.8}})
    src = tmp_path / "model2.onnx"
    src.write_bytes(b"onnx-2")
    reg.register("churn", {"model.onnx": src}, {"spec_hash": "s2", "metrics": {"f1": 0.9}})
    return reg


def test_register_numbers_versions_and_keeps_files_and_lineage(two: ModelRegistry) -> None:
    v1, v2 = two.versions("churn")
    assert (v1.version, v2.version) == (1, 2)
    assert v1.files == ("card.json", "model.onnx")
    assert v2.files == ("model.onnx",)
    assert v2.lineage == {"spec_hash": "s2", "metrics": {"f1": 0.9}}
    assert datetime.fromisoformat(v1.created_at).utcoffset() == UTC.utcoffset(None)
    assert two.read_file("churn", 1, "model.onnx") == b"onnx-1"
    assert two.read_file("churn", 2, "model.onnx") == b"onnx-2"
    assert Path(two.file_path("churn", 2, "model.onnx")).read_bytes() == b"onnx-2"
    assert two.models() == ["churn"]

    root = Path(two.root, "churn")
    assert json.loads((root / "versions" / "2" / "version.json").read_text())["version"] == 2
    index = json.loads((root / "index.json").read_text())
    assert [v["version"] for v in index["versions"]] == [1, 2]


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

    lines = Path(two.root, "churn", "events.jsonl").read_text().splitlines()
    assert [json.loads(line)["reason"] for line in lines] == [
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
    assert list(Path(two.root, "churn", ".staging").iterdir()) == []


def test_versions_are_immutable(two: ModelRegistry) -> None:
    version = two.get("churn", 1)
    with pytest.raises(ValueError):
        version.lineage = {}  # type: ignore[misc, unused-ignore]  # frozen only to the pydantic plugin
    assert not hasattr(two, "update_lineage")


def test_read_file_detects_a_damaged_file(two: ModelRegistry) -> None:
    Path(two.file_path("churn", 1, "model.onnx")).write_bytes(b"onnx-X")
    with pytest.raises(RegistryError, match="is damaged"):
        two.read_file("churn", 1, "model.onnx")


def test_index_is_rebuilt_when_it_disagrees_with_the_dirs(two: ModelRegistry) -> None:
    index = Path(two.root, "churn", "index.json")
    doc = json.loads(index.read_text())
    doc["versions"] = doc["versions"][:1]
    index.write_text(json.dumps(doc))
    assert [v.version for v in two.versions("churn")] == [1, 2]
    assert [v["version"] for v in json.loads(index.read_text())["versions"]] == [1, 2]

    index.write_text("{not json")
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
    aliases_json = Path(two.root, "churn", "aliases.json")
    stale = aliases_json.read_bytes()
    two.set_alias("churn", "champion", 2, reason="second")
    # As if the writer died after appending the event but before rewriting aliases.json.
    aliases_json.write_bytes(stale)
    assert two.aliases("churn") == {"champion": 2}
    aliases_json.unlink()
    assert two.aliases("churn") == {"champion": 2}
    assert two.set_alias("churn", "previous", 1, reason="r").previous is None
    assert two.aliases("churn") == {"champion": 2, "previous": 1}


def test_a_torn_last_event_line_is_skipped(two: ModelRegistry) -> None:
    two.set_alias("churn", "champion", 1, reason="first")
    with open(Path(two.root, "churn", "events.jsonl"), "ab") as fh:
        fh.write(b'{"model": "churn", "alias": "champ')  # a crash mid-write
    assert [e.reason for e in two.history("churn")] == ["first"]
    two.set_alias("churn", "champion", 2, reason="second")
    assert [e.reason for e in two.history("churn")] == ["first", "second"]
    assert two.aliases("churn") == {"champion": 2}


def test_model_version_round_trips_through_version_json(two: ModelRegistry) -> None:
    raw = Path(two.root, "churn", "versions", "1", "version.json").read_text()
    assert ModelVersion.model_validate_json(raw) == two.get("churn", 1)
    assert "aliases" not in json.loads(raw)


def test_file_uri_root(tmp_path: Path) -> None:
    reg = ModelRegistry((tmp_path / "r").as_uri())
    assert reg.register("m", {"f": b"x"}, {}).version == 1
    assert ModelRegistry(tmp_path / "r").get("m", "v1").files == ("f",)
    with pytest.raises(NotImplementedError, match="local folders only"):
        ModelRegistry("memory://somewhere")


def test_registry_survives_being_copied(two: ModelRegistry, tmp_path: Path) -> None:
    # Everything lives in the folder: a copy is a working registry (backups, moving machines).
    shutil.copytree(two.root, tmp_path / "copy")
    assert [v.version for v in ModelRegistry(tmp_path / "copy").versions("churn")] == [1, 2]
