"""lean-mcp benchmarks: `python -m bench` runs every section and prints one table."""
