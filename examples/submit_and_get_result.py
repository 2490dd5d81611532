"""The seed guide's synchronous example: submit a proof, then fetch its result.

Run a runner first (`lean-mcp runner`), then `python examples/submit_and_get_result.py`.
The runner's URL comes from LEAN_MCP_URL (default http://localhost:8000). The result is fetched
at once, so it usually prints `pending` or `running`; see watch_status.py for a polling loop.
"""

import os

from lean_mcp import LeanClient

# The seed guide's code, verbatim but for the import and the URL:
# fmt: off
with LeanClient(os.environ.get("LEAN_MCP_URL", "http://localhost:8000")) as client:
    proof_content = (
        "import Mathlib.Tactic.NormNum\n"
        "theorem test : 2 + 2 = 4 := by norm_num"
    )

    # Submit the proof
    submitted_proof = client.submit(proof_content)
    print(f"Proof submitted with ID: {submitted_proof.id}")

    # Retrieve the result later
    # In a real scenario, you might wait here
    result = client.get_result(submitted_proof)
    print(result.model_dump_json(indent=2))
# fmt: on
