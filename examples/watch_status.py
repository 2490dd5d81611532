"""Submit a proof and watch its job go pending → running → finished.

Run a runner first (`lean-mcp runner`), then `python examples/watch_status.py`.
"""

import os
import time

from lean_mcp import LeanClient

# The seed guide's code, verbatim but for the import, the URL and `use_cache`:
# fmt: off
with LeanClient(os.environ.get("LEAN_MCP_URL", "http://localhost:8000")) as client:
    proof_content = (
        "import Mathlib.Tactic.NormNum\n"
        "theorem test : 2 + 2 = 4 := by norm_num"
    )
    # `use_cache` false: an identical proof answered before would otherwise come back finished at once.
    submitted_proof = client.submit(proof_content, {"use_cache": False})
    print(f"Proof submitted with ID: {submitted_proof.id}")

    last_status = None
    while True:
        result = client.get_result(submitted_proof)
        if result.status != last_status:
            print(f"status: {result.status}")
            last_status = result.status
        if result.done:
            break
        time.sleep(0.02)
    print(f"verdict: {result.verdict}, success: {result.success}")
# fmt: on
