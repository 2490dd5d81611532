"""`lean-mcp setup`: install elan, a Lake project, the REPL (and Mathlib), and record where they are.

`record` says where setup keeps things and what it made (read by `lean_mcp._toolchain`);
`shell` runs the tools with progress on stderr; `steps` is the plan, one small object per step.
"""
