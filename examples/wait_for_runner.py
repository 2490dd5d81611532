"""Wait until the runner at $LEAN_MCP_URL (default http://localhost:8000) answers /health.

For scripts that start `lean-mcp runner &` and then use it: `python examples/wait_for_runner.py`.
Exits 1 if the runner does not answer within 60 seconds.
"""

import os
import sys
import time

import httpx

url = os.environ.get("LEAN_MCP_URL", "http://localhost:8000")
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        if httpx.get(f"{url}/health", timeout=2).status_code == 200:
            sys.exit(0)
    except httpx.TransportError:
        pass
    time.sleep(0.1)
print(f"no runner answered at {url}/health within 60 s", file=sys.stderr)
sys.exit(1)
