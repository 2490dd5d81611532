"""The ray backend on a real local Ray instance (2 CPUs), with stand-in REPLs as the REPL command.

One Ray instance serves the whole module (starting one takes seconds); each test builds its own
backend on it, and checks that its REPL processes and actors are gone afterwards.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from lean_mcp._errors import BackendUnavailableError, ConfigurationError
from lean_mcp._models import ProofConfig, ProofResult, Verdict
from lean_mcp._settings import Settings
from tests.procs import pid_alive
from tests.standin import standin_command

ray = pytest.importorskip("ray", reason='the ray tests need Ray: pip install -e ".[test]" (it brings [ray])')

from lean_mcp._backends.auto import create_backend  # noqa: E402
from lean_mcp._backends.base import WrappingBackend  # noqa: E402
from lean_mcp._backends.ray_cluster import RayBackend, RayRepl  # noqa: E402

# one Ray instance at a time across xdist workers (pyproject addopts): the module and test_ray_cli run in turn
pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120), pytest.mark.xdist_group("ray")]

CFG = ProofConfig(timeout=20)
HEADER_A = "import Mathlib\n"
HEADER_B = "import Aesop\n"


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    """One local Ray instance with 2 CPUs for the module; the backends under test find it running."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def ray_settings(**overrides: Any) -> Settings:
    return Settings.load({}, **{"backend": "ray", "repl": standin_command(), "workers": 2, **overrides})


def backend(**overrides: Any) -> RayBackend:
    return RayBackend.from_settings(ray_settings(**overrides))


@pytest.fixture
async def two() -> AsyncIterator[RayBackend]:
    async with backend() as b:
        yield b
    assert_all_gone(b)


def repls(b: RayBackend) -> list[RayRepl]:
    return [r for r in b.pool._placed if r.alive]  # type: ignore[attr-defined]


def assert_all_gone(b: RayBackend) -> None:
    placed = list(b.pool._placed)  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while any(pid_alive(r.pid) for r in placed) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [r.pid for r in placed if pid_alive(r.pid)], "a REPL outlived the backend"
    for r in placed:
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(r.actor.stop.remote(), timeout=30)


async def test_verdicts_behind_the_verdict_checks() -> None:
    """What `--backend ray` builds: the ray backend behind the same checks as every backend."""
    trusted = create_backend(ray_settings())
    assert isinstance(trusted, WrappingBackend) and isinstance(trusted.inner, RayBackend)
    async with trusted:
        proved = await trusted.check(HEADER_A + "theorem a : True := trivial", CFG)
        sorry = await trusted.check(HEADER_A + "theorem b : True := by\n  sorry", CFG)
    assert (proved.verdict, sorry.verdict) == (Verdict.PROVED, Verdict.SORRY)
    assert_all_gone(trusted.inner)


async def test_verdicts_are_the_pools_verdicts(two: RayBackend) -> None:
    cases = {
        HEADER_A + "theorem a : True := trivial": Verdict.PROVED,
        HEADER_A + "theorem b : True := by\n  sorry": Verdict.SORRY,
        HEADER_A + "theorem c : True := trivial\n-- standin: error type mismatch": Verdict.REJECTED,
        "import NonexistentThing\ntheorem d : True := trivial": Verdict.REJECTED,
    }
    results: dict[str, ProofResult] = {}

    async def run(code: str) -> None:
        results[code] = await two.check(code, CFG)

    async with anyio.create_task_group() as group:
        for code in cases:
            group.start_soon(run, code)
    assert {code: r.verdict for code, r in results.items()} == cases
    rejected = results[HEADER_A + "theorem c : True := trivial\n-- standin: error type mismatch"]
    assert rejected.messages[0].data == "type mismatch"
    assert rejected.messages[0].pos.line == 3  # positions are the user's, header included
    health = two.health()
    assert health["backend"] == "ray" and health["ray"]["connected"] and health["ray"]["cpus"] == 2


async def test_timeouts_memory_caps_and_crashes_are_enforced_on_the_node(two: RayBackend) -> None:
    hang = await two.check(HEADER_A + "theorem t : True := trivial\n-- standin: hang\n", ProofConfig(timeout=1))
    assert hang.verdict == Verdict.TIMEOUT and "1 s timeout" in (hang.error_message or "")
    big = await two.check(
        HEADER_A + "theorem m : True := trivial\n-- standin: memory 400\n", ProofConfig(timeout=20, memory_limit_mb=150)
    )
    assert big.verdict == Verdict.MEMORY_LIMIT
    crash = await two.check(HEADER_A + "theorem c : True := trivial\n-- standin: crash\n", CFG)
    assert crash.verdict == Verdict.ERROR and "INTERNAL PANIC" in (crash.error_message or "")
    after = await two.check(HEADER_A + "theorem ok : True := trivial", CFG)
    assert after.verdict == Verdict.PROVED
    counts = two.health()
    assert (counts["timeouts"], counts["memory_kills"], counts["crashes"], counts["retries"]) == (1, 1, 2, 1)
    assert counts["repl_starts"] == 5 and counts["actor_starts"] <= 2  # a REPL's death does not end its actor


async def test_a_crash_once_is_retried_on_a_new_repl(tmp_path: Path) -> None:
    flag = tmp_path / "crashed"  # the stand-in writes it: no sandbox here (a sandboxed /tmp is private)
    async with backend(sandbox="none") as b:
        result = await b.check(HEADER_A + f"theorem t : True := trivial\n-- standin: crash-once {flag}\n", CFG)
    assert result.verdict == Verdict.PROVED and flag.exists()
    assert_all_gone(b)


async def test_header_affinity_across_actors(two: RayBackend) -> None:
    for i in range(6):
        header = HEADER_A if i % 2 == 0 else HEADER_B
        result = await two.check(header + f"theorem t{i} : True := trivial", CFG)
        assert result.verdict == Verdict.PROVED
    health = two.health()
    # two REPLs (one per header, each in its own actor), each header imported once, no eviction
    assert (health["repl_starts"], health["header_runs"], health["evictions"], health["proofs"]) == (2, 2, 0, 6)
    assert health["headers"] == {"import Mathlib": 1, "import Aesop": 1}
    assert sum(health["ray_nodes"].values()) == 2
    assert len({r.actor._actor_id for r in repls(two)}) == 2


async def test_an_actor_killed_mid_proof_has_its_proof_run_again_elsewhere() -> None:
    async with backend(workers=2) as b:
        warm = await b.check(HEADER_A + "theorem w : True := trivial", CFG)
        assert warm.verdict == Verdict.PROVED
        (victim,) = repls(b)
        outcome: dict[str, ProofResult] = {}

        async def slow() -> None:
            outcome["r"] = await b.check(HEADER_A + "theorem s : True := trivial\n-- standin: work 2\n", CFG)

        async with anyio.create_task_group() as group:
            group.start_soon(slow)
            with anyio.fail_after(10):
                while b.health()["busy"] == 0:  # noqa: ASYNC110 - waiting for the proof to be running
                    await anyio.sleep(0.02)
            await anyio.sleep(0.3)
            ray.kill(victim.actor, no_restart=True)
        assert outcome["r"].verdict == Verdict.PROVED
        health = b.health()
        assert (health["crashes"], health["retries"]) == (1, 1)
        with anyio.fail_after(10):
            while pid_alive(victim.pid):  # noqa: ASYNC110 - the guardian kills the orphaned REPL
                await anyio.sleep(0.05)
        assert victim.pid not in health["pids"]
    assert_all_gone(b)


async def test_a_killed_actor_takes_its_hung_repl_with_it() -> None:
    """A REPL that never reads its stdin again still dies with its actor: the guardian kills its group."""
    async with backend(workers=1) as b, anyio.create_task_group() as group:
        group.start_soon(b.check, "theorem h : True := trivial\n-- standin: hang\n", ProofConfig(timeout=60))
        with anyio.fail_after(30):
            while not repls(b) or b.health()["busy"] == 0:  # noqa: ASYNC110 - waiting for the REPL to hang
                await anyio.sleep(0.02)
        (victim,) = repls(b)
        await anyio.sleep(0.3)
        ray.kill(victim.actor, no_restart=True)
        with anyio.fail_after(10):
            while pid_alive(victim.pid):  # noqa: ASYNC110
                await anyio.sleep(0.05)
        group.cancel_scope.cancel()  # the retry hangs too: cancelling it must end its actor and REPL
    assert_all_gone(b)


async def test_no_free_cpu_is_a_clear_busy_error_not_a_hang() -> None:
    async with backend(workers=1, ray_cpus=64.0, queue_timeout=2.0) as b:
        with pytest.raises(BackendUnavailableError, match=r"No Ray node had room for a REPL actor within 2 s"):
            await b.check("theorem t : True := trivial", CFG)


async def test_a_repl_command_missing_on_the_node_is_a_clear_error() -> None:
    async with backend(repl=["/nonexistent/repl"]) as b:
        with pytest.raises(BackendUnavailableError, match=r"On Ray node .*Cannot start the REPL"):
            await b.check("theorem t : True := trivial", CFG)


def test_ray_verifier_inside_a_ray_task_with_two_cpus() -> None:
    """The reward-function use: a Ray task (1 CPU of 2) checks a batch on 2 actors of 0.5 CPU each."""

    @ray.remote(num_cpus=1)
    def reward(codes: list[str], repl: list[str]) -> list[dict[str, Any]]:
        from lean_mcp import RayVerifier

        with RayVerifier(repl=repl, workers=2, timeout=20.0) as verifier:
            return [r.model_dump(mode="json") for r in verifier.verify(codes)]

    codes = [HEADER_A + f"theorem t{i} : True := {'trivial' if i % 2 else 'by sorry'}" for i in range(6)] + [""]
    raw = ray.get(reward.remote(codes, standin_command()), timeout=100)
    results = [ProofResult.model_validate(r) for r in raw]
    assert [r.verdict for r in results[:6]] == [Verdict.SORRY, Verdict.PROVED] * 3
    assert results[6].verdict == Verdict.ERROR and "empty" in (results[6].error_message or "").lower()


def test_ray_verifier_settings() -> None:
    from lean_mcp import RayVerifier

    verifier = RayVerifier(repl=standin_command(), workers=3)
    assert (verifier.settings.backend, verifier.settings.db, verifier.settings.workers) == ("ray", ":memory:", 3)
    with pytest.raises(RuntimeError, match="not open"):
        verifier.verify(["theorem t : True := trivial"])
    other = RayVerifier(settings=dataclasses.replace(Settings.load({}), backend="repl"))
    assert other.settings.backend == "ray"


def test_without_ray_the_backend_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees when it is not installed
    with pytest.raises(ConfigurationError, match="needs Ray") as caught:
        create_backend(Settings.load({}, backend="ray", repl=standin_command()))
    assert caught.value.hint == 'Install the Ray extra: pip install "lean-proof-mcp[ray]".'


def test_ray_cpus_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match=r"--ray-cpus \(LEAN_MCP_RAY_CPUS\) must be positive"):
        Settings.load({"LEAN_MCP_RAY_CPUS": "0"})
