"""``mlflowkit policy check`` and the governance commands of ``mlflowkit models`` (approve, audit).

Mounted on the main CLI; the policy itself lives in :mod:`mlflowkit.policy`. Exit codes: 0 compliant,
1 a spec breaks the policy (or the audit trail was tampered with), 2 a bad policy or command line.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from mlflowkit.errors import MlflowkitError, SpecError

if TYPE_CHECKING:
    from mlflowkit.policy import Policy

__all__ = ["app", "governing_policy", "models_approve", "models_audit"]

app = typer.Typer(help="The operations policy: check specs against it.", no_args_is_help=True)

_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160
out = Console(highlight=False, soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(exc: MlflowkitError) -> typer.Exit:
    err.print(str(exc) if isinstance(exc, SpecError) else f"[bold red]error[/]: {exc}", markup=not isinstance(exc, SpecError))
    return typer.Exit(exc.exit_code)


def governing_policy(spec_path: Path | None) -> Policy | None:
    """The policy for a models command: the one governing ``--spec``'s folder, else the current folder's."""
    from mlflowkit.policy import find_policy

    try:
        return find_policy(spec_path.resolve().parent if spec_path is not None else Path.cwd())
    except SpecError as exc:
        raise _fail(exc) from None


def _is_spec(path: Path) -> bool:
    """Whether a YAML file is a spec (``spec: mlflowkit/...`` at the top), without loading it."""
    from mlflowkit.spec._yaml import load_yaml_file

    try:
        data = load_yaml_file(path).data
    except SpecError:
        return path.name not in {"policy.yaml", "policy.yml"}  # broken YAML: report it, unless it is the policy
    return isinstance(data, dict) and str(data.get("spec", "")).startswith("mlflowkit/")


@app.command("check")
def check(
    paths: Annotated[list[Path], typer.Argument(help="Spec files, or folders searched for specs (*.yaml, *.yml).")],
    policy_file: Annotated[
        Path | None, typer.Option("--policy", help="Check against this policy instead of the one governing each spec.")
    ] = None,
) -> None:
    """A compliance table for specs: each spec, its policy, and every rule it breaks (exit 1 if any does)."""
    from mlflowkit.policy import PolicyIssue, find_policy, load_policy
    from mlflowkit.spec.load import load_spec

    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for ext in ("*.yaml", "*.yml") for p in path.rglob(ext) if ".mlflowkit" not in p.parts)
            files += [p for p in found if _is_spec(p)]
        elif path.is_file():
            files.append(path)
        else:
            err.print(f"[bold red]error[/]: no spec file or folder at {path}")
            raise typer.Exit(2)
    if not files:
        err.print(f"[bold red]error[/]: no specs found in {', '.join(map(str, paths))}")
        raise typer.Exit(2)
    try:
        explicit = load_policy(policy_file) if policy_file is not None else None
    except SpecError as exc:
        raise _fail(exc) from None

    table = Table(title="policy compliance", title_justify="left")
    for col in ("spec", "policy", "status", "violations"):
        table.add_column(col)
    details: list[str] = []
    bad = 0
    for file in files:
        try:
            policy = explicit or find_policy(file.resolve().parent)
        except SpecError as exc:
            raise _fail(exc) from None
        shown_policy = policy.file if policy is not None else "-"
        try:
            load_spec(file, policy=policy if policy is not None else False)
        except SpecError as exc:
            violations = [i for i in exc.issues if isinstance(i, PolicyIssue)]
            others = [i for i in exc.issues if not isinstance(i, PolicyIssue)]
            bad += 1
            status = "[red]violates[/]" if violations else "[yellow]invalid spec[/]"
            summary = [f"{i.rule} ({i.path or 'spec'})" for i in violations]
            if others:
                summary.append(f"{len(others)} spec error{'s' if len(others) != 1 else ''}")
            table.add_row(str(file), shown_policy, status, "\n".join(summary))
            details += [i.render() for i in exc.issues]
            continue
        status = "[green]compliant[/]" if policy is not None else "[dim]no policy[/]"
        table.add_row(str(file), shown_policy, status, "")
    out.print(table)
    for text in details:
        out.print(text, markup=False)
    out.print(f"{len(files) - bad} of {len(files)} spec{'s' if len(files) != 1 else ''} comply")
    if bad:
        raise typer.Exit(1)


StoreOpt = Annotated[str | None, typer.Option("--store", help="Artifact store / registry root (any fsspec URI).")]
SpecOpt = Annotated[Path | None, typer.Option("--spec", help="Use the store (and the policy) of this spec.")]
ReasonOpt = Annotated[str, typer.Option("--reason", "-r", help="Why; recorded in the audit log with who and when.")]


def _registry(store: str | None, spec: Path | None) -> Any:
    from mlflowkit.cli import _registry as registry

    return registry(store, spec)


def models_approve(
    model: str,
    version: Annotated[int, typer.Argument(help="The version to approve for promotion.")],
    reason: ReasonOpt,
    store: StoreOpt = None,
    spec: SpecOpt = None,
) -> None:
    """Record an approval of a version (who, when, why); a policy may require one before `promote`."""
    from mlflowkit.policy import authorize, current_actor
    from mlflowkit.store.promotion import approve

    policy = governing_policy(spec)
    registry = _registry(store, spec)
    actor = current_actor()
    try:
        authorize(policy, "approve", actor, f"{model} v{version}")
        event = approve(registry, model, version, reason=reason, actor=actor)
    except MlflowkitError as exc:
        raise _fail(exc) from None
    out.print(f"[green]✓[/] {model} v{version} approved by {event.actor} at {event.at}: {event.reason}")


def models_audit(model: str, store: StoreOpt = None, spec: SpecOpt = None) -> None:
    """Verify a model's audit trail (alias moves and approvals are hash-chained); exit 1 if it was tampered with."""
    from mlflowkit.store.registry import _chain_head

    registry = _registry(store, spec)
    try:
        problems = registry.verify_audit(model)
        events, approvals = registry.history(model), registry.approvals(model)
    except MlflowkitError as exc:
        raise _fail(exc) from None
    folder = os.path.join(registry.root, model)
    heads = {name: _chain_head(os.path.join(folder, name)) for name in ("events.jsonl", "approvals.jsonl")}
    out.print(f"{model}: {len(events)} alias moves, {len(approvals)} approvals")
    for name, head in heads.items():
        out.print(f"  {name} head {head or '-'}")
    if problems:
        for problem in problems:
            err.print(f"[bold red]tampered[/]: {problem}")
        raise typer.Exit(1)
    out.print("[green]✓[/] audit trail intact (hash chains verified)")
