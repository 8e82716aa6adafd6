"""The ``folder`` deploy target: model.onnx and contract.json copied into a folder, verified with ONNX Runtime.

Layout: ``<path>/<model>/<version>/{model.onnx, contract.json}`` and ``<path>/<model>/CURRENT`` (the
version that serves). A deploy writes the new version beside the old ones, loads the copy with ONNX
Runtime, runs it on held-out rows and compares with the release's own outputs; only then does it
move ``CURRENT`` (an atomic rename). On failure the new folder is removed and ``CURRENT`` is untouched.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

import mlflowkit


class FolderTarget(mlflowkit.DeployTarget):
    """Deploy to a folder (a mounted volume, a shared drive) that an application loads models from.

    Example:

    ```yaml
    deploy:
      - target: folder
        path: /srv/models
        keep_versions: 3
    ```
    """

    target: Literal["folder"] = Field(description="The deploy target's type.")
    path: str = Field(min_length=1, description="The folder; relative paths resolve against the working directory.")
    keep_versions: int = Field(3, ge=1, description="How many versions stay on disk (the serving one always does).")
    smoke_rows: int = Field(50, ge=1, description="Held-out rows the copied model is run on before it serves.")
    tolerance: float = Field(1e-5, gt=0, description="Largest difference allowed between the copy's and the release's outputs.")

    summary: ClassVar[str] = "copy model.onnx + contract into a folder; verified with ONNX Runtime"

    @property
    def destination(self) -> str:
        return str(Path(self.path).resolve())

    def deploy(self, release: mlflowkit.Release, *, name: str, log: Callable[[str], None]) -> dict[str, Any]:
        from mlflowkit.targets.contract import compare_outputs, feeds, run_onnx

        started = time.monotonic()
        root = Path(self.destination) / name
        current = root / "CURRENT"
        previous = int(current.read_text()) if current.is_file() else None
        version_dir = root / str(release.version)
        staging = root / f".{release.version}.staging"
        moved = False
        try:
            root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            (staging / "model.onnx").write_bytes(release.onnx)
            (staging / "contract.json").write_text(release.contract.model_dump_json(indent=2))
            smoke: dict[str, Any] = {}
            if release.smoke is not None:
                rows = release.smoke.iloc[: self.smoke_rows]
                inputs = feeds(release.contract, rows)
                served = run_onnx((staging / "model.onnx").read_bytes(), inputs)  # the copy, as an app would load it
                parity = compare_outputs(release.contract, run_onnx(release.onnx, inputs), served, tolerance=self.tolerance)
                if not parity.ok:
                    raise mlflowkit.DeployError(f"the copy at {staging} does not match the release: {parity.describe()}")
                smoke["onnxruntime"] = {"rows": parity.rows}
            if previous != release.version:  # a leftover of an earlier, failed deploy is replaced
                shutil.rmtree(version_dir, ignore_errors=True)
                staging.rename(version_dir)
                moved = True
            pointer = root / ".CURRENT.tmp"
            pointer.write_text(str(release.version))
            os.replace(pointer, current)  # atomic: readers see the old version or the new one
        except Exception as exc:
            # CURRENT moves last, so it still names the previous version: remove what this deploy wrote.
            shutil.rmtree(staging, ignore_errors=True)
            if moved:
                shutil.rmtree(version_dir, ignore_errors=True)
            serving = f"v{previous} still serves" if previous else "nothing serves"
            if isinstance(exc, mlflowkit.DeployError):
                raise mlflowkit.DeployError(f"{exc}; {serving}") from None
            raise mlflowkit.DeployError(f"deploy of {name} v{release.version} to {root}: {exc}; {serving}") from exc
        shutil.rmtree(staging, ignore_errors=True)
        versions = sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit())
        removed = [v for v in versions[: max(0, len(versions) - self.keep_versions)] if v != release.version]
        for v in removed:
            shutil.rmtree(root / str(v))
        seconds = round(time.monotonic() - started, 3)
        log(f"folder: {name} v{release.version} serves from {version_dir} (smoke: {smoke or 'skipped'})")
        return {
            "target": "folder",
            "destination": str(root),
            "model": name,
            "version": release.version,
            "previous": previous,
            "smoke": smoke,
            "removed_versions": removed,
            "seconds": seconds,
        }
