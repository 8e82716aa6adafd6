"""``python -m mlflowkit.report STORE RUN_ID``: write a run's HTML report (a run hands its report to this process).

Exit 0 when written, 1 when the report cannot be made (the reason on stderr); it never touches the run record.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    """Write the report of run ``argv[1]`` in store ``argv[0]``."""
    from mlflowkit.report import write_report
    from mlflowkit.store import ArtifactStore, registry_at

    root, run_id = argv
    try:
        write_report(ArtifactStore(root), run_id, registry=registry_at(root))
    except Exception as exc:  # a report that cannot be made is said, never a traceback
        print(f"mlflowkit: no HTML report for run {run_id} ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
