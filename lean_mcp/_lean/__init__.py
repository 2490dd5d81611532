"""Lean knowledge shared by every local backend: source text, Lean's JSON, and Lean processes."""
