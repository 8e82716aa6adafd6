"""``mlflowkit models list|show|promote|rollback|approve|audit|history``: registered models, their aliases and audit trail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mlflowkit.cli.common import ReasonOpt, SpecOpt, StoreOpt, err, fail, governing_policy, load_spec_file, open_registry, out
from mlflowkit.errors import MlflowkitError

__all__ = ["app"]

app = typer.Typer(help="Registered models: versions, aliases, lineage.", no_args_is_help=True)

GovernedSpecOpt = Annotated[Path | None, typer.Option("--spec", help="Use the store (and the policy) of this spec.")]


@app.command("list")
def models_list(store: StoreOpt = None, spec: SpecOpt = None) -> None:
    """Every registered model, with its newest version and aliases."""
    registry = open_registry(store, spec)
    table = Table()
    for col in ("model", "versions", "latest", "aliases"):
        table.add_column(col)
    for name in registry.models():
        versions = registry.versions(name)
        aliases = ", ".join(f"{a} → v{v}" for a, v in sorted(registry.aliases(name).items()))
        table.add_row(name, str(len(versions)), f"v{versions[-1].version}" if versions else "-", aliases)
    out.print(table)


@app.command("show")
def models_show(
    model: str,
    version: Annotated[str, typer.Argument(help="Version number or alias.")] = "champion",
    store: StoreOpt = None,
    spec: SpecOpt = None,
) -> None:
    """One model version: lineage, metrics, aliases, files."""
    registry = open_registry(store, spec)
    try:
        mv = registry.get(model, version)
    except MlflowkitError as exc:
        fail(exc)
    out.print(f"[bold]{mv.model} v{mv.version}[/]  created {mv.created_at}  aliases: {', '.join(mv.aliases) or '-'}")
    out.print(f"files: {', '.join(mv.files)}")
    out.print_json(json.dumps(mv.lineage, default=str))
    history = [e for e in registry.history(model) if mv.version in (e.version, e.previous)]
    for event in history:
        out.print(
            f"  {event.at}  {event.alias}: v{event.previous or '-'} → v{event.version or '-'}  by {event.actor}: {event.reason}"
        )


@app.command("promote")
def models_promote(
    model: str,
    version: Annotated[int, typer.Argument(help="The version to make champion.")],
    reason: ReasonOpt,
    force: Annotated[bool, typer.Option(help="Promote even a version that failed its gates.")] = False,
    store: StoreOpt = None,
    spec: GovernedSpecOpt = None,
) -> None:
    """Make a version the champion; the old champion becomes `previous`.

    With --spec, the version is first deployed to the spec's `deploy:` targets (all or nothing), so that
    a version the policy held as challenger reaches them once it is approved.
    """
    from mlflowkit.policy import authorize, current_actor
    from mlflowkit.store.promotion import promote

    policy = governing_policy(spec)
    registry = open_registry(store, spec)
    actor = current_actor()
    section = load_spec_file(spec, None).section("deploy") if spec is not None else None
    targets = list(getattr(section, "targets", None) or ())
    try:
        authorize(policy, "promote", actor, model)
        required = policy is not None and policy.promotion.require_approval
        if targets:
            from mlflowkit import release

            report = release.promote(
                registry, model, version, targets=targets, reason=reason, actor=actor, force=force,
                require_approval=required, log=lambda line: out.print(f"[dim]{line}[/]"),
            )  # fmt: skip
            for entry in report.targets:
                out.print(f"  {entry['target']} at {entry['destination']}: {entry['status']}")
            if not report.ok:
                err.print(f"[bold red]error[/]: {report.note}")
                raise typer.Exit(1)
        else:
            promote(registry, model, version, reason=reason, force=force, actor=actor, require_approval=required)
    except MlflowkitError as exc:
        fail(exc)
    promoted = registry.get(model, version)
    out.print(f"[green]✓[/] {model} v{promoted.version} is champion ({', '.join(promoted.aliases)})")


@app.command("rollback")
def models_rollback(
    model: str,
    reason: ReasonOpt,
    to: Annotated[int | None, typer.Option("--to", help="Roll back to this version instead of `previous`.")] = None,
    store: StoreOpt = None,
    spec: GovernedSpecOpt = None,
) -> None:
    """Return `champion` to the version it replaced (or --to VERSION), and redeploy it to every target of the release.

    The targets are those of the champion's release record (Triton, edge channels, ...). All or nothing:
    if a target fails, the ones already moved get the champion back and `champion` does not move (exit 1).
    """
    from mlflowkit.policy import authorize, current_actor
    from mlflowkit.release import rollback

    policy = governing_policy(spec)
    registry = open_registry(store, spec)
    actor = current_actor()
    try:
        authorize(policy, "rollback", actor, model)
        report = rollback(registry, model, reason=reason, to=to, actor=actor, log=lambda line: out.print(f"  [dim]{line}[/]"))
    except MlflowkitError as exc:
        fail(exc)
    for entry in report.targets:
        mark = "[green]✓[/]" if entry["status"] == f"v{report.to_version} serving" else "[red]✗[/]"
        detail = f": {entry['error']}" if "error" in entry else ""
        out.print(f"{mark} {entry['target']} at {entry['destination']}: {entry['status']}{detail}")
    if report.note:
        out.print(f"{'[red]error[/]' if not report.ok else '[dim]note[/]'}: {report.note}")
    if not report.ok:
        raise typer.Exit(1)
    out.print(f"[green]✓[/] {model} v{report.to_version} is champion again")


@app.command("approve")
def models_approve(
    model: str,
    version: Annotated[int, typer.Argument(help="The version to approve for promotion.")],
    reason: ReasonOpt,
    store: StoreOpt = None,
    spec: GovernedSpecOpt = None,
) -> None:
    """Record an approval of a version (who, when, why); a policy may require one before `promote`."""
    from mlflowkit.policy import authorize, current_actor
    from mlflowkit.store.promotion import approve

    policy = governing_policy(spec)
    registry = open_registry(store, spec)
    actor = current_actor()
    try:
        authorize(policy, "approve", actor, f"{model} v{version}")
        event = approve(registry, model, version, reason=reason, actor=actor)
    except MlflowkitError as exc:
        fail(exc)
    out.print(f"[green]✓[/] {model} v{version} approved by {event.actor} at {event.at}: {event.reason}")


@app.command("audit")
def models_audit(model: str, store: StoreOpt = None, spec: SpecOpt = None) -> None:
    """Verify a model's audit trail (alias moves and approvals are hash-chained); exit 1 if it was tampered with."""
    registry = open_registry(store, spec)
    try:
        problems = registry.verify_audit(model)
        events, approvals = registry.history(model), registry.approvals(model)
        heads = registry.audit_heads(model)
    except MlflowkitError as exc:
        fail(exc)
    out.print(f"{model}: {len(events)} alias moves, {len(approvals)} approvals")
    for name, head in heads.items():
        out.print(f"  {name} head {head or '-'}")
    if problems:
        for problem in problems:
            err.print(f"[bold red]tampered[/]: {problem}")
        raise typer.Exit(1)
    out.print("[green]✓[/] audit trail intact (hash chains verified)")


@app.command("history")
def models_history(model: str, store: StoreOpt = None, spec: SpecOpt = None) -> None:
    """Every alias move of a model: when, which alias, from and to which version, who, why."""
    registry = open_registry(store, spec)
    try:
        events = registry.history(model)
        approvals, problems = registry.approvals(model), registry.verify_audit(model)
    except MlflowkitError as exc:
        fail(exc)
    table = Table()
    for col in ("when", "alias", "from", "to", "who", "why"):
        table.add_column(col)
    rows = [
        (e.at, e.alias, f"v{e.previous}" if e.previous else "-", f"v{e.version}" if e.version else "-", e.actor, e.reason)
        for e in events
    ]
    rows += [(a.at, "(approval)", "-", f"v{a.version}", a.actor, a.reason) for a in approvals]
    for row in sorted(rows, key=lambda r: r[0]):
        table.add_row(*row)
    out.print(table)
    for problem in problems:  # the log was edited by hand: say so wherever it is read
        err.print(f"[bold red]audit log tampered[/]: {problem} (see `mlflowkit models audit {model}`)")
