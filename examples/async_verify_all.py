"""`AsyncLeanClient.verify_all` over an async generator of proofs.

Run a runner first (`lean-mcp runner`), then `python examples/async_verify_all.py`.
"""

import asyncio
import os

from lean_mcp import AsyncLeanClient


async def proofs():
    for n in range(20):
        yield f"theorem t{n} : {n} + 0 = {n} := rfl"


async def main():
    async with AsyncLeanClient(os.environ.get("LEAN_MCP_URL", "http://localhost:8000")) as client:
        proved = 0
        async for result in client.verify_all(proofs(), total=20, max_workers=8):
            proved += result.success is True
            print(f"#{result.index}: {result.verdict}")
        print(f"{proved}/20 proved")


if __name__ == "__main__":
    asyncio.run(main())
