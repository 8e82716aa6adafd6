"""``mlflowkit policy check``: a compliance table of specs against the operations policy.

The policy itself lives in :mod:`mlflowkit.policy`. Exit codes: 0 compliant, 1 a spec breaks the policy,
2 a bad policy or command line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mlflowkit.cli.common import err, fail, out
from mlflowkit.cli.help import HelpGroup
from mlflowkit.errors import SpecError

__all__ = ["app"]

app = typer.Typer(help="The operations policy: check specs against it.", no_args_is_help=True, cls=HelpGroup)


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
    from mlflowkit.policy.governed import load_spec

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
        fail(exc)

    table = Table(title="policy compliance", title_justify="left")
    for col in ("spec", "policy", "status", "violations"):
        table.add_column(col)
    details: list[str] = []
    bad = 0
    for file in files:
        try:
            policy = explicit or find_policy(file.resolve().parent)
        except SpecError as exc:
            fail(exc)
        shown_policy = policy.file if policy is not None else "-"
        try:
            load_spec(file, policy=policy if policy is not None else False, read_data=False)  # compliance, not data
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
