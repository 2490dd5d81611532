"""`build_server`: the SDK's per-message tracing is dropped only while no OpenTelemetry provider can receive it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mcp.server.mcpserver import MCPServer

from lean_mcp._mcp import ServiceSlot, build_server
from lean_mcp._mcp.server import _SDK_TRACING

REPO = Path(__file__).resolve().parents[1]

#: Prints the layers of `build_server`'s middleware, after installing a tracer provider when asked.
_LAYERS = """
import json, sys
from opentelemetry import trace
if sys.argv[1] == "provider":
    class Provider(trace.TracerProvider):
        def get_tracer(self, *args, **kwargs):
            return trace.NoOpTracer()
    trace.set_tracer_provider(Provider())
from lean_mcp._mcp import ServiceSlot, build_server
print(json.dumps([type(layer).__name__ for layer in build_server(ServiceSlot()).middleware]))
"""


def _layers(mode: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _LAYERS, mode], cwd=REPO, capture_output=True, text=True, check=True, timeout=60
    )
    layers: list[str] = json.loads(done.stdout)
    return layers


def test_the_sdk_still_names_its_tracing_middleware_as_we_expect() -> None:
    # If the SDK renames it, this fails instead of the spans silently staying on.
    assert _SDK_TRACING in [type(layer).__name__ for layer in MCPServer("probe").middleware]


def test_without_a_tracer_provider_the_span_per_message_is_dropped_and_the_rest_kept() -> None:
    sdk = [type(layer).__name__ for layer in MCPServer("probe").middleware]
    ours = [type(layer).__name__ for layer in build_server(ServiceSlot()).middleware]
    assert ours == [name for name in sdk if name != _SDK_TRACING]
    assert ours  # the request-state boundary (and anything else the SDK adds) stays


def test_with_a_tracer_provider_installed_the_spans_stay() -> None:
    assert _SDK_TRACING not in _layers("none")
    assert _SDK_TRACING in _layers("provider")
