"""ModelRegistry under real processes: concurrent writers, and a writer SIGKILLed mid-register.

On both backends: a local folder (lock + rename) and S3 on loopback (moto; conditional writes).
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock, Timeout

from mlflowkit.errors import RegistryError
from mlflowkit.store import ModelRegistry
from mlflowkit.store.object_storage import ObjectStorage
from mlflowkit.store.registry_storage import PAUSE_ENV

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses SIGKILL and POSIX rename semantics")

WRITERS = 8

# Each writer imports first, says READY, then waits for the go file so all eight register at once.
CONCURRENT_WRITER = """
import json, os, sys, time
from mlflowkit.store.registry import ModelRegistry
root, worker, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
registry = ModelRegistry(root)
payload = (f"payload of worker {worker} pid {os.getpid()} ".encode()) * 2000
print("READY", flush=True)
while not os.path.exists(go):
    time.sleep(0.002)
version = registry.register("churn", {"model.bin": payload, "worker.txt": str(worker).encode()}, {"worker": worker})
print(json.dumps({"worker": worker, "version": version.version, "payload": payload.hex()}), flush=True)
"""

# As the register step does: look for an equal version, then register unless one was committed meanwhile.
EQUAL_WRITER = """
import json, sys
from mlflowkit.store.registry import ModelRegistry
registry = ModelRegistry(sys.argv[1])
files = {"model.onnx": b"the same model" * 1000, "run.txt": sys.argv[2].encode()}
same = registry.find_equal("churn", {"model.onnx": __import__("hashlib").sha256(files["model.onnx"]).hexdigest()})
print("LOOKED", flush=True)
if same is None:
    version, new = registry.register_unless_equal("churn", files, {"run": sys.argv[2]}, ["model.onnx"])
else:
    version, new = same, False
print(json.dumps({"version": version.version, "new": new}), flush=True)
"""

PAUSING_WRITER = """
import sys
from mlflowkit.store.registry import ModelRegistry
ModelRegistry(sys.argv[1]).register("churn", {"model.bin": b"never committed"}, {"doomed": True})
print("COMMITTED", flush=True)
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != PAUSE_ENV}
    env.update(extra)
    return env


def _read_line(proc: subprocess.Popen[bytes], stream: str, deadline: float) -> str:
    """One line from the child's stdout or stderr, failing the test past ``deadline``."""
    pipe = getattr(proc, stream)
    with selectors.DefaultSelector() as sel:
        sel.register(pipe, selectors.EVENT_READ)
        if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
            proc.kill()
            pytest.fail(f"child {proc.pid} wrote no line to {stream} in time")
    return str(pipe.readline().decode())


@pytest.fixture(params=["local", "s3"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the registry lives: a folder, or a prefix on the session's S3 server."""
    if request.param == "s3":
        return str(request.getfixturevalue("s3_root")) + "/registry"
    return str(tmp_path / "registry")


def _s3_layout(registry: ModelRegistry) -> dict[int, list[str]]:
    """Number -> the names of the objects under versions/<N>/ (claims, files, version.json)."""
    storage = registry.storage
    assert isinstance(storage, ObjectStorage)
    out: dict[int, list[str]] = {}
    prefix = storage.path("churn/versions/")
    for path in storage.fs.find(prefix):
        number, name = str(path)[len(prefix) :].split("/", 1)
        out.setdefault(int(number), []).append(name)
    return {n: sorted(names) for n, names in sorted(out.items())}


def _committed_dirs_are_whole(root: Path) -> list[int]:
    versions = root / "churn" / "versions"
    numbers = sorted(int(d.name) for d in versions.iterdir())
    for n in numbers:
        assert (versions / str(n) / "version.json").is_file(), f"versions/{n} has no version.json"
    return numbers


def test_concurrent_writers_get_distinct_versions(root: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_WRITER, str(root), str(i), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(),
        )
        for i in range(WRITERS)
    ]
    try:
        deadline = time.monotonic() + 90  # eight interpreters importing s3fs on two shared cores
        for proc in procs:
            assert _read_line(proc, "stdout", deadline).strip() == "READY"
        go.touch()
        reports = []
        for proc in procs:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            assert proc.returncode == 0, err.decode()
            reports.append(json.loads(out))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    assert sorted(r["version"] for r in reports) == list(range(1, WRITERS + 1))
    registry = ModelRegistry(root)
    for r in reports:
        assert registry.read_file("churn", r["version"], "model.bin") == bytes.fromhex(r["payload"])
        assert registry.read_file("churn", r["version"], "worker.txt") == str(r["worker"]).encode()
        assert registry.get("churn", r["version"]).lineage == {"worker": r["worker"]}
    assert [v.version for v in registry.versions("churn")] == list(range(1, WRITERS + 1))
    if isinstance(registry.storage, ObjectStorage):
        # Every number was claimed once and committed; no writer lost a claim race and left a gap.
        for names in _s3_layout(registry).values():
            assert names == [".claim", "model.bin", "version.json", "worker.txt"]
        return
    assert _committed_dirs_are_whole(Path(root)) == list(range(1, WRITERS + 1))
    assert list((Path(root) / "churn" / ".staging").iterdir()) == []


def test_two_writers_of_equal_bytes_at_once_make_one_version(tmp_path: Path) -> None:
    """Both look (no equal version yet) and stage while the test holds the model's lock; the second to commit finds the first."""
    root = tmp_path / "registry"
    (root / "churn").mkdir(parents=True)
    lock = FileLock(str(root / "churn" / ".lock"))
    lock.acquire()
    procs = []
    try:
        for run in ("a", "b"):
            procs.append(subprocess.Popen([sys.executable, "-c", EQUAL_WRITER, str(root), run], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env()))
        deadline = time.monotonic() + 60
        for proc in procs:
            assert _read_line(proc, "stdout", deadline).strip() == "LOOKED"
        staging = root / "churn" / ".staging"
        while len(list(staging.glob("*/run.txt"))) < 2:  # both staged their files: each waits for the lock to commit
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "the writers never staged"
            time.sleep(0.02)
    finally:
        lock.release()
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
        reports.append(json.loads(out.decode().splitlines()[-1]))
    assert sorted((r["version"], r["new"]) for r in reports) == [(1, False), (1, True)]
    assert [v.version for v in ModelRegistry(root).versions("churn")] == [1]
    assert list((root / "churn" / ".staging").iterdir()) == []  # the loser's staged files are gone


@pytest.mark.parametrize("point", ["registry.staged", "registry.locked"])
def test_writer_killed_while_registering(root: str, point: str) -> None:
    registry = ModelRegistry(root, lock_timeout=5)
    if isinstance(registry.storage, ObjectStorage):
        _killed_on_s3(registry, root, point)
        return
    _killed_on_local(registry, Path(root), point)


def _start_pausing_writer(root: str, point: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-c", PAUSING_WRITER, root],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(**{PAUSE_ENV: point}),
    )
    line = _read_line(proc, "stderr", time.monotonic() + 15)
    if not line:  # the child exited before pausing: show why
        pytest.fail(f"child exited {proc.wait()} before {point}: {proc.communicate()[1].decode()}")
    assert line.strip() == f"PAUSED {point}"
    return proc


def _kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)  # reaps the child and closes its pipes
    assert proc.returncode == -signal.SIGKILL


def _killed_on_s3(registry: ModelRegistry, root: str, point: str) -> None:
    registry.register("churn", {"model.bin": b"v1"}, {})
    registry.set_alias("churn", "champion", 1, reason="first", actor="test")
    proc = _start_pausing_writer(root, point)
    try:
        # The child holds number 2 (claimed) and blocks nobody: another writer takes 3 at once.
        started = time.monotonic()
        assert ModelRegistry(root).register("churn", {"model.bin": b"v3"}, {}).version == 3
        assert time.monotonic() - started < 3
        assert [v.version for v in registry.versions("churn")] == [1, 3]
    finally:
        _kill(proc)

    # No partial version is listed or readable; what the child uploaded stays under its claim.
    assert [v.version for v in registry.versions("churn")] == [1, 3]
    with pytest.raises(RegistryError, match="has no version 2"):
        registry.get("churn", 2)
    staged = [".claim", "model.bin"] if point == "registry.staged" else [".claim"]
    assert _s3_layout(registry)[2] == staged
    if point == "registry.staged":
        assert registry.storage.read("churn/versions/2/model.bin") == b"never committed"
    assert registry.aliases("churn") == {"champion": 1}
    # The number is never handed out again; once stale, the leftover goes and the claim stays.
    assert registry.register("churn", {"model.bin": b"v4"}, {}).version == 4
    assert _s3_layout(registry)[2] == staged
    registry.storage.stale_after = 0.0  # type: ignore[misc]
    assert registry.register("churn", {"model.bin": b"v5"}, {}).version == 5
    assert _s3_layout(registry)[2] == [".claim"]
    assert [v.version for v in registry.versions("churn")] == [1, 3, 4, 5]
    assert registry.read_file("churn", 4, "model.bin") == b"v4"


def _killed_on_local(registry: ModelRegistry, root: Path, point: str) -> None:
    registry.register("churn", {"model.bin": b"v1"}, {})
    registry.set_alias("churn", "champion", 1, reason="first", actor="test")

    proc = _start_pausing_writer(str(root), point)
    try:
        lock_path = root / "churn" / ".lock"
        if point == "registry.locked":
            # The child really holds the model's lock: another writer waits, then gives up clearly.
            with pytest.raises(Timeout):
                FileLock(lock_path, blocking=False).acquire()
            with pytest.raises(RegistryError, match="locked by another writer"):
                ModelRegistry(root, lock_timeout=0.2).register("churn", {"m": b"x"}, {})
        else:
            with FileLock(lock_path, blocking=False):
                pass
    finally:
        _kill(proc)

    # Nothing new is listed, no version dir is half made, and the leftover staging is no version.
    assert [v.version for v in registry.versions("churn")] == [1]
    assert _committed_dirs_are_whole(root) == [1]
    leftovers = list((root / "churn" / ".staging").iterdir())
    assert len(leftovers) == 1
    assert (leftovers[0] / "model.bin").read_bytes() == b"never committed"
    assert (leftovers[0] / "version.json").exists() == (point == "registry.locked")
    assert registry.aliases("churn") == {"champion": 1}

    # The lock died with the process: the next writer gets in at once and takes the next number.
    started = time.monotonic()
    v2 = registry.register("churn", {"model.bin": b"v2"}, {})
    assert time.monotonic() - started < 3
    assert v2.version == 2
    assert registry.read_file("churn", 2, "model.bin") == b"v2"
    # A fresh leftover is kept (it might be a slow writer); an hour-old one goes on the next register.
    assert leftovers[0].exists()
    old = time.time() - 2 * 3600
    for path in [leftovers[0], *leftovers[0].iterdir()]:
        os.utime(path, (old, old))
    assert registry.register("churn", {"model.bin": b"v3"}, {}).version == 3
    assert list((root / "churn" / ".staging").iterdir()) == []
    assert [v.version for v in registry.versions("churn")] == [1, 2, 3]
