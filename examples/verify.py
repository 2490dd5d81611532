"""Check one proof and wait for the answer (`LeanClient.verify`).

Run a runner first (`lean-mcp runner`), then `python examples/verify.py [FILE.lean]`.
Without a file it checks a small proof and one with a `sorry` (which is never `success`).
"""

import os
import sys

from lean_mcp import LeanClient

with LeanClient(os.environ.get("LEAN_MCP_URL", "http://localhost:8000")) as client:
    proofs = sys.argv[1:] or [
        "theorem two_add_two : 2 + 2 = 4 := rfl",
        "theorem not_yet : 1 + 1 = 3 := by sorry",
    ]
    for proof in proofs:
        result = client.verify(proof, {"timeout": 60})
        print(f"{result.verdict}: success={result.success}")
        for message in result.messages:
            print(f"  {message.pos} {message.severity}: {message.data}")
