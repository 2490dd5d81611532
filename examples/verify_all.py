"""Check many proofs concurrently; results arrive as they complete (`LeanClient.verify_all`).

Run a runner first (`lean-mcp runner`), then `python examples/verify_all.py`.
Each result carries `index`, the position of its input; a progress bar is drawn on stderr.
"""

import os

from lean_mcp import LeanClient

proofs = [f"theorem t{n} : {n} + 0 = {n} := rfl" for n in range(20)]
proofs.append("theorem oops : 1 = 2 := by sorry")

with LeanClient(os.environ.get("LEAN_MCP_URL", "http://localhost:8000")) as client:
    results = client.verify_all(proofs, max_workers=8)
    for result in results:
        print(f"#{result.index}: {result.verdict}")
