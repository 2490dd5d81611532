"""The seed guide's asynchronous example: submit a proof without blocking, fetch its result later.

Run a runner first (`lean-mcp runner`), then `python examples/async_submit_and_get_result.py`.
The runner's URL comes from LEAN_MCP_URL (default http://localhost:8000).
"""

import asyncio
import os

from lean_mcp import AsyncLeanClient


# The seed guide's code, verbatim but for the import and the URL:
# fmt: off
async def main():
    async with AsyncLeanClient(os.environ.get("LEAN_MCP_URL", "http://localhost:8000")) as client:
        proof_content = (
            "import Mathlib.Tactic.NormNum\n"
            "theorem test : 2 + 2 = 4 := by norm_num"
        )

        # Submit the proof without blocking
        submitted_proof = await client.submit(proof_content)
        print(f"Proof submitted with ID: {submitted_proof.id}")

        # Wait and retrieve the result
        await asyncio.sleep(1) # Simulate waiting
        result = await client.get_result(submitted_proof)
        print(result.model_dump_json(indent=2))

if __name__ == "__main__":
    asyncio.run(main())
# fmt: on
