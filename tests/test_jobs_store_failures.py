"""The job store when the disk fills, the file turns read-only or is corrupt, and across restarts.

Disk full and read-only are real: the store lives on a small tmpfs mounted for the test (root only;
skipped elsewhere), filled with a real file or remounted read-only.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from lean_mcp._errors import StoreUnavailableError
from lean_mcp._jobs.service import ProofService
from lean_mcp._jobs.store import JobStore
from lean_mcp._models import Verdict
from tests.e2e.runner_support import runner_env
from tests.test_jobs_service import ScriptedBackend, until

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]


@contextlib.contextmanager
def small_tmpfs(tmp_path: Path, size: str = "2m") -> Iterator[Path]:
    """A fresh tmpfs of `size` mounted under `tmp_path` (skips the test when mounting is not allowed)."""
    mount = tmp_path / "fs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the filesystem says it is full; returns the file."""
    filler = directory / "filler"
    with filler.open("wb") as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 65536)
            out.flush()
    return filler


def remount(mount: Path, mode: str) -> None:
    """Remount the test's tmpfs read-only (`ro`) or writable again (`rw`)."""
    subprocess.run(["mount", "-o", f"remount,{mode}", str(mount)], check=True)


def private_modes(db: Path) -> dict[str, int]:
    """The permission bits of the store, its sidecars and its owner lock files."""
    files = [db, Path(f"{db}-wal"), Path(f"{db}-shm"), *Path(f"{db}.owners").iterdir()]
    return {file.name: stat.S_IMODE(file.stat().st_mode) for file in files}


def big_proof(n: int) -> str:
    return f"theorem big{n} : True := trivial\n" + "-- padding\n" * 20_000  # ~220 kB: needs new pages


async def test_a_full_disk_refuses_new_jobs_and_the_service_resumes_by_itself(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path) as fs:
        backend = ScriptedBackend(capacity=1)
        async with ProofService(backend, JobStore(str(fs / "jobs.sqlite3"))) as service:
            running = await service.submit("theorem held : True := BLOCK")
            await until(lambda: backend.blocked == 1, "the job to start")
            filler = fill(fs)
            with pytest.raises(StoreUnavailableError, match="disk is full"):
                await service.submit(big_proof(1))
            assert "disk is full" in str(service.store.failure)
            with pytest.raises(StoreUnavailableError, match="disk is full"):  # refused at once while broken
                await service.submit("theorem small : True := trivial")
            backend.release.set()  # the job in flight is still answered, from memory
            assert (await service.wait(running.id)).verdict == Verdict.PROVED

            filler.unlink()
            with anyio.fail_after(30):
                while service.store.failure is not None:  # noqa: ASYNC110 - the store's own retry loop
                    await anyio.sleep(0.05)
            proof = await service.submit(big_proof(2))
            assert (await service.wait(proof.id)).verdict == Verdict.PROVED
            await until(lambda: not service._active, "the deferred result to be recorded")
        async with JobStore(str(fs / "jobs.sqlite3")) as store:
            row = await store.get(running.id)
        assert row is not None and row.status == "finished", "the result was written once the disk had room"


def start_runner(db: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`lean-mcp runner` on the stand-in REPL and the store `db`, run until it exits."""
    env = runner_env(tmp_path, LEAN_MCP_DB=str(db), LEAN_MCP_LOG_LEVEL="WARNING")
    argv = [sys.executable, "-m", "lean_mcp.cli", "runner", "--port", "0"]
    return subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)


def test_a_corrupt_store_at_start_up_is_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    db = tmp_path / "jobs.sqlite3"
    db.write_bytes(b"this is not a database, just garbage bytes\n" * 200)
    done = start_runner(db, tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "corrupt" in lines[0] and str(db) in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_a_read_only_store_at_start_up_is_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path) as fs:
        db = fs / "jobs.sqlite3"
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE t (x)")
        conn.close()
        remount(fs, "ro")
        done = start_runner(db, tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "read-only" in lines[0] and str(db) in lines[0], done.stderr


async def test_the_store_and_its_sidecars_are_private(tmp_path: Path) -> None:
    db = tmp_path / "new" / "jobs.sqlite3"
    old_umask = os.umask(0o022)
    try:
        async with ProofService(ScriptedBackend(), JobStore(str(db))) as service:
            await service.verify("theorem a : True := trivial")
            modes = private_modes(db)
    finally:
        os.umask(old_umask)
    assert modes == dict.fromkeys(modes, 0o600) and len(modes) == 4, modes
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700


async def test_an_old_world_readable_store_is_made_private(tmp_path: Path) -> None:
    db = tmp_path / "jobs.sqlite3"
    async with JobStore(str(db)):
        pass
    db.chmod(0o644)
    async with JobStore(str(db)):
        assert stat.S_IMODE(db.stat().st_mode) == 0o600


async def test_two_services_starting_together_never_both_take_an_orphaned_job(tmp_path: Path) -> None:
    db = tmp_path / "jobs.sqlite3"
    async with JobStore(str(db)):
        pass
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO jobs (id, code, config, status, owner, created) VALUES (?, ?, ?, ?, ?, ?)",
            ("orphan", "theorem o : True := BLOCK", "{}", "running", "dead-owner", time.time()),
        )
    first, second = ScriptedBackend(), ScriptedBackend()
    async with ProofService(first, JobStore(str(db))) as a, ProofService(second, JobStore(str(db))) as b:
        await until(lambda: first.blocked + second.blocked >= 1, "the orphan to be adopted")
        await anyio.sleep(0.3)
        assert first.blocked + second.blocked == 1, "the orphan was handed out twice"
        first.release.set()
        second.release.set()
        owner = a if first.blocked else b
        assert (await owner.wait("orphan")).verdict == Verdict.PROVED
