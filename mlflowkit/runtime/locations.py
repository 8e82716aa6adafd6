"""Where a run keeps things: the state folder next to the spec, the artifact store, the user's mlflowkit home, the Prefect API.

Read without importing Prefect (it costs about a second), so that a run that needs no orchestrator
never loads it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from mlflowkit.errors import SpecError, SpecIssue

if TYPE_CHECKING:
    from mlflowkit.spec.models import SpecBase

__all__ = ["HOME_ENV", "configured_api_url", "embedded_api", "mlflowkit_home", "state_dir", "store_root"]

HOME_ENV = "MLFLOWKIT_HOME"
"""Where mlflowkit keeps the user's own state (the local Prefect server and its database)."""


def state_dir(spec: SpecBase) -> Path:
    """The local state folder next to the spec (``.mlflowkit/``): the default store."""
    return Path(spec.spec_dir) / ".mlflowkit"


def store_root(spec: SpecBase, override: str | None = None) -> str:
    """Where artifacts and the registry live: ``--store``, else ``MLFLOWKIT_STORE``, else ``spec.store``, else state dir.

    Raises:
        SpecError: ``--store`` or ``$MLFLOWKIT_STORE`` names a local file, a system folder or a folder this user
            cannot write (validate checked ``spec.store`` the same way, at its line).
    """
    from_env = os.environ.get("MLFLOWKIT_STORE")
    root = override or from_env or spec.store
    if root is None:
        return str(state_dir(spec))
    given = "--store" if override else "$MLFLOWKIT_STORE" if from_env else None
    if given is not None:
        from mlflowkit.spec.checks import store_problem

        if (problem := store_problem(root, spec.spec_dir)) is not None:
            hint = f"point {given} at a folder of the project's, or leave it out (the spec's store, else .mlflowkit/)"
            raise SpecError([SpecIssue(problem, path="store", file=given, hint=hint)])
    if "://" not in root and not os.path.isabs(root):
        return os.path.join(spec.spec_dir, root)
    return root


def mlflowkit_home() -> Path:
    """The user's mlflowkit state: ``$MLFLOWKIT_HOME``, else ``$XDG_STATE_HOME/mlflowkit``, else ``~/.local/state/mlflowkit``.

    Outside any project, so one local Prefect server (and its history) serves all of a user's projects.
    """
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state).expanduser() / "mlflowkit"


def configured_api_url() -> str | None:
    """The Prefect server the user points at: ``PREFECT_API_URL``, else their active Prefect profile's.

    Read from the same places Prefect reads.
    """
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    import tomllib

    home = Path(os.environ.get("PREFECT_HOME", Path.home() / ".prefect")).expanduser()
    profiles = Path(os.environ.get("PREFECT_PROFILES_PATH", home / "profiles.toml")).expanduser()
    try:
        data = tomllib.loads(profiles.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or data.get("active", "ephemeral")
    url = data.get("profiles", {}).get(active, {}).get("PREFECT_API_URL")
    return str(url) if url else None


def embedded_api() -> bool:
    """Whether a flow would run on mlflowkit's local Prefect server: the user configured none of their own."""
    return configured_api_url() is None
