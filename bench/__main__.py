"""`python -m bench [--quick] [--only SECTION ...]`: run the benchmarks, print one table.

Each section is a module `bench/<name>.py` with `run(quick: bool) -> list[Row]`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback

from .common import Row, format_table

SECTIONS = (
    "throughput",
    "pool",
    "audit",
    "jobs",
    "mcp",
    "tactics",
    "runner",
    "lean",
    "sandbox",
    "hostile",
    "ray_backend",
    "instructions",
)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller runs (for a smoke test)")
    parser.add_argument("--only", nargs="*", choices=SECTIONS, help="run only these sections")
    args = parser.parse_args()
    rows: list[Row] = []
    failed = False
    for name in args.only or SECTIONS:
        started = time.perf_counter()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        try:
            module = importlib.import_module(f"bench.{name}")
            rows.extend(module.run(args.quick))
        except Exception:
            failed = True
            traceback.print_exc()
            rows.append(Row(name, "(failed)", "-", note="see the traceback on stderr"))
        print(f"  {name} took {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    print(format_table(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
