"""A fresh PREFECT_HOME with Prefect's database already migrated.

Every project the tests create runs on its own embedded Prefect API, in its own state folder, and the
first start on an empty folder spends about 7 s applying Prefect's database migrations. The tests are
not about those migrations: the session applies them once (``prefect server database upgrade``) and each
fresh home gets a copy of that database. Everything after (the API, the flows, the runs) is unchanged.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path


@functools.cache
def _migrated_database() -> Path:
    home = Path(tempfile.mkdtemp(prefix="mlflowkit-tests-prefect-db-"))
    atexit.register(shutil.rmtree, home, True)
    prefect = Path(sys.executable).parent / "prefect"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run([str(prefect), "server", "database", "upgrade", "-y"], env=env, capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    database = home / "prefect.db"
    with sqlite3.connect(database) as connection:  # everything in the main file: the copy is complete
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return database


def seed_prefect_home(home: Path) -> Path:
    """Put a migrated Prefect database into ``home`` (created if missing); ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_migrated_database(), home / "prefect.db")
    return home


def seeded_database_untouched(project: Path) -> bool:
    """True when the embedded API's folder in ``project`` holds only the seeded database, as seeded (it never started)."""
    folder = project / ".mlflowkit" / "prefect"
    files = sorted(p.name for p in folder.iterdir())
    return files == ["prefect.db"] and (folder / "prefect.db").read_bytes() == _migrated_database().read_bytes()


def untouched_state(project: Path) -> bool:
    """True when ``project/.mlflowkit`` holds nothing but the seeded database, byte for byte as seeded.

    The "nothing was written" check for a project made by the ``churn_project`` fixture: a command that
    ran anything, or merely started Prefect's API, leaves other files or changes the database.
    """
    state = project / ".mlflowkit"
    files = sorted(p.relative_to(state).as_posix() for p in state.rglob("*") if p.is_file())
    return files == ["prefect/prefect.db"] and (state / "prefect" / "prefect.db").read_bytes() == _migrated_database().read_bytes()
