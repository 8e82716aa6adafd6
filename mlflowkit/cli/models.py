"""``mlflowkit models list|show|promote|rollback|approve|audit|history|sign``: registered models, aliases, audit trail."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mlflowkit.cli.common import (
    ReasonOpt,
    SpecOpt,
    StoreOpt,
    err,
    fail,
    governing_policy,
    load_spec_file,
    open_registry,
    out,
    verdict_table,
)
from mlflowkit.cli.help import HelpGroup
from mlflowkit.cli.tracking import mirror_alias_move
from mlflowkit.errors import MlflowkitError
from mlflowkit.fmt import number

__all__ = ["app"]

app = typer.Typer(help="Registered models: versions, aliases, lineage.", no_args_is_help=True, cls=HelpGroup)

GovernedSpecOpt = Annotated[Path | None, typer.Option("--spec", help="Use the store (and the policy) of this spec.")]


@app.command("list")
def models_list(store: StoreOpt = None, spec: SpecOpt = None) -> None:
    """Every registered model, with its newest version and aliases."""
    registry = open_registry(store, spec, read_only=True, listing=True)
    table = Table()
    for col in ("model", "versions", "latest", "aliases"):
        table.add_column(col)
    for name in registry.models():
        try:
            versions = registry.versions(name)
        except MlflowkitError as exc:  # a record that is not its folder's, or no record at all: named, no traceback
            fail(exc)
        aliases = ", ".join(f"{a} → v{v}" for a, v in sorted(registry.aliases(name).items()))
        table.add_row(name, str(len(versions)), f"v{versions[-1].version}" if versions else "-", aliases)
    out.print(table)


@app.command("show")
def models_show(
    model: str,
    version: Annotated[str, typer.Argument(help="Version number or alias.")] = "champion",
    store: StoreOpt = None,
    spec: SpecOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the version record as JSON (files, digests, lineage).")] = False,
) -> None:
    """One model version: aliases, where it came from, metrics, gate verdict, files and alias moves."""
    registry = open_registry(store, spec, read_only=True)
    try:
        mv = registry.get(model, version)  # refused here when the registry trusts keys and the version does not verify
        signature = registry.signature(model, mv.version)
        history = [e for e in registry.history(model) if mv.version in (e.version, e.previous)]
    except MlflowkitError as exc:
        fail(exc)
    if as_json:
        sys.stdout.write(json.dumps(mv.model_dump(mode="json"), indent=2, sort_keys=True, default=str) + "\n")
        return
    lineage = mv.lineage
    out.print(_about(mv.model, mv.version, mv.aliases, mv.created_at, lineage))
    mark = {"verified": "[green]✓[/]", "unchecked": "[yellow]?[/]"}.get(signature.state, "[yellow]![/]")
    out.print(f"{mark} {signature.describe()}")
    metrics = lineage.get("metrics") or {}
    if metrics:
        out.print(_metrics_table(metrics, lineage.get("champion_at_evaluation") or {}))
    if isinstance(lineage.get("verdict"), dict):
        from mlflowkit.handoff import Verdict

        verdict_table(Verdict.model_validate(lineage["verdict"]))
    files = Table(title="files", title_justify="left")
    for col in ("file", "sha256"):
        files.add_column(col)
    for name in mv.files:
        files.add_row(name, (mv.digests.get(name) or "-")[:16])
    out.print(files)
    if history:
        out.print("[bold]alias moves[/]")
    for event in history:
        moved = f"{_v(event.previous)} → {_v(event.version)}"
        out.print(f"  {event.at}  {event.alias}: {moved}  by {event.actor}: {event.reason}", markup=False)


def _v(version: int | None) -> str:
    return f"v{version}" if version else "-"


def _about(model: str, version: int, aliases: tuple[str, ...], created: str, lineage: dict[str, Any]) -> Table:
    """The version at a glance: aliases, spec, run, data, estimator, target, ONNX, trigger, who registered it."""
    table = Table(title=f"[bold]{model} v{version}[/]", title_justify="left", show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="bold")
    table.add_column(overflow="fold")

    def row(label: str, value: object) -> None:
        if value not in (None, "", [], {}):
            table.add_row(label, str(value))

    row("aliases", ", ".join(aliases) or "-")
    row("created", created)
    if lineage.get("spec_name"):
        row("spec", f"{lineage['spec_name']} (sha256 {str(lineage.get('spec_hash') or '-')[:12]})")
    row("run", lineage.get("run_id"))
    row("git commit", lineage.get("git_commit"))
    data = lineage.get("data_fingerprint") or {}
    if isinstance(data, dict) and data:
        content = str(data.get("content_hash") or "-")[:12]
        row("data", f"{data.get('source', '-')}: {data.get('rows', '?')} rows (content {content})")
    params = lineage.get("params") or {}
    estimator = lineage.get("estimator") or lineage.get("model")
    if estimator or params:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(params.items())) if isinstance(params, dict) else str(params)
        row("estimator", f"{estimator or '-'}" + (f" ({shown})" if shown else ""))
    features = lineage.get("features") or []
    classes = lineage.get("classes") or []
    if lineage.get("target"):
        row("target", f"{lineage['target']}" + (f": classes {', '.join(map(str, classes))}" if classes else ""))
    if features:
        row("features", f"{len(features)}: {', '.join(map(str, features))}")
    row("onnx", _onnx(lineage.get("onnx")))
    trigger = lineage.get("trigger")
    if isinstance(trigger, dict) and trigger:
        row("triggered by", ", ".join(f"{k} {v}" for k, v in trigger.items() if v not in (None, "")))
    governance = lineage.get("governance")
    if isinstance(governance, dict) and governance:
        row("registered by", f"{governance.get('registered_by', '-')} under policy {governance.get('policy', '-')}")
    return table


def _onnx(onnx: object) -> str | None:
    """``opset 22 (ai.onnx.ml 2); parity ok on 160 rows (max |Δ| 1.3e-07)``, from the export's record."""
    if not isinstance(onnx, dict):
        return None
    opset = onnx.get("opset") or {}
    text = f"opset {opset.get('', '?')}" + "".join(f", {d} {v}" for d, v in sorted(opset.items()) if d)
    parity = onnx.get("parity") or {}
    if parity:
        state = "ok" if parity.get("ok") else "FAILED"
        text += f"; parity {state} on {parity.get('rows', '?')} rows (max |Δ| {parity.get('max_abs_diff', 0):.2g})"
    return text


def _metrics_table(metrics: dict[str, Any], champion: dict[str, Any]) -> Table:
    """Each metric, and the champion's on the same held-out rows when there was one."""
    theirs = champion.get("metrics") or {}
    table = Table(title="metrics (held-out rows)", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    if theirs:
        table.add_column(f"champion v{champion.get('version')}", justify="right")
    for name, value in metrics.items():
        cells = [name, _number(value)]
        if theirs:
            cells.append(_number(theirs.get(name)))
        table.add_row(*cells)
    return table


def _number(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return number(value)
    return "n/a" if value is None else str(value)


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
    mirror_alias_move(store, spec, registry, model)


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
    mirror_alias_move(store, spec, registry, model)


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
    registry = open_registry(store, spec, read_only=True)
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
    registry = open_registry(store, spec, read_only=True)
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


@app.command("sign")
def models_sign(
    model: str,
    versions: Annotated[list[int] | None, typer.Argument(help="The versions to sign (default: with --all, every one).")] = None,
    every: Annotated[bool, typer.Option("--all", help="Sign every version of the model.")] = False,
    store: StoreOpt = None,
    spec: SpecOpt = None,
) -> None:
    """Sign versions with MLFLOWKIT_SIGNING_KEY after checking their files: for versions older than signing, or a new key.

    Signing vouches for a version: review it first (`mlflowkit models show`). Each file is checked against
    its recorded digest before the version is signed.
    """
    registry = open_registry(store, spec)
    try:
        numbers = [v.version for v in registry.versions(model)] if every else list(versions or [])
        if not numbers:
            err.print("[bold red]error[/]: name the versions to sign, or pass --all")
            raise typer.Exit(2)
        for number in numbers:
            signature = registry.sign(model, number)
            out.print(f"[green]✓[/] {model} v{number}: {signature.describe()}")
    except MlflowkitError as exc:
        fail(exc)
