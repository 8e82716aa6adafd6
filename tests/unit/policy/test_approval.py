"""Approval before champion, who may promote or roll back, and the hash-chained audit trail: real registry, real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlflowkit.cli import app
from mlflowkit.errors import RegistryError
from mlflowkit.policy import POLICY_ENV
from mlflowkit.store import ModelRegistry
from mlflowkit.store.promotion import CHALLENGER, CHAMPION, approve, promote, rollback

POLICY = """policy: mlflowkit/v1
promotion:
  promoters: [alice, tester]
  approvers: [carol]
  require_approval: true
"""


@pytest.fixture
def governed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with a policy requiring approval, and a registry with two versions (v1 champion, v2 challenger)."""
    monkeypatch.delenv(POLICY_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "policy.yaml").write_text(POLICY)
    registry = ModelRegistry(tmp_path / ".mlflowkit" / "registry")
    gov = {
        "policy": "policy.yaml",
        "require_approval": True,
        "require_approval_at": "policy.yaml:5:3",
        "promoters": ["alice", "tester"],
        "approvers": ["carol"],
        "distinct_approver": False,
        "registered_by": "tester",
    }
    for _ in range(2):
        registry.register("churn", {"model.bin": b"x"}, {"verdict": {"passed": True}, "governance": gov})
    registry.set_alias("churn", CHAMPION, 1, reason="first", actor="alice")
    registry.set_alias("churn", CHALLENGER, 2, reason="gates passed; held for approval", actor="tester")
    return tmp_path


def cli(*args: str, user: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.setenv("MLFLOWKIT_USER", user)
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_promotion_is_blocked_without_approval_and_allowed_after_it(governed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = ModelRegistry(governed / ".mlflowkit" / "registry")
    code, output = cli("models", "promote", "churn", "2", "--reason", "better", user="alice", monkeypatch=monkeypatch)
    assert code == 1
    assert "churn v2 has no recorded approval" in output and "mlflowkit models approve churn 2" in output
    assert registry.aliases("churn") == {"champion": 1, "challenger": 2}
    assert registry.approvals("churn") == []

    # Only an approver may approve; the refusal names the policy rule's place.
    code, output = cli("models", "approve", "churn", "2", "--reason", "looks fine", user="alice", monkeypatch=monkeypatch)
    assert code == 1 and "'alice' may not approve" in output and "policy.yaml:4:3" in output
    code, output = cli("models", "approve", "churn", "2", "--reason", "fairness reviewed", user="carol", monkeypatch=monkeypatch)
    assert code == 0, output
    (approval,) = registry.approvals("churn", 2)
    assert (approval.actor, approval.reason, approval.version) == ("carol", "fairness reviewed", 2)
    assert approval.at and approval.hash

    code, output = cli("models", "promote", "churn", "2", "--reason", "approved by carol", user="alice", monkeypatch=monkeypatch)
    assert code == 0, output
    assert registry.aliases("churn") == {"champion": 2, "previous": 1}  # challenger went with the promotion
    moves = [(e.alias, e.version, e.previous, e.actor, e.reason) for e in registry.history("churn")]
    assert moves[-3:] == [
        ("previous", 1, None, "alice", "replaced by v2: approved by carol"),
        ("champion", 2, 1, "alice", "approved by carol"),
        ("challenger", None, 2, "alice", "promoted to champion: approved by carol"),
    ]
    assert all(e.at for e in registry.history("churn"))
    code, output = cli("models", "history", "churn", user="alice", monkeypatch=monkeypatch)
    assert "(approval)" in output and "fairness reviewed" in output and "tampered" not in output


def test_the_versions_own_governance_holds_even_where_no_policy_is_found(governed: Path) -> None:
    (governed / "policy.yaml").unlink()
    registry = ModelRegistry(governed / ".mlflowkit" / "registry")
    with pytest.raises(RegistryError, match=r"no recorded approval.*policy\.yaml:5:3"):
        promote(registry, "churn", 2, reason="sneaky", actor="alice", force=True)
    with pytest.raises(RegistryError, match="'mallory' may not promote"):
        promote(registry, "churn", 2, reason="sneaky", actor="mallory")
    with pytest.raises(RegistryError, match="'alice' may not approve"):
        approve(registry, "churn", 2, reason="self-service", actor="alice")
    approve(registry, "churn", 2, reason="ok", actor="carol")
    assert promote(registry, "churn", 2, reason="approved", actor="tester").aliases == (CHAMPION,)


def test_who_may_promote_or_roll_back(governed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = ModelRegistry(governed / ".mlflowkit" / "registry")
    approve(registry, "churn", 2, reason="ok", actor="carol")
    code, output = cli("models", "promote", "churn", "2", "--reason", "x", user="mallory", monkeypatch=monkeypatch)
    assert code == 1 and "'mallory' may not promote churn" in output and "policy.yaml:3:3" in output
    assert registry.aliases("churn")["champion"] == 1
    assert cli("models", "promote", "churn", "2", "--reason", "x", user="alice", monkeypatch=monkeypatch)[0] == 0
    code, output = cli("models", "rollback", "churn", "--reason", "oops", user="mallory", monkeypatch=monkeypatch)
    assert code == 1 and "'mallory' may not rollback churn" in output
    assert registry.aliases("churn")["champion"] == 2
    assert cli("models", "rollback", "churn", "--reason", "oops", user="alice", monkeypatch=monkeypatch)[0] == 0
    assert registry.aliases("churn")["champion"] == 1
    assert registry.history("churn")[-2].actor == "alice"
    with pytest.raises(RegistryError, match="'mallory' may not roll back"):  # the store checks the version's own rules too
        rollback(registry, "churn", reason="x", actor="mallory", to=2)


def test_distinct_approver(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    gov = {"require_approval": True, "promoters": None, "approvers": None, "distinct_approver": True, "registered_by": "bob"}
    registry.register("m", {"f": b"1"}, {"governance": gov})
    with pytest.raises(RegistryError, match="'bob' registered m v1"):
        approve(registry, "m", 1, reason="mine", actor="bob")
    approve(registry, "m", 1, reason="reviewed", actor="carol")
    assert promote(registry, "m", 1, reason="ok", actor="bob").aliases == (CHAMPION,)


def test_the_audit_trail_is_hash_chained_and_tampering_is_reported(governed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = ModelRegistry(governed / ".mlflowkit" / "registry")
    approve(registry, "churn", 2, reason="ok", actor="carol")
    assert registry.verify_audit("churn") == []
    code, output = cli("models", "audit", "churn", user="alice", monkeypatch=monkeypatch)
    assert code == 0 and "audit trail intact" in output and "2 alias moves, 1 approvals" in output

    log = governed / ".mlflowkit" / "registry" / "churn" / "events.jsonl"
    lines = log.read_text().splitlines()
    first = json.loads(lines[0])
    first["actor"] = "someone-else"  # rewrite who did it
    log.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    problems = registry.verify_audit("churn")
    assert problems == [
        "events.jsonl line 1: does not match the hash chain: this entry, or one before it, was changed, removed or inserted"
    ]
    code, output = cli("models", "audit", "churn", user="alice", monkeypatch=monkeypatch)
    assert code == 1 and "tampered" in output and "events.jsonl line 1" in output
    code, output = cli("models", "history", "churn", user="alice", monkeypatch=monkeypatch)
    assert "audit log tampered" in output

    approvals = governed / ".mlflowkit" / "registry" / "churn" / "approvals.jsonl"
    entry = json.loads(approvals.read_text())
    approvals.write_text(approvals.read_text() + json.dumps({**entry, "reason": "forged", "hash": entry["hash"]}) + "\n")
    assert registry.verify_audit("churn")[-1].startswith("approvals.jsonl line 2: does not match the hash chain")


def test_a_log_from_before_the_chain_is_accepted_and_chained_from(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    registry.register("m", {"f": b"1"}, {})
    legacy = {
        "model": "m",
        "alias": "champion",
        "version": 1,
        "previous": None,
        "actor": "old",
        "reason": "r",
        "at": "2026-01-01",
    }
    (tmp_path / "m" / "events.jsonl").write_text(json.dumps(legacy) + "\n")
    registry.set_alias("m", "staging", 1, reason="new", actor="new")
    assert registry.verify_audit("m") == []
    assert [e.actor for e in registry.history("m")] == ["old", "new"]
