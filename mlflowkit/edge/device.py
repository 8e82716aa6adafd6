"""A device's bundle folder: pull (download, verify, swap atomically), rollback, and what serves now.

Layout of ``DIR``::

    bundles/<name>-v<N>/   verified bundles; never changed once there
    current  -> bundles/…  the bundle that serves (a symlink, replaced by an atomic rename)
    previous -> bundles/…  the bundle before it, for `rollback`
    .staging/<id>/         downloads in progress; anything here is garbage after a crash
    .lock                  held by pull and rollback, so two never interleave
    events.jsonl           every install, refusal and rollback, with the time

A pull that is killed at any point leaves ``current`` as it was: the new bundle is downloaded into
``.staging``, verified completely (signature, every file, no extra file, the runtime's requirements)
and test-loaded before one rename makes it current.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock, Timeout

from mlflowkit.edge.bundle import INDEX, check_requirements
from mlflowkit.edge.errors import BundleRefused, EdgeError
from mlflowkit.edge.runner import verify_installed

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = ["FAULT_SLOW_DOWNLOAD_ENV", "Device"]

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

FAULT_SLOW_DOWNLOAD_ENV = "MLFLOWKIT_EDGE_FAULT_SLOW_DOWNLOAD"
"""Fault injection for tests: seconds to sleep after each downloaded chunk (1 KiB then), so a test can kill a pull mid-copy."""

_CHUNK = 1 << 16
CURRENT, PREVIOUS = "current", "previous"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Device:
    """The bundle folder of one device (see the module docstring for its layout)."""

    def __init__(self, root: Path, *, lock_timeout: float = 60.0) -> None:
        self.root = Path(root).resolve()
        self.bundles = self.root / "bundles"
        self.staging = self.root / ".staging"
        self.lock_timeout = lock_timeout

    # ------------------------------------------------------------------ state

    def _link(self, which: str) -> Path | None:
        link = self.root / which
        if not link.is_symlink():
            return None
        target = (self.root / os.readlink(link)).resolve()
        return target if target.is_dir() else None

    def current(self) -> Path | None:
        """The bundle folder that serves, or None before the first pull."""
        return self._link(CURRENT)

    def previous(self) -> Path | None:
        """The bundle folder that served before, or None."""
        return self._link(PREVIOUS)

    def status(self) -> dict[str, Any]:
        """What is installed: current and previous bundles' name and version."""
        out: dict[str, Any] = {"dir": str(self.root)}
        for which in (CURRENT, PREVIOUS):
            folder = self._link(which)
            out[which] = None
            if folder is not None:
                try:
                    manifest = json.loads((folder / "manifest.json").read_bytes())
                    out[which] = {"name": manifest.get("name"), "version": manifest.get("version"), "bundle": folder.name}
                except (OSError, ValueError):
                    out[which] = {"bundle": folder.name, "error": "manifest unreadable"}
        return out

    @contextlib.contextmanager
    def _locked(self) -> Any:
        self.root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.root / ".lock"), timeout=self.lock_timeout)
        try:
            lock.acquire()
        except Timeout:
            raise EdgeError(f"{self.root} is locked by another pull or rollback; gave up after {self.lock_timeout:g} s") from None
        try:
            yield
        finally:
            lock.release()

    def _point(self, which: str, folder: Path) -> None:
        """Make the ``which`` symlink name ``folder``, atomically (a new link renamed over the old one)."""
        tmp = self.root / f".{which}.tmp-{uuid.uuid4().hex}"
        os.symlink(os.path.relpath(folder, self.root), tmp)
        os.replace(tmp, self.root / which)
        _fsync_dir(self.root)

    def _event(self, event: dict[str, Any]) -> None:
        line = json.dumps({"at": datetime.now(UTC).isoformat(timespec="milliseconds"), **event}, default=str)
        with open(self.root / "events.jsonl", "a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    # ------------------------------------------------------------------ pull

    def pull(
        self,
        source: str,
        *,
        channel: str,
        public_key: Ed25519PublicKey,
        keep: int = 2,
        log: Callable[[str], None] = lambda message: None,
    ) -> dict[str, Any]:
        """Install the channel's current bundle from ``source`` (any fsspec URI of a published model).

        Returns:
            ``status`` (installed, up-to-date or reinstalled), ``name``, ``version``, ``previous``, ``seconds``.

        Raises:
            BundleRefused: the bundle failed verification or its requirements; nothing changed.
            EdgeError: the index or bundle could not be read; nothing changed.
        """
        started = time.monotonic()
        with self._locked():
            # With the lock held no other pull runs, so whatever is in staging was left by a killed one.
            shutil.rmtree(self.staging, ignore_errors=True)
            fs, root = _open(source)
            index = _read_index(fs, root, source)
            entry = (index.get("channels") or {}).get(channel)
            if not entry or entry.get("current") is None:
                channels = ", ".join(sorted(index.get("channels") or {})) or "none"
                raise EdgeError(f"{source} has no bundle on channel {channel!r} (channels: {channels})")
            try:
                name, version = str(index["name"]), int(entry["current"])
            except (KeyError, TypeError, ValueError) as exc:
                raise EdgeError(f"{source}: the index is malformed ({type(exc).__name__}: {exc})") from None
            # The index is not signed: what it names must not reach outside this device's bundle folder.
            if not _SAFE_NAME.fullmatch(name) or name in {".", ".."} or version < 1:
                raise EdgeError(f"{source}: the index names bundle {name!r} v{version}, which is not a valid bundle name")
            folder = self.bundles / f"{name}-v{version}"
            current = self.current()
            try:
                if current == folder and verify_installed(folder, public_key, name=name, version=version):
                    log(f"edge: {name} v{version} is current already ({channel})")
                    return self._result("up-to-date", name, version, self.previous(), started)
            except BundleRefused as exc:
                log(f"edge: the installed {folder.name} fails verification ({exc.reason}); downloading it again")
            status = "installed"
            if folder.is_dir() and folder != current:
                try:
                    self._verify_and_load(folder, public_key, name=name, version=version)
                    status = "reinstalled"
                    log(f"edge: {folder.name} is on this device already and verifies")
                except BundleRefused:
                    shutil.rmtree(folder)
            if status == "installed":
                try:
                    staged = self._download(fs, f"{root.rstrip('/')}/{version}", log=log)
                    self._verify_and_load(staged, public_key, name=name, version=version)
                except BundleRefused as exc:
                    shutil.rmtree(self.staging, ignore_errors=True)
                    self._event(
                        {"event": "refused", "name": name, "version": version, "reason": exc.reason, "detail": exc.detail}
                    )
                    raise
                self.bundles.mkdir(parents=True, exist_ok=True)
                if folder.exists():  # the current one, damaged: replace it in place
                    shutil.rmtree(folder)
                os.rename(staged, folder)
                _fsync_dir(self.bundles)
            if current is not None and current != folder:
                self._point(PREVIOUS, current)
            self._point(CURRENT, folder)
            self._event({"event": "installed", "name": name, "version": version, "channel": channel, "source": source})
            self._prune(keep)
            shutil.rmtree(self.staging, ignore_errors=True)
            log(f"edge: {name} v{version} is current ({channel})" + (f"; {current.name} kept for rollback" if current else ""))
            return self._result(status, name, version, current if current != folder else self.previous(), started)

    def _result(self, status: str, name: str, version: int, previous: Path | None, started: float) -> dict[str, Any]:
        return {
            "status": status,
            "name": name,
            "version": version,
            "previous": previous.name if previous else None,
            "seconds": round(time.monotonic() - started, 3),
        }

    def _download(self, fs: Any, remote: str, *, log: Callable[[str], None]) -> Path:
        """Copy every file of the remote bundle folder into a fresh staging folder, chunk by chunk."""
        delay = float(os.environ.get(FAULT_SLOW_DOWNLOAD_ENV) or 0)
        chunk_size = 1024 if delay else _CHUNK  # small chunks under fault injection: a small model still takes a while
        staged = self.staging / uuid.uuid4().hex
        staged.mkdir(parents=True)
        try:
            remote_files = [p for p in fs.find(remote) if not fs.isdir(p)]
        except Exception as exc:  # fsspec backends raise their own errors
            raise EdgeError(f"cannot list the bundle at {remote}: {exc}") from exc
        if not remote_files:
            raise EdgeError(f"no bundle at {remote}")
        for path in remote_files:
            relative = path[len(remote.rstrip("/")) + 1 :]
            if not relative or relative.startswith(("/", "..")) or "/../" in relative:
                raise BundleRefused("extra-file", f"unsafe file name {relative!r} in the bundle")
            target = staged / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            log(f"edge: downloading {relative}")
            with fs.open(path, "rb") as src, open(target, "wb") as dst:
                while chunk := src.read(chunk_size):
                    dst.write(chunk)
                    if delay:
                        print(f"FAULT slow download: {relative}", file=sys.stderr, flush=True)
                        time.sleep(delay)
                dst.flush()
                os.fsync(dst.fileno())
        return staged

    def _verify_and_load(self, folder: Path, public_key: Ed25519PublicKey, *, name: str, version: int) -> None:
        """Everything a bundle must pass before it may become current; the model is loaded last."""
        from mlflowkit.edge.runner import Runner

        manifest = verify_installed(folder, public_key, name=name, version=version)
        check_requirements(manifest)
        try:
            Runner(folder)
        except BundleRefused:
            raise
        except EdgeError as exc:
            raise BundleRefused("malformed", str(exc)) from None

    def _prune(self, keep: int) -> None:
        """Remove bundles other than current and previous, beyond the newest ``keep``."""
        if not self.bundles.is_dir():
            return
        pinned = {p for p in (self.current(), self.previous()) if p is not None}
        others = sorted((p for p in self.bundles.iterdir() if p.is_dir() and p not in pinned), key=lambda p: p.stat().st_mtime)
        for folder in others[: max(0, len(others) - max(0, keep - len(pinned)))]:
            shutil.rmtree(folder, ignore_errors=True)

    # ------------------------------------------------------------------ rollback

    def rollback(
        self, *, public_key: Ed25519PublicKey | None = None, log: Callable[[str], None] = lambda m: None
    ) -> dict[str, Any]:
        """Make the previous bundle current again (and the current one previous).

        Raises:
            EdgeError: there is no previous bundle.
            BundleRefused: the previous bundle no longer verifies; nothing changed.
        """
        with self._locked():
            current, previous = self.current(), self.previous()
            if previous is None:
                raise EdgeError(f"{self.root} has no previous bundle to roll back to")
            manifest = verify_installed(previous, public_key)
            check_requirements(manifest)
            self._point(CURRENT, previous)
            if current is not None:
                self._point(PREVIOUS, current)
            self._event({"event": "rollback", "to": previous.name, "from": current.name if current else None})
            log(f"edge: {previous.name} is current again" + (f"; {current.name} is previous" if current else ""))
            return {
                "status": "rolled-back",
                "name": manifest.get("name"),
                "version": manifest.get("version"),
                "previous": current.name if current else None,
            }


def _open(source: str) -> tuple[Any, str]:
    from fsspec.core import url_to_fs

    try:
        fs, root = url_to_fs(source)
    except (ValueError, ImportError) as exc:
        raise EdgeError(f"cannot open {source}: {exc}") from exc
    return fs, str(root)


def _read_index(fs: Any, root: str, source: str) -> dict[str, Any]:
    path = f"{root.rstrip('/')}/{INDEX}"
    try:
        doc = json.loads(fs.cat_file(path))
    except FileNotFoundError:
        raise EdgeError(f"no {INDEX} at {source}: nothing was published there") from None
    except (OSError, ValueError) as exc:
        raise EdgeError(f"cannot read {path}: {exc}") from exc
    if not isinstance(doc, dict) or "name" not in doc:
        raise EdgeError(f"{path} is not an mlflowkit edge index")
    return doc
