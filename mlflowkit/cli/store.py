"""``mlflowkit store verify|keygen``: check (and repair) a store's bytes; make the registry's signing key."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.table import Table

from mlflowkit.cli.common import STORE_HINT, SpecOpt, StoreOpt, err, fail, governing_policy, out, store_uri
from mlflowkit.cli.help import HelpGroup
from mlflowkit.errors import MlflowkitError

__all__ = ["app"]

app = typer.Typer(
    help="The store: verify every byte against its hash, repair what a rerun rebuilds; registry keys.",
    no_args_is_help=True,
    cls=HelpGroup,
)


@app.command("verify")
def verify(
    repair: Annotated[
        bool, typer.Option("--repair", help="Remove damaged objects, refused models and the cache entries that use them.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    store: StoreOpt = None,
    spec: SpecOpt = None,
) -> None:
    """Walk objects, cache, registry and runs; report each damaged file with what was expected and found.

    Models a cache entry names are also judged by the types they name, as a run would before loading them.
    With --repair, damaged objects, refused models and the cache entries pointing at them (or at missing
    outputs) are removed, so the next run recomputes them. Registry damage and unreadable run records are reported
    only: nothing rebuilds them. Exits 1 while damage remains.
    """
    from mlflowkit.kinds.model_files import SKOPS, model_refusal
    from mlflowkit.policy import registry_trust
    from mlflowkit.store import ArtifactStore, registry_at
    from mlflowkit.store.artifacts import store_exists
    from mlflowkit.store.verify import Inspect, to_json, verify_store

    root = store_uri(store, spec)
    try:
        if not store_exists(root):
            _nothing_to_verify(root)
        st = ArtifactStore(root)
        policy = governing_policy(spec)
        registry = registry_at(root, trust=registry_trust(policy))
        say = None if as_json else lambda area: err.print(f"[dim]checking {area}[/]")
        models = Inspect("a model mlflowkit may load", lambda data, where: model_refusal(data, where=where, policy=policy))
        report = verify_store(st, registry, repair=repair, progress=say, inspect={SKOPS: models})
    except MlflowkitError as exc:
        fail(exc)
    if not any(report.checked.values()):
        _nothing_to_verify(st.uri)
    if as_json:
        out.print(to_json(report), markup=False)
    else:
        checked = ", ".join(f"{n} {area}" for area, n in report.checked.items())
        out.print(f"checked {checked} in {st.uri}")
        if report.findings:
            table = Table()
            for col in ("area", "file", "expected", "found", "action"):
                table.add_column(col, overflow="fold")
            for f in report.findings:
                action = "removed: a rerun rebuilds it" if f.repaired else ("-" if not repair else "kept: cannot be rebuilt")
                table.add_row(f.area, f.where, f.expected, f.found, action)
            out.print(table)
        if report.unsigned:
            out.print(f"[yellow]unsigned versions[/]: {', '.join(report.unsigned)} (see docs/threat-model.md)")
    if report.damage_remains:
        hint = "; `mlflowkit store verify --repair` removes what a rerun rebuilds" if report.rebuildable and not repair else ""
        err.print(f"[bold red]damage found[/]{hint}")
        if any(not f.repaired and f.area == "registry" for f in report.findings):
            err.print("  registry damage is never repaired: promote a version that verifies, and see docs/threat-model.md")
        raise typer.Exit(1)
    if not as_json:
        out.print("[green]✓[/] " + ("repaired: rerun to rebuild what was removed" if report.findings else "every byte verified"))


def _nothing_to_verify(root: str) -> NoReturn:
    """Exit 2: a mistyped --store (or a folder with no store) holds nothing; "every byte verified" would be a false all-clear."""
    err.print(f"[bold red]error[/]: no store at {root}: no objects, cache entries, registry versions or runs to verify")
    err.print(f"  hint: {STORE_HINT}")
    raise typer.Exit(2)


@app.command("keygen")
def keygen(
    out_file: Annotated[Path, typer.Option("--out", help="The private key file; the public key goes beside it as .pub.")] = Path(
        "registry-signing.pem"
    ),
    force: Annotated[bool, typer.Option(help="Replace existing key files.")] = False,
) -> None:
    """Make the registry's ed25519 keypair: OUT signs versions (MLFLOWKIT_SIGNING_KEY), OUT.pub verifies them."""
    from mlflowkit.edge.errors import EdgeError
    from mlflowkit.edge.signing import generate_keypair

    public = out_file.with_name(out_file.name + ".pub")
    try:
        key_id = generate_keypair(out_file, public, overwrite=force)
    except EdgeError as exc:
        err.print(f"[bold red]error[/]: {exc}")
        raise typer.Exit(1) from None
    out.print(f"[green]✓[/] key {key_id}: {out_file} (private: MLFLOWKIT_SIGNING_KEY where versions are registered)")
    out.print(f"  {public} (public: MLFLOWKIT_TRUSTED_KEYS, or the policy's registry.trusted_keys, where versions are read)")
