"""Hostile clients: a longer fuzz round on every front end, and the runner's latency under 1,100 idle connections.

The fuzz counts must all be zero; the latency row shows that idle and slow connections do not
hold up real clients (the runner is started with 1,024 open files, as on many machines).
"""

from __future__ import annotations

import resource
import socket
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import anyio
import httpx

from tests.e2e.runner_support import RunnerProcess, runner_env
from tests.e2e.test_http_limits import LIMITED_RUNNER
from tests.fuzz import fuzz_all

from .common import Row, latency_summary

SEED = 7


def run(quick: bool) -> list[Row]:
    return [*_fuzz_rows(quick), *_idle_connections_rows(quick)]


def _fuzz_rows(quick: bool) -> list[Row]:
    inputs, seconds = (2_000, 40.0) if quick else (20_000, 400.0)
    with tempfile.TemporaryDirectory(prefix="lean-mcp-bench-fuzz-") as workdir:
        reports = anyio.run(fuzz_all, inputs, seconds, SEED, Path(workdir))
    return [
        Row(
            "hostile",
            f"fuzz {report.target}",
            f"{report.inputs} inputs in {report.seconds:.0f} s",
            "0 deaths, 0 unanswered, 0 5xx",
            f"{report.deaths} deaths, {report.unanswered} unanswered, {report.server_errors} 5xx, "
            f"{report.without_detail} 4xx without detail (seed {SEED})",
        )
        for report in reports
    ]


def _idle_connections_rows(quick: bool) -> list[Row]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    idle_count = 1100
    name = "/health with 1,100 idle connections"
    if hard < idle_count + 200:
        return [Row("hostile", name, "(skipped)", note="needs 1,300 open files")]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    latencies: list[float] = []
    with tempfile.TemporaryDirectory(prefix="lean-mcp-bench-idle-") as workdir:
        runner = RunnerProcess(Path(workdir), runner_env(Path(workdir)), command=LIMITED_RUNNER)
        try:
            runner.wait_ready()
            with ExitStack() as held, httpx.Client(timeout=30) as client:
                flood_started = time.perf_counter()
                for _ in range(idle_count):
                    held.enter_context(socket.create_connection(("127.0.0.1", runner.port), timeout=10))
                client.get(f"{runner.url}/health").raise_for_status()
                first = time.perf_counter() - flood_started
                for _ in range(50 if quick else 300):
                    started = time.perf_counter()
                    client.get(f"{runner.url}/health").raise_for_status()
                    latencies.append(time.perf_counter() - started)
        finally:
            runner.stop()
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    note = "the runner has 1,024 open files and keeps at most 512 connections"
    return [
        Row("hostile", "first /health after opening 1,100 idle connections", f"{first * 1000:.0f} ms", note=note),
        Row("hostile", name, latency_summary(latencies), note=f"{len(latencies)} requests while they are held open"),
    ]
