"""What every command module of the CLI shares: the consoles, ``fail``, loading a spec, finding the store,
the registry and the policy, and the option types.

Exit codes: 0 success, 1 a run or command failed, 2 the spec (or the command line) is invalid.
Only typer, rich and :mod:`mlflowkit.errors` load at import; everything else inside the function that needs it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from mlflowkit.errors import MlflowkitError, SpecError

if TYPE_CHECKING:
    from mlflowkit.handoff import Verdict
    from mlflowkit.policy import Policy
    from mlflowkit.spec.models import SpecBase

__all__ = [
    "STORE_HINT",
    "ReasonOpt",
    "SetOpt",
    "SpecArg",
    "SpecOpt",
    "StoreOpt",
    "err",
    "existing_store",
    "fail",
    "governing_policy",
    "load_spec_file",
    "open_registry",
    "out",
    "store_uri",
    "verdict_table",
]

# Without a terminal (CI logs, pipes) rich assumes 80 columns and truncates tables; logs can be wide.
_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160
out = Console(highlight=False, soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True)

SpecArg = Annotated[Path, typer.Argument(help="The spec file (YAML).", show_default=False)]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override a param: --set params.NAME=VALUE (repeatable).")]
StoreOpt = Annotated[str | None, typer.Option("--store", help="Artifact store / registry root (any fsspec URI).")]
SpecOpt = Annotated[Path | None, typer.Option("--spec", help="Use the store of this spec.")]
ReasonOpt = Annotated[str, typer.Option("--reason", "-r", help="Why; recorded in the audit log with who and when.")]


def fail(exc: MlflowkitError) -> NoReturn:
    """Print an mlflowkit error (a spec error as its own file:line report) and exit with its code."""
    if isinstance(exc, SpecError):
        err.print(str(exc), markup=False)
    else:
        err.print(f"[bold red]error[/]: {exc}")
    raise typer.Exit(exc.exit_code)


def load_spec_file(path: Path, overrides: list[str] | None, *, policy: bool = True, read_data: bool = True) -> SpecBase:
    """Load and validate a spec file (its data's header too, unless ``read_data`` is False), or print why not and exit 2."""
    from mlflowkit.policy.governed import load_spec

    if not path.is_file():
        err.print(f"[bold red]error[/]: no spec file at {path}")
        raise typer.Exit(2)
    try:
        return load_spec(path, overrides=overrides or (), policy=policy, read_data=read_data)
    except SpecError as exc:
        fail(exc)


def store_uri(store: str | None, spec_path: Path | None) -> str:
    """The store a command reads: ``--store``, else ``--spec``'s store, else $MLFLOWKIT_STORE or ./.mlflowkit."""
    if store:
        return store
    if spec_path is not None:
        from mlflowkit.runtime.locations import store_root

        return store_root(load_spec_file(spec_path, None, policy=False))  # finding a store is not running the spec
    return os.environ.get("MLFLOWKIT_STORE") or str(Path(".mlflowkit").resolve())


STORE_HINT = "name the store with --store URI or --spec SPEC (a spec's store is .mlflowkit beside it)"


def existing_store(uri: str, *, listing: bool) -> str:
    """``uri`` when a store is there; else say so and exit (0 for a listing: there is nothing to list; 1 otherwise).

    Opening a store creates it, so a command that only reads asks first: a mistyped ``--store``, or a folder
    where nothing ran, is named instead of answered with an empty store that the command just made.
    """
    from mlflowkit.store.artifacts import store_exists

    try:
        if store_exists(uri):
            return uri
    except MlflowkitError as exc:
        fail(exc)
    if listing:
        err.print(f"no store at {uri}: nothing has run there yet")
    else:
        err.print(f"[bold red]error[/]: no store at {uri}: nothing has run or been registered there")
    err.print(f"  hint: {STORE_HINT}")
    raise typer.Exit(0 if listing else 1)


def open_registry(store: str | None, spec_path: Path | None, *, read_only: bool = False, listing: bool = False) -> Any:
    """The model registry in the store :func:`store_uri` picks, with the keys the environment and the policy trust.

    ``read_only``: the command only reads, so a store that is not there is named (see :func:`existing_store`), not created.
    """
    from mlflowkit.policy import registry_trust
    from mlflowkit.store import registry_at

    uri = store_uri(store, spec_path)
    if read_only:
        existing_store(uri, listing=listing)
    try:
        return registry_at(uri, trust=registry_trust(governing_policy(spec_path)))
    except MlflowkitError as exc:  # a configured key that cannot be read
        fail(exc)


def governing_policy(spec_path: Path | None) -> Policy | None:
    """The policy for a models command: the one governing ``--spec``'s folder, else the current folder's."""
    from mlflowkit.policy import find_policy

    try:
        return find_policy(spec_path.resolve().parent if spec_path is not None else Path.cwd())
    except SpecError as exc:
        fail(exc)


def verdict_table(verdict: Verdict) -> None:
    """Print a gate verdict: one row per rule with its value, threshold and result."""
    table = Table(title="gate verdict: " + ("[green]PASS[/]" if verdict.passed else "[red]FAIL[/]"), title_justify="left")
    for col in ("rule", "value", "threshold", "result", "note"):
        table.add_column(col)

    from mlflowkit.fmt import number

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else number(value)

    for rule in verdict.rules:
        table.add_row(
            rule.rule, fmt(rule.value), fmt(rule.threshold), "[green]pass[/]" if rule.passed else "[red]fail[/]", rule.note
        )
    out.print(table)
